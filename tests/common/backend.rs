//! A real HTTP/1.1 origin on an ephemeral loopback port. Every answer is JSON describing the
//! request it got: `{"backend","method","path","headers":{..},"body":".."}`.
//! Knobs in the query string: `delay_ms=N` waits before answering, `status=N` sets the status,
//! `set_header=name:value` adds a response header (repeatable), `pad=N` adds N bytes to the
//! body, `chunked=1` sends the body chunked, `etag=X` sends `ETag: "X"` and answers a matching `If-None-Match` with 304.
//! `GET /health` answers 200 or 503 as set by `set_healthy`, and is not counted as a request;
//! `set_status` forces the status of every other request, `set_delay` delays every answer.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

pub struct Backend {
    pub name: String,
    pub addr: SocketAddr,
    fixed: Option<Arc<Mutex<String>>>,
    hits: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    connections: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    forced: Arc<AtomicU16>,
    delay: Arc<AtomicU64>,
}

impl Backend {
    pub fn start(name: &str) -> Backend {
        Backend::spawn(name, None, "127.0.0.1:0")
    }

    /// A backend listening on `addr` (another loopback address, a given port).
    pub fn start_at(name: &str, addr: SocketAddr) -> Backend {
        Backend::spawn(name, None, &addr.to_string())
    }

    /// A backend answering every request with `body` as JSON (e.g. a JWK set).
    pub fn serving(name: &str, body: String) -> Backend {
        Backend::spawn(name, Some(Arc::new(Mutex::new(body))), "127.0.0.1:0")
    }

    /// What a `serving` backend answers from now on.
    pub fn set_body(&self, body: String) {
        let fixed = self.fixed.as_ref().expect("a serving backend");
        *fixed.lock().expect("body lock") = body;
    }

    fn spawn(name: &str, fixed: Option<Arc<Mutex<String>>>, bind: &str) -> Backend {
        let listener = TcpListener::bind(bind).expect("bind backend");
        let addr = listener.local_addr().expect("backend addr");
        let hits = Arc::new(AtomicUsize::new(0));
        let received = Arc::new(AtomicUsize::new(0));
        let connections = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let healthy = Arc::new(AtomicBool::new(true));
        let forced = Arc::new(AtomicU16::new(0));
        let delay = Arc::new(AtomicU64::new(0));
        let counters = Counters {
            forced: forced.clone(),
            delay: delay.clone(),
            fixed: fixed.clone(),
            hits: hits.clone(),
            received: received.clone(),
            healthy: healthy.clone(),
            stop: stop.clone(),
        };
        let (n, c, s) = (name.to_owned(), connections.clone(), stop.clone());
        thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                c.fetch_add(1, Ordering::SeqCst);
                let (n, counters) = (n.clone(), counters.clone());
                thread::spawn(move || serve(stream, &n, &counters));
            }
        });
        Backend {
            name: name.to_owned(),
            addr,
            fixed,
            hits,
            received,
            connections,
            healthy,
            stop,
            forced,
            delay,
        }
    }

    /// Every request (not `GET /health`) waits `ms` before its answer from now on; 0 undoes it.
    pub fn set_delay(&self, ms: u64) {
        self.delay.store(ms, Ordering::SeqCst);
    }

    /// Every request (not `GET /health`) is answered with `status` from now on; 0 undoes it.
    pub fn set_status(&self, status: u16) {
        self.forced.store(status, Ordering::SeqCst);
    }

    /// What `GET /health` answers from now on: 200 when true, 503 when false.
    pub fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }

    /// Requests whose head has arrived (answered or still being answered).
    pub fn received(&self) -> usize {
        self.received.load(Ordering::SeqCst)
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }

    /// Requests answered so far.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag and closes the listener.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_millis(200));
    }
}

/// An address where nothing listens: connecting to it is refused.
pub fn dead_addr() -> SocketAddr {
    let port = super::free_port();
    SocketAddr::from(([127, 0, 0, 1], port))
}

#[derive(Clone)]
struct Counters {
    fixed: Option<Arc<Mutex<String>>>,
    hits: Arc<AtomicUsize>,
    received: Arc<AtomicUsize>,
    healthy: Arc<AtomicBool>,
    /// A status every request gets (0: none).
    forced: Arc<AtomicU16>,
    /// Milliseconds every request waits before its answer.
    delay: Arc<AtomicU64>,
    /// Set when the backend is dropped: open connections close instead of answering.
    stop: Arc<AtomicBool>,
}

fn serve(stream: TcpStream, name: &str, counters: &Counters) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(stream);
    loop {
        let mut head = Vec::new();
        loop {
            let mut line = Vec::new();
            match reader.read_until(b'\n', &mut line) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let end = line == b"\r\n" || line == b"\n";
            head.extend_from_slice(&line);
            if end {
                break;
            }
        }
        if counters.stop.load(Ordering::SeqCst) {
            return;
        }
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut req = httparse::Request::new(&mut headers);
        if !matches!(req.parse(&head), Ok(httparse::Status::Complete(_))) {
            return;
        }
        let method = req.method.unwrap_or("").to_owned();
        let path = req.path.unwrap_or("").to_owned();
        let mut map = BTreeMap::new();
        let mut length = 0;
        for h in req.headers.iter() {
            let value = String::from_utf8_lossy(h.value).into_owned();
            if h.name.eq_ignore_ascii_case("content-length") {
                length = value.parse().unwrap_or(0);
            }
            map.entry(h.name.to_ascii_lowercase())
                .and_modify(|v: &mut String| {
                    v.push_str(", ");
                    v.push_str(&value);
                })
                .or_insert(value);
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if path == "/health" {
            let status = if counters.healthy.load(Ordering::SeqCst) {
                200
            } else {
                503
            };
            let reply = format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\n\r\n");
            if out.write_all(reply.as_bytes()).is_err() {
                return;
            }
            continue;
        }
        counters.received.fetch_add(1, Ordering::SeqCst);
        let query = path.split_once('?').map_or("", |(_, q)| q);
        let knob = |key: &str| -> Option<u64> {
            query
                .split('&')
                .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('=')?.parse().ok())
        };
        let ms = knob("delay_ms").unwrap_or(0) + counters.delay.load(Ordering::SeqCst);
        if ms > 0 {
            thread::sleep(Duration::from_millis(ms));
        }
        let status = match counters.forced.load(Ordering::SeqCst) {
            0 => knob("status").unwrap_or(200),
            forced => u64::from(forced),
        };
        let mut extra: String = query
            .split('&')
            .filter_map(|kv| kv.strip_prefix("set_header="))
            .filter_map(|h| h.split_once(':'))
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        counters.hits.fetch_add(1, Ordering::SeqCst);
        let etag = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("etag="))
            .map(|e| format!("\"{e}\""));
        if let Some(etag) = &etag {
            extra.push_str(&format!("ETag: {etag}\r\n"));
            if map
                .get("if-none-match")
                .is_some_and(|v| v.contains(etag.as_str()))
            {
                let reply = format!("HTTP/1.1 304 Not Modified\r\n{extra}\r\n");
                if out.write_all(reply.as_bytes()).is_err() {
                    return;
                }
                continue;
            }
        }
        let pad = "x".repeat(knob("pad").unwrap_or(0) as usize);
        let json = match &counters.fixed {
            Some(body) => body.lock().expect("body lock").clone(),
            None => serde_json::json!({
            "backend": name,
            "method": method,
            "path": path,
            "headers": map,
            "body": String::from_utf8_lossy(&body),
            "pad": pad,
            })
            .to_string(),
        };
        let response = if knob("chunked") == Some(1) {
            let (a, b) = json.split_at(json.len() / 2);
            format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nX-Backend: {name}\r\n{extra}\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
                a.len(),
                b.len()
            )
        } else {
            format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nX-Backend: {name}\r\n{extra}\r\n{json}",
                json.len()
            )
        };
        if out.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}
