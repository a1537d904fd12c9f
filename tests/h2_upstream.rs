//! HTTP/2 to backends (`protocol: h2c`): requests, bodies, trailers and health checks go to a
//! real HTTP/2 origin; config checks for the protocol settings.

mod common;

use bytes::Bytes;
use common::gateway::BIN;
use common::{request, wait_for, Gateway};
use std::net::SocketAddr;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// An h2c (prior-knowledge HTTP/2) origin on a loopback port. Every answer is JSON
/// `{"backend","version","path","body"}` followed by the trailer `x-trailer: done`; `seen` lists
/// the paths asked for, with the HTTP version.
struct H2Origin {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<String>>>,
}

impl H2Origin {
    fn start(name: &'static str) -> H2Origin {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        listener.set_nonblocking(true).expect("nonblocking");
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&seen);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                while let Ok((socket, _)) = listener.accept().await {
                    tokio::spawn(serve(socket, name, Arc::clone(&log)));
                }
            });
        });
        H2Origin { addr, seen }
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().expect("seen").clone()
    }
}

async fn serve(socket: tokio::net::TcpStream, name: &'static str, seen: Arc<Mutex<Vec<String>>>) {
    let Ok(mut conn) = h2::server::handshake(socket).await else {
        return;
    };
    while let Some(Ok((req, mut respond))) = conn.accept().await {
        let seen = Arc::clone(&seen);
        tokio::spawn(async move {
            let version = format!("{:?}", req.version());
            let path = req.uri().path().to_owned();
            seen.lock().expect("seen").push(format!("{version} {path}"));
            let mut body = req.into_body();
            let mut got = Vec::new();
            while let Some(Ok(chunk)) = body.data().await {
                let _ = body.flow_control().release_capacity(chunk.len());
                got.extend_from_slice(&chunk);
            }
            let json = serde_json::json!({
                "backend": name,
                "version": version,
                "path": path,
                "body": String::from_utf8_lossy(&got),
            })
            .to_string();
            let head = http::Response::builder()
                .status(200)
                .header("content-type", "application/json")
                .header("x-backend", name)
                .body(())
                .expect("response");
            let Ok(mut send) = respond.send_response(head, false) else {
                return;
            };
            let _ = send.send_data(Bytes::from(json), false);
            let mut trailers = http::HeaderMap::new();
            trailers.insert("x-trailer", http::HeaderValue::from_static("done"));
            let _ = send.send_trailers(trailers);
        });
    }
}

fn config(origin: &H2Origin, extra: &str) -> String {
    format!(
        "upstreams:\n  u:\n    backends: [{{addr: \"{}\"}}]\n    protocol: h2c\n    health_check: {{kind: http, path: /health, interval: 200ms}}\n{extra}routes:\n  - {{name: r, path: /, upstream: u}}\n",
        origin.addr
    )
}

#[test]
fn requests_bodies_and_health_checks_reach_an_h2c_backend_in_http2() {
    let origin = H2Origin::start("h2");
    let header =
        common::gateway::header().replace("admin: \"{admin}\"}", "admin: \"{admin}\", h2c: true}");
    let gw = Gateway::start_raw(&format!("{header}{}", config(&origin, "")));
    let r = request("GET", &gw.url("/a?x=1"), &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(seen["version"], "HTTP/2.0");
    assert_eq!(seen["path"], "/a");
    assert_eq!(r.header("x-backend"), Some("h2"));

    let posted = request("POST", &gw.url("/p"), &[], Some("the body"));
    assert_eq!(posted.json()["body"], "the body");

    // Health checks are HTTP/2 too.
    wait_for("an HTTP/2 health check", Duration::from_secs(5), || {
        origin
            .seen()
            .contains(&"HTTP/2.0 /health".to_owned())
            .then_some(())
    });

    // HTTP/2 end to end keeps the backend's trailers.
    let out = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "--http2-prior-knowledge",
            "-D",
            "-",
        ])
        .arg(gw.url("/t"))
        .output()
        .expect("curl must be installed (.ci/run installs it)");
    let text = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(text.starts_with("http/2 200"), "{text}");
    assert!(text.contains("x-trailer: done"), "{text}");
}

#[test]
fn protocol_settings_are_checked() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gw.yaml");
    std::fs::write(
        &file,
        "upstreams:\n  a: {backends: [{addr: 127.0.0.1:1}], protocol: h2}\n  b: {backends: [{addr: 127.0.0.1:2}], protocol: h2c, tls: true}\n  c: {backends: [{addr: 127.0.0.1:3}], protocol: h2c}\n  d: {backends: [{addr: 127.0.0.1:4}], protocol: http3}\nroutes:\n  - {name: r, path: /, upstream: c, websocket: true}\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .args(["-t", "-c"])
        .arg(&file)
        .output()
        .expect("gateway -t");
    let text = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{text}");
    for want in [
        "upstreams.a.protocol: h2 is HTTP/2 over TLS and needs tls: true",
        "upstreams.b.protocol: h2c is plaintext HTTP/2",
        "upstreams.d.protocol",
        "routes[0].websocket: WebSocket tunnels need upstreams spoken to in http1",
    ] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
}
