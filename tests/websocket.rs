//! WebSocket through the gateway: the handshake passes the route's checks, messages flow both
//! ways, idle tunnels are closed, and shutdown drains them.

mod common;

use common::auth::{auth_section, tokens};
use common::{wait_for, Gateway};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;
use tungstenite::handshake::server::{Request, Response};
use tungstenite::Message;

/// A WebSocket echo server on a loopback port; its first message is the `x-user-id` header the
/// handshake carried (or `-`).
struct Echo {
    addr: SocketAddr,
}

impl Echo {
    fn start() -> Echo {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                std::thread::spawn(move || echo(stream));
            }
        });
        Echo { addr }
    }
}

// The handshake callback's error type is tungstenite's.
#[allow(clippy::result_large_err)]
fn echo(stream: TcpStream) {
    let mut user = String::from("-");
    let callback = |req: &Request, resp: Response| {
        if let Some(v) = req.headers().get("x-user-id") {
            user = v.to_str().unwrap_or("?").to_owned();
        }
        Ok(resp)
    };
    let Ok(mut ws) = tungstenite::accept_hdr(stream, callback) else {
        return;
    };
    if ws.send(Message::text(user)).is_err() {
        return;
    }
    while let Ok(msg) = ws.read() {
        if msg.is_close() || ws.send(msg).is_err() {
            return;
        }
    }
}

type Client = tungstenite::WebSocket<TcpStream>;

fn connect(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> Result<Client, String> {
    let stream = TcpStream::connect(gw.proxy).map_err(|e| e.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    let mut req = tungstenite::client::IntoClientRequest::into_client_request(format!(
        "ws://{}{path}",
        gw.proxy
    ))
    .map_err(|e| e.to_string())?;
    for (k, v) in headers {
        req.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).expect("name"),
            http::HeaderValue::from_str(v).expect("value"),
        );
    }
    tungstenite::client(req, stream)
        .map(|(ws, _)| ws)
        .map_err(|e| match e {
            tungstenite::HandshakeError::Failure(tungstenite::Error::Http(r)) => {
                format!(
                    "{} {}",
                    r.status().as_u16(),
                    String::from_utf8_lossy(r.body().as_deref().unwrap_or(b""))
                )
            }
            other => other.to_string(),
        })
}

fn config(echo: &Echo, route_extra: &str) -> String {
    format!(
        "{}upstreams:\n  ws: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: ws, path: /ws, upstream: ws, websocket: true{route_extra}}}\n  - {{name: idle, path: /idle, upstream: ws, websocket: {{idle_timeout: 1s}}}}\n  - {{name: plain, path: /plain, upstream: ws}}\n  - {{name: private, path: /private, upstream: ws, websocket: true, auth: {{required: true, roles: [user]}}, rate_limit: {{rate: 1/m, burst: 2, key: [user]}}}}\n",
        auth_section("memory"),
        echo.addr
    )
}

fn text(ws: &mut Client) -> String {
    ws.read()
        .expect("a message")
        .into_text()
        .expect("text")
        .as_str()
        .to_owned()
}

fn open_tunnels(gw: &Gateway, route: &str) -> f64 {
    gw.metric(&format!("websocket_connections{{route=\"{route}\"}}"))
        .unwrap_or(0.0)
}

#[test]
fn messages_flow_both_ways_and_open_tunnels_are_counted() {
    let echo = Echo::start();
    let gw = Gateway::start(&config(&echo, ""));
    let mut ws = connect(&gw, "/ws/chat", &[]).expect("handshake");
    assert_eq!(text(&mut ws), "-");
    for i in 0..20 {
        let msg = format!("hello {i} {}", "x".repeat(i * 1000));
        ws.send(Message::text(msg.clone())).expect("send");
        assert_eq!(text(&mut ws), msg);
    }
    ws.send(Message::binary(vec![0u8, 1, 2, 255]))
        .expect("send");
    assert_eq!(
        ws.read().expect("binary").into_data().as_ref(),
        &[0u8, 1, 2, 255]
    );
    assert_eq!(open_tunnels(&gw, "ws"), 1.0);
    ws.close(None).expect("close");
    while ws.read().is_ok() {}
    wait_for(
        "the tunnel to be counted out",
        Duration::from_secs(5),
        || (open_tunnels(&gw, "ws") == 0.0).then_some(()),
    );
    // Access lines are written in batches: poll for it.
    let line = wait_for("the tunnel's access line", Duration::from_secs(5), || {
        gw.access_lines().into_iter().find(|l| l["route"] == "ws")
    });
    assert_eq!(line["status"], 101);
}

#[test]
fn handshakes_pass_the_route_checks_and_other_routes_refuse_them() {
    let echo = Echo::start();
    let gw = Gateway::start(&config(&echo, ""));
    let refused = connect(&gw, "/plain", &[]).expect_err("not a WebSocket route");
    assert!(
        refused.starts_with("400 ") && refused.contains("websocket_not_allowed"),
        "{refused}"
    );

    let anonymous = connect(&gw, "/private", &[]).expect_err("no token");
    assert!(
        anonymous.starts_with("401 ") && anonymous.contains("unauthorized"),
        "{anonymous}"
    );
    let (access, _) = tokens(&gw, "alice", "alice-pass");
    let bearer = format!("Bearer {access}");
    let auth = [("authorization", bearer.as_str())];
    let mut ws = connect(&gw, "/private", &auth).expect("handshake with a token");
    // The backend saw who the gateway authenticated.
    assert_eq!(text(&mut ws), "alice");
    let _second = connect(&gw, "/private", &auth).expect("second handshake");
    let limited = connect(&gw, "/private", &auth).expect_err("third: over the limit");
    assert!(limited.starts_with("429 "), "{limited}");
    // The limit counts handshakes, not messages: the open tunnel still carries them.
    for i in 0..5 {
        ws.send(Message::text(format!("m{i}"))).expect("send");
        assert_eq!(text(&mut ws), format!("m{i}"));
    }
}

#[test]
fn an_idle_tunnel_is_closed_after_its_idle_timeout_and_a_busy_one_is_not() {
    let echo = Echo::start();
    let gw = Gateway::start(&config(&echo, ""));
    let mut busy = connect(&gw, "/idle", &[]).expect("handshake");
    let mut idle = connect(&gw, "/idle", &[]).expect("handshake");
    assert_eq!(text(&mut busy), "-");
    assert_eq!(text(&mut idle), "-");
    let started = std::time::Instant::now();
    // The busy one talks every 200 ms for 3 s, well past the 1 s idle timeout.
    while started.elapsed() < Duration::from_secs(3) {
        busy.send(Message::text("ping")).expect("busy tunnel open");
        assert_eq!(text(&mut busy), "ping");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The idle one was closed meanwhile (not a read timeout of the test's own client).
    match idle.read() {
        Err(tungstenite::Error::Io(e)) if e.kind() != std::io::ErrorKind::ConnectionReset => {
            panic!("the idle tunnel is still open: {e}")
        }
        Err(_) => {}
        Ok(m) => panic!("the idle tunnel is still open: {m:?}"),
    }
    wait_for("one tunnel left", Duration::from_secs(5), || {
        (open_tunnels(&gw, "idle") == 1.0).then_some(())
    });
}

#[test]
fn shutdown_lets_tunnels_run_for_the_grace_period_then_closes_them() {
    let echo = Echo::start();
    let mut gw = Gateway::start(&config(&echo, ""));
    let mut ws = connect(&gw, "/ws", &[]).expect("handshake");
    assert_eq!(text(&mut ws), "-");
    let started = std::time::Instant::now();
    gw.signal("TERM");
    // Within the grace period (1 s in tests) the tunnel still carries messages.
    ws.send(Message::text("still here")).expect("send");
    assert_eq!(text(&mut ws), "still here");
    // Then it is closed, and the process exits cleanly.
    while ws.read().is_ok() {}
    let closed = started.elapsed();
    assert!(
        closed >= Duration::from_millis(900),
        "closed after {closed:?}"
    );
    let status = gw.wait_exit(Duration::from_secs(20));
    assert!(status.success(), "{status:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_zero_idle_timeout_is_a_config_error() {
    let (code, text) = common::gateway::check_config(
        "upstreams: {u: {backends: [{addr: 127.0.0.1:1}]}}\nroutes:\n  - {name: r, path: /, upstream: u, websocket: {idle_timeout: 0s}}\n  - {name: s, path: /s, upstream: u, websocket: {idle: 5s}}\n",
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("routes[0].websocket.idle_timeout: must be positive"),
        "{text}"
    );
    assert!(text.contains("routes[1]"), "{text}");
}

#[test]
fn other_upgrades_reach_the_backend_as_plain_requests() {
    let b = common::Backend::start("b");
    let gw = Gateway::start(&format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u, websocket: true}}\n",
        b.addr
    ));
    let r = common::request(
        "GET",
        &gw.url("/x"),
        &[("upgrade", "h2c"), ("connection", "Upgrade")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert!(seen["headers"].get("upgrade").is_none(), "{seen}");
}

#[test]
fn max_body_size_does_not_cut_a_tunnel() {
    let echo = Echo::start();
    let gw = Gateway::start(&format!(
        "security: {{max_body_size: 4KiB}}\n{}",
        config(&echo, "")
    ));
    let mut ws = connect(&gw, "/ws", &[]).expect("handshake");
    assert_eq!(text(&mut ws), "-");
    // 40 KiB through a route whose requests may carry 4 KiB.
    for i in 0..10 {
        let msg = format!("{i}{}", "y".repeat(4096));
        ws.send(Message::text(msg.clone())).expect("send");
        assert_eq!(text(&mut ws), msg);
    }
}

#[test]
fn a_cached_route_still_tunnels() {
    let echo = Echo::start();
    let gw = Gateway::start(&config(&echo, ", cache: {enabled: true}"));
    for _ in 0..2 {
        let mut ws = connect(&gw, "/ws", &[]).expect("handshake");
        assert_eq!(text(&mut ws), "-");
        ws.send(Message::text("again")).expect("send");
        assert_eq!(text(&mut ws), "again");
    }
}
