//! One guard on every listener: a deadline for the TLS handshake and the first request head
//! armed when the connection is accepted, empty lines before a request that do not end its
//! head, the h2c preface read under that deadline, and connection caps per address, per side
//! listener and for the process.

mod common;

use common::pki::Pki;
use common::{Backend, Gateway};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A gateway with a 1 s head deadline, `listen_extra` added to `listen`, one route to `b`.
fn start(b: &Backend, listen_extra: &str, security_extra: &str) -> Gateway {
    start_with(
        b,
        listen_extra,
        &format!("request_head_timeout: 1s{security_extra}"),
    )
}

/// A gateway with `security` as given, `listen_extra` added to `listen`, one route to `b`.
fn start_with(b: &Backend, listen_extra: &str, security: &str) -> Gateway {
    let header = common::gateway::header().replace(
        "admin: \"{admin}\"}",
        &format!("admin: \"{{admin}}\"{listen_extra}}}"),
    );
    Gateway::start_raw(&format!(
        "{header}security: {{{security}}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        b.addr
    ))
}

/// Connects with reads that give up after 10 s.
fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Writes `first`, then one header line every 300 ms for 3 s, then the empty line; returns
/// what came back and how long the connection was held.
fn drip(addr: SocketAddr, first: &[u8]) -> (String, Duration) {
    drip_on(connect(addr), first)
}

/// [`drip`] on an open connection.
fn drip_on(mut s: TcpStream, first: &[u8]) -> (String, Duration) {
    let started = Instant::now();
    let _ = s.write_all(first);
    for i in 0..10 {
        std::thread::sleep(Duration::from_millis(300));
        if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"\r\n");
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    (
        String::from_utf8_lossy(&answer).into_owned(),
        started.elapsed(),
    )
}

/// Reads until the peer closes (or 10 s pass); how long that took.
fn held(mut s: TcpStream) -> Duration {
    let started = Instant::now();
    let mut sink = Vec::new();
    let _ = s.read_to_end(&mut sink);
    started.elapsed()
}

/// Whether a new connection to `addr` is closed at once (within 500 ms, nothing sent).
fn refused(addr: SocketAddr) -> bool {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut buf = [0u8; 16];
    match s.read(&mut buf) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ),
    }
}

#[test]
fn empty_lines_before_a_request_do_not_end_its_head() {
    let b = Backend::start("b");
    let gw = start(&b, "", "");
    let (answer, took) = drip(gw.proxy, b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n");
    assert!(
        !answer.contains(" 200 "),
        "the slow head was served: {answer}"
    );
    assert!(took < Duration::from_millis(2900), "held for {took:?}");
    assert_eq!(b.received(), 0);
    // Empty lines before a head sent at once are skipped, as HTTP/1.1 asks.
    let answer = common::raw(
        gw.proxy,
        b"\r\nGET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
}

#[test]
fn a_connection_that_sends_nothing_is_closed_at_the_head_deadline() {
    let b = Backend::start("b");
    let gw = start(&b, "", "");
    for addr in [gw.proxy, gw.admin, gw.metrics] {
        let took = held(connect(addr));
        assert!(
            took < Duration::from_secs(3),
            "{addr}: an idle connection was held {took:?}"
        );
    }
}

#[test]
fn the_h2c_preface_is_read_under_the_deadline_and_short_requests_are_served() {
    let b = Backend::start("b");
    let gw = start(&b, ", h2c: true", "");
    // A complete HTTP/1.0 request shorter than the 24-byte preface gets its answer at once.
    let started = Instant::now();
    let answer = common::raw(gw.proxy, b"GET / HTTP/1.0\r\n\r\n");
    assert!(answer.starts_with("HTTP/1."), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(1));
    // A preface that stops half-way is cut off at the deadline.
    let mut s = connect(gw.proxy);
    s.write_all(b"PRI * HTTP/2.0\r\n\r\n").expect("send");
    let took = held(s);
    assert!(took < Duration::from_secs(3), "held for {took:?}");
    // A slow HTTP/1 head on the h2c listener too.
    let (answer, took) = drip(gw.proxy, b"GET / HTTP/1.1\r\nHost: x\r\n");
    assert!(!answer.contains(" 200 "), "{answer}");
    assert!(took < Duration::from_millis(2900), "held for {took:?}");
}

#[test]
fn a_tls_connection_that_never_shakes_hands_is_closed() {
    let pki = Pki::new();
    pki.issue("a", &["a.example.test"]);
    let b = Backend::start("b");
    let port = common::free_port();
    let tls = format!(
        ", proxy_tls: {{addr: \"127.0.0.1:{port}\", certificates: [{{cert: \"{}\", key: \"{}\"}}]}}",
        pki.path("a.pem").display(),
        pki.path("a.key").display()
    );
    let gw = start(&b, &tls, "");
    let https = SocketAddr::from(([127, 0, 0, 1], port));
    common::wait_for("the HTTPS listener", Duration::from_secs(10), || {
        TcpStream::connect(https).ok()
    });
    let took = held(connect(https));
    assert!(took < Duration::from_secs(3), "held for {took:?}");
    // Half a ClientHello, then silence.
    let mut s = connect(https);
    s.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .expect("send");
    let took = held(s);
    assert!(took < Duration::from_secs(3), "held for {took:?}");
    // A real client is still served, over HTTP/2 (ALPN).
    let out = std::process::Command::new("curl")
        .args(["-sS", "--cacert"])
        .arg(pki.path("ca.pem"))
        .args([
            "--resolve",
            &format!("a.example.test:{port}:127.0.0.1"),
            &format!("https://a.example.test:{port}/"),
            "-o",
            "/dev/null",
            "-w",
            "%{http_code} %{http_version}",
        ])
        .output()
        .expect("curl");
    assert_eq!(String::from_utf8_lossy(&out.stdout), "200 2", "{out:?}");
    drop(gw);
}

#[test]
fn admin_and_metrics_heads_have_the_deadline_too() {
    let b = Backend::start("b");
    let gw = start(&b, "", "");
    for addr in [gw.admin, gw.metrics] {
        let (answer, took) = drip(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
        assert!(!answer.contains(" 200 "), "{addr}: {answer}");
        assert!(
            took < Duration::from_millis(2900),
            "{addr}: held for {took:?}"
        );
    }
    // A kept-alive metrics connection: its second head has a deadline of its own.
    let mut s = connect(gw.metrics);
    s.write_all(b"GET /none HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    // The whole answer (head and body may come in two reads), then nothing more is sent.
    let mut first = String::new();
    while !first.ends_with("}\n") {
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("answer");
        assert!(n > 0, "closed early: {first}");
        first.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(first.starts_with("HTTP/1.1 404"), "{first}");
    let (answer, took) = drip_on(s, b"GET /metrics HTTP/1.1\r\nHost: x\r\n");
    assert!(!answer.contains(" 200 "), "{answer}");
    assert!(took < Duration::from_millis(2900), "held for {took:?}");
}

#[test]
fn side_listeners_cannot_take_the_proxys_connections() {
    let b = Backend::start("b");
    // A long deadline, so idle connections stay open while counted.
    let gw = start_with(&b, "", "request_head_timeout: 30s, max_connections: 40");
    // Idle connections on the metrics listener fill the process's cap of 40...
    let idle: Vec<TcpStream> = (0..45).map(|_| connect(gw.metrics)).collect();
    // Once the metrics listener refuses, its connections hold the cap...
    common::wait_for("the cap to fill", Duration::from_secs(5), || {
        refused(gw.metrics).then_some(())
    });
    assert!(
        refused(gw.proxy),
        "a proxy connection was admitted past the cap"
    );
    // ...and once they close, the proxy is served again.
    drop(idle);
    common::wait_for("the proxy to serve", Duration::from_secs(5), || {
        let r = common::client::try_request("GET", &gw.url("/"), &[], None);
        r.is_ok_and(|r| r.status == 200).then_some(())
    });
}

#[test]
fn the_admin_listener_holds_at_most_its_share() {
    let b = Backend::start("b");
    let gw = start_with(
        &b,
        "",
        "request_head_timeout: 30s, max_connections_per_ip: 5000",
    );
    let idle: Vec<TcpStream> = (0..300).map(|_| connect(gw.admin)).collect();
    // Past its 256, the admin listener closes new connections at once.
    common::wait_for("the admin cap", Duration::from_secs(5), || {
        refused(gw.admin).then_some(())
    });
    let r = common::client::try_request("GET", &gw.url("/"), &[], None);
    assert!(r.is_ok_and(|r| r.status == 200), "the proxy kept serving");
    drop(idle);
}

#[test]
fn the_per_address_cap_counts_every_listener() {
    let b = Backend::start("b");
    let gw = start_with(
        &b,
        "",
        "request_head_timeout: 30s, max_connections_per_ip: 4",
    );
    // The readiness probes are gone once the address's count is back to zero.
    common::wait_for("the probes to close", Duration::from_secs(5), || {
        (!refused(gw.proxy)).then_some(())
    });
    let held_open: Vec<TcpStream> = (0..5).map(|_| connect(gw.metrics)).collect();
    // The address has used its four: a proxy connection is closed at once.
    // Once the metrics listener refuses, its connections hold the cap...
    common::wait_for("the cap to fill", Duration::from_secs(5), || {
        refused(gw.metrics).then_some(())
    });
    assert!(
        refused(gw.proxy),
        "a proxy connection was admitted past the cap"
    );
    drop(held_open);
    common::wait_for("a slot to free", Duration::from_secs(5), || {
        let r = common::client::try_request("GET", &gw.url("/"), &[], None);
        r.is_ok_and(|r| r.status == 200).then_some(())
    });
}
