//! Proxying end to end: headers to the backend, request ids, retries, timeouts, error answers.

mod common;

use common::{dead_addr, get, raw, request, Backend, Gateway};
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::time::Duration;

fn one_route(addrs: &[String], extra_upstream: &str, extra_route: &str) -> String {
    let backends: Vec<String> = addrs.iter().map(|a| format!("{{addr: \"{a}\"}}")).collect();
    format!(
        "upstreams:\n  u: {{backends: [{}]{extra_upstream}}}\nroutes:\n  - {{name: r, path: /, upstream: u{extra_route}}}\n",
        backends.join(", ")
    )
}

#[test]
fn forwarded_headers_and_user_headers() {
    let b = Backend::start("b");
    let gw = Gateway::start(&one_route(&[b.addr.to_string()], "", ""));
    let r = request(
        "GET",
        &gw.url("/x"),
        &[
            ("x-forwarded-for", "6.6.6.6"),
            ("x-forwarded-proto", "https"),
            ("x-user-id", "admin"),
            ("X-User-Roles", "admin"),
            ("host", "shop.example"),
        ],
        None,
    );
    assert_eq!(r.status, 200);
    let h = &r.json()["headers"];
    // The peer is not a trusted proxy: its forwarding claims are replaced.
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], "shop.example");
    assert!(h.get("x-user-id").is_none(), "{h}");
    assert!(h.get("x-user-roles").is_none(), "{h}");
}

#[test]
fn trusted_proxy_forwarding_is_kept() {
    let b = Backend::start("b");
    let yaml = format!(
        "security: {{trusted_proxies: [127.0.0.1/32]}}\n{}",
        one_route(&[b.addr.to_string()], "", "")
    );
    let gw = Gateway::start(&yaml);
    let r = request(
        "GET",
        &gw.url("/x"),
        &[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-proto", "https"),
        ],
        None,
    );
    let h = &r.json()["headers"];
    assert_eq!(h["x-forwarded-for"], "203.0.113.9, 127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "https");
}

#[test]
fn request_id_is_kept_when_well_formed_and_generated_otherwise() {
    let b = Backend::start("b");
    let gw = Gateway::start(&one_route(&[b.addr.to_string()], "", ""));
    let r = request(
        "GET",
        &gw.url("/"),
        &[("x-request-id", "abc-123_x.y")],
        None,
    );
    assert_eq!(r.header("x-request-id"), Some("abc-123_x.y"));
    assert_eq!(r.json()["headers"]["x-request-id"], "abc-123_x.y");

    let long = "a".repeat(129);
    for bad in ["has space", "semi;colon", long.as_str()] {
        let r = request("GET", &gw.url("/"), &[("x-request-id", bad)], None);
        let id = r.header("x-request-id").expect("id").to_owned();
        assert_eq!(id.len(), 32, "{bad:?} → {id}");
        assert_eq!(r.json()["headers"]["x-request-id"], id.as_str());
    }
    let a = get(&gw.url("/")).header("x-request-id").map(str::to_owned);
    let b2 = get(&gw.url("/")).header("x-request-id").map(str::to_owned);
    assert_ne!(a, b2);
}

#[test]
fn method_and_body_reach_the_backend() {
    let b = Backend::start("b");
    let gw = Gateway::start(&one_route(&[b.addr.to_string()], "", ""));
    let body = "x".repeat(200_000);
    let r = request(
        "PUT",
        &gw.url("/upload"),
        &[("content-type", "text/plain")],
        Some(&body),
    );
    assert_eq!(r.status, 200);
    let got = r.json();
    assert_eq!(got["method"], "PUT");
    assert_eq!(got["body"].as_str().map(str::len), Some(body.len()));
}

#[test]
fn backend_status_and_headers_pass_through() {
    let b = Backend::start("b");
    let gw = Gateway::start(&one_route(&[b.addr.to_string()], "", ""));
    let r = get(&gw.url("/?status=418"));
    assert_eq!(r.status, 418);
    assert_eq!(r.header("x-backend"), Some("b"));
    assert!(r.header("x-request-id").is_some());
}

#[test]
fn round_robin_alternates_and_upstream_connections_are_reused() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let gw = Gateway::start(&one_route(
        &[a.addr.to_string(), b.addr.to_string()],
        "",
        "",
    ));
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/")).status, 200);
    }
    assert_eq!((a.hits(), b.hits()), (10, 10));
    assert!(
        a.connections() <= 2 && b.connections() <= 2,
        "keep-alive not used: {} and {} connections for 10 requests each",
        a.connections(),
        b.connections()
    );
}

#[test]
fn connect_failure_retries_on_another_backend() {
    let live = Backend::start("live");
    let dead = dead_addr().to_string();
    let gw = Gateway::start(&one_route(
        &[dead, live.addr.to_string()],
        ", retries: 1",
        "",
    ));
    for i in 0..10 {
        let r = get(&gw.url("/"));
        assert_eq!(r.status, 200, "request {i}: {}", r.body);
    }
    assert_eq!(live.hits(), 10);
}

#[test]
fn without_retries_a_refused_connection_is_a_502() {
    let live = Backend::start("live");
    let dead = dead_addr().to_string();
    let gw = Gateway::start(&one_route(&[dead, live.addr.to_string()], "", ""));
    let statuses: Vec<u16> = (0..4).map(|_| get(&gw.url("/")).status).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 502).count(),
        2,
        "{statuses:?}"
    );
    let r = (0..2)
        .map(|_| get(&gw.url("/")))
        .find(|r| r.status == 502)
        .expect("a 502");
    assert_eq!(r.error_code(), "bad_gateway");
    assert!(r.json()["error"]["request_id"].as_str().is_some());
}

#[test]
fn all_backends_down_is_a_502_even_with_retries() {
    let gw = Gateway::start(&one_route(
        &[dead_addr().to_string(), dead_addr().to_string()],
        ", retries: 3",
        "",
    ));
    let r = get(&gw.url("/"));
    assert_eq!(r.status, 502);
    assert_eq!(r.error_code(), "bad_gateway");
}

#[test]
fn route_timeout_gives_504() {
    let b = Backend::start("slow");
    let gw = Gateway::start(&one_route(
        &[b.addr.to_string()],
        ", read_timeout: 10s",
        ", timeout: 300ms",
    ));
    let r = get(&gw.url("/?delay_ms=2000"));
    assert_eq!(r.status, 504, "{}", r.body);
    assert_eq!(r.error_code(), "upstream_timeout");
    assert_eq!(get(&gw.url("/?delay_ms=50")).status, 200);
}

#[test]
fn upstream_read_timeout_gives_504() {
    let b = Backend::start("slow");
    let gw = Gateway::start(&one_route(
        &[b.addr.to_string()],
        ", read_timeout: 300ms",
        "",
    ));
    let r = get(&gw.url("/?delay_ms=2000"));
    assert_eq!(r.status, 504);
    assert_eq!(r.error_code(), "upstream_timeout");
}

#[test]
fn health_reports_upstreams() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let gw = Gateway::start(&one_route(
        &[a.addr.to_string(), b.addr.to_string()],
        "",
        "",
    ));
    let r = get(&gw.url("/health"));
    assert_eq!(r.status, 200);
    let body = r.json();
    assert_eq!(body["status"], "ok");
    assert_eq!(body["checks"]["redis"], "disabled");
    assert_eq!(body["checks"]["upstreams"]["u"]["healthy"], 2);
    assert_eq!(body["checks"]["upstreams"]["u"]["total"], 2);
    assert_eq!(a.hits() + b.hits(), 0, "/health is answered by the gateway");
}

/// An origin that hands over each request head as it arrived and answers with mixed-case header
/// names and a reason phrase of its own.
fn spelling_origin() -> (SocketAddr, mpsc::Receiver<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (heads, received) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let heads = heads.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().expect("clone"));
                let mut out = stream;
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    let _ = heads.send(head);
                    let answer = "HTTP/1.1 200 Fine Thanks\r\nX-Backend-Spelling: B\r\nContent-Length: 2\r\n\r\nok";
                    if out.write_all(answer.as_bytes()).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (addr, received)
}

#[test]
fn header_names_go_on_in_lower_case_unless_preserved() {
    let cases = [
        ("", "x-client-spelling: c", "x-backend-spelling: B"),
        (
            "  header_case: preserve\n",
            "X-Client-Spelling: c",
            "X-Backend-Spelling: B",
        ),
    ];
    for (setting, backend_sees, client_sees) in cases {
        let (origin, heads) = spelling_origin();
        let server = format!("server:\n{setting}");
        let header = common::gateway::header().replacen("server:\n", &server, 1);
        let gw = Gateway::start_raw(&format!(
            "{header}{}",
            one_route(&[origin.to_string()], "", "")
        ));
        let answer = raw(
            gw.proxy,
            b"GET /x?y=1 HTTP/1.1\r\nHost: t\r\nX-Client-Spelling: c\r\nConnection: close\r\n\r\n",
        );
        let head = heads
            .recv_timeout(Duration::from_secs(5))
            .expect("the origin got the request");
        assert!(head.starts_with("GET /x?y=1 HTTP/1.1\r\n"), "{head}");
        assert!(head.contains(backend_sees), "{setting:?}: {head}");
        assert!(head.contains("x-request-id: "), "{head}");
        // The backend's reason phrase and its header reach the client.
        assert!(
            answer.starts_with("HTTP/1.1 200 Fine Thanks\r\n"),
            "{answer}"
        );
        assert!(answer.contains(client_sees), "{setting:?}: {answer}");
        assert!(answer.ends_with("\r\n\r\nok"), "{answer}");
    }
}
