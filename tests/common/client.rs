//! Small blocking HTTP client helpers for tests.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// A response read whole.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Resp {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// The `error.code` of a gateway error body.
    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or_else(|| panic!("not an error body: {}", self.body))
            .to_owned()
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// `method url` with `headers` and an optional body.
pub fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&str>) -> Resp {
    try_request(method, url, headers, body).unwrap_or_else(|e| panic!("{method} {url} failed: {e}"))
}

/// As [`request`], with a failed exchange (refused, reset, closed) returned instead of a panic,
/// for polls that expect the server to refuse for a while.
pub fn try_request(
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, ureq::Error> {
    send(&agent(), method, url, headers, body)
}

/// A client that keeps its connections open between requests, as browsers do.
pub struct KeepAlive(ureq::Agent);

impl KeepAlive {
    #[allow(clippy::new_without_default)]
    pub fn new() -> KeepAlive {
        KeepAlive(agent())
    }

    pub fn request(&self, method: &str, url: &str, headers: &[(&str, &str)]) -> Resp {
        send(&self.0, method, url, headers, None)
            .unwrap_or_else(|e| panic!("{method} {url} failed: {e}"))
    }

    /// As [`KeepAlive::request`], with a failed exchange returned instead of a panic.
    pub fn try_request(
        &self,
        method: &str,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Resp, ureq::Error> {
        send(&self.0, method, url, headers, None)
    }
}

fn send(
    agent: &ureq::Agent,
    method: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Result<Resp, ureq::Error> {
    let mut builder = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let req = builder
        .body(body.unwrap_or("").to_owned())
        .expect("valid request");
    let mut resp = agent.run(req)?;
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    // A body cut short reads as what arrived; tests check the status and what they expect.
    let body = resp.body_mut().read_to_string().unwrap_or_default();
    Ok(Resp {
        status,
        headers,
        body,
    })
}

pub fn get(url: &str) -> Resp {
    request("GET", url, &[], None)
}

/// A GET as browsers and most HTTP clients send it: when the server closes the connection before
/// any byte of an answer, the request (idempotent) is sent once more (RFC 9110 §9.2.2). Returns
/// the answer and whether that retry was needed. A refused connection is not retried.
pub fn get_idempotent(url: &str) -> (Resp, bool) {
    let attempt = || try_request("GET", url, &[], None);
    match attempt() {
        Ok(r) => (r, false),
        Err(e) if e.to_string().contains("disconnected") => {
            let r = attempt().unwrap_or_else(|e| panic!("GET {url} failed twice: {e}"));
            (r, true)
        }
        Err(e) => panic!("GET {url} failed: {e}"),
    }
}

/// Sends raw bytes and returns what the server wrote until it closed or 5 s passed.
pub fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(bytes).expect("write");
    let mut out = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                out.extend_from_slice(&buf[..n]);
                // One complete answer is enough for these tests.
                if let Some(text) = complete_response(&out) {
                    return text;
                }
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn complete_response(out: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(out);
    let (head, body) = text.split_once("\r\n\r\n")?;
    let len: usize = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-length:")
                .map(|v| v.trim().to_owned())
        })?
        .parse()
        .ok()?;
    (body.len() >= len).then(|| text.into_owned())
}
