//! Passive health (outlier ejection) and circuit breaking, end to end.

mod common;

use common::gateway::BIN;
use common::{get, wait_for, Backend, Gateway};
use std::process::Command;
use std::time::{Duration, Instant};

fn config(backends: &[&Backend], outlier: &str, extra: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|b| format!("{{addr: \"{}\"}}", b.addr))
        .collect();
    format!(
        "upstreams:\n  u:\n    backends: [{}]\n    outlier: {outlier}\n{extra}routes:\n  - {{name: r, path: /, upstream: u}}\n",
        list.join(", ")
    )
}

fn ejections(gw: &Gateway, backend: &Backend) -> f64 {
    let series = format!(
        "backend_ejections_total{{backend=\"{}\",upstream=\"u\"}}",
        backend.addr
    );
    gw.metric(&series).unwrap_or(0.0)
}

#[test]
fn a_failing_backend_is_ejected_the_others_take_the_traffic_and_it_returns() {
    let (good, bad) = (Backend::start("good"), Backend::start("bad"));
    bad.set_status(500);
    let gw = Gateway::start(&config(
        &[&good, &bad],
        // Long enough for the checks below on a loaded machine, short enough to wait out.
        "{consecutive_errors: 3, base_ejection: 4s, max_ejection_percent: 50}",
        "",
    ));
    // Round robin: the bad backend gets every other request; its third 500 in a row ejects it.
    let mut failures = 0;
    for _ in 0..6 {
        if get(&gw.url("/x")).status == 500 {
            failures += 1;
        }
    }
    assert_eq!(
        failures, 3,
        "three failures reached the client before the ejection"
    );
    // Counted in the logging phase of the third failure, which may end after its answer.
    wait_for("the ejection counted", Duration::from_secs(5), || {
        (ejections(&gw, &bad) == 1.0).then_some(())
    });
    let before = bad.received();
    for _ in 0..20 {
        assert_eq!(
            get(&gw.url("/x")).status,
            200,
            "only the good backend answers"
        );
    }
    assert_eq!(bad.received(), before, "the ejected backend got nothing");
    assert!(gw
        .log()
        .contains("ejected for 4s after 3 failed requests in a row"));

    // The ejection ends on its own; failing again ejects it for twice as long.
    wait_for(
        "the ejected backend to get traffic again",
        Duration::from_secs(5),
        || {
            get(&gw.url("/x"));
            (bad.received() > before).then_some(())
        },
    );
    bad.set_status(0);
    for _ in 0..10 {
        assert_eq!(
            get(&gw.url("/x")).status,
            200,
            "both answer once it recovered"
        );
    }
    assert!(bad.received() >= before + 5, "it is back in the rotation");
    assert_eq!(ejections(&gw, &bad), 1.0);
}

#[test]
fn never_more_than_max_ejection_percent_of_an_upstream() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    a.set_status(503);
    b.set_status(503);
    let gw = Gateway::start(&config(
        &[&a, &b],
        "{consecutive_errors: 2, base_ejection: 30s, max_ejection_percent: 50}",
        "",
    ));
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/x")).status, 503);
    }
    assert_eq!(
        ejections(&gw, &a) + ejections(&gw, &b),
        1.0,
        "one of two is 50%: the other stays in"
    );
    assert!(a.received() > 0 && b.received() > 0);
}

#[test]
fn a_passing_active_check_ends_an_ejection_early() {
    let (good, bad) = (Backend::start("good"), Backend::start("bad"));
    bad.set_status(500);
    let gw = Gateway::start(&config(
        &[&good, &bad],
        "{consecutive_errors: 1, base_ejection: 60s}",
        "",
    ));
    get(&gw.url("/x"));
    get(&gw.url("/x"));
    // Counted in the failure's logging phase, which may end after its answer.
    wait_for("the ejection counted", Duration::from_secs(5), || {
        (ejections(&gw, &bad) == 1.0).then_some(())
    });
    let before = bad.received();
    for _ in 0..6 {
        get(&gw.url("/x"));
    }
    assert_eq!(bad.received(), before, "ejected for a minute");
    // /health of the bad backend passes: with active checks on, the next check brings it back.
    gw.reconfigure(&config(
        &[&good, &bad],
        "{consecutive_errors: 1, base_ejection: 60s}",
        "    health_check: {kind: http, path: /health, interval: 200ms, timeout: 300ms}\n",
    ));
    gw.signal("HUP");
    wait_for(
        "a check to end the ejection",
        Duration::from_secs(5),
        || {
            get(&gw.url("/x"));
            (bad.received() > before).then_some(())
        },
    );
}

#[test]
fn bad_outlier_settings_are_all_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("gw.yaml");
    std::fs::write(
        &file,
        "upstreams:\n  u:\n    backends: [{addr: \"127.0.0.1:1\"}]\n    outlier: {consecutive_errors: 0, base_ejection: 10s, max_ejection: 5s, max_ejection_percent: 150}\nroutes:\n  - {name: r, path: /, upstream: u}\n",
    )
    .expect("write");
    let out = Command::new(BIN)
        .arg("-t")
        .arg("-c")
        .arg(&file)
        .output()
        .expect("gateway -t");
    let text =
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    for path in [
        "upstreams.u.outlier.consecutive_errors",
        "upstreams.u.outlier.max_ejection:",
        "upstreams.u.outlier.max_ejection_percent",
    ] {
        assert!(text.contains(path), "{path} in {text}");
    }
}

fn breaker_config(backend: &Backend, breaker: &str) -> String {
    format!(
        "upstreams:\n  u:\n    backends: [{{addr: \"{}\"}}]\n    circuit_breaker: {breaker}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        backend.addr
    )
}

#[test]
fn past_max_requests_the_answer_is_an_immediate_503_with_retry_after() {
    let b = Backend::start("slow");
    let gw = Gateway::start(&breaker_config(&b, "{max_requests: 2}"));
    std::thread::scope(|s| {
        let slow: Vec<_> = (0..2)
            .map(|_| s.spawn(|| get(&gw.url("/x?delay_ms=1500"))))
            .collect();
        wait_for(
            "two requests at the backend",
            Duration::from_secs(5),
            || (b.received() == 2).then_some(()),
        );
        let started = Instant::now();
        let refused = get(&gw.url("/x"));
        assert_eq!(
            (refused.status, refused.error_code()),
            (503, "upstream_overloaded".to_owned())
        );
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "refused at once, not queued: {:?}",
            started.elapsed()
        );
        assert_eq!(
            b.received(),
            2,
            "the refused request never reached the backend"
        );
        for h in slow {
            assert_eq!(h.join().expect("slow request").status, 200);
        }
    });
    assert_eq!(
        get(&gw.url("/x")).status,
        200,
        "room again once they finished"
    );
}

#[test]
fn the_breaker_opens_on_a_failure_burst_half_opens_and_closes() {
    let b = Backend::start("flaky");
    b.set_status(500);
    let gw = Gateway::start(&breaker_config(
        &b,
        "{failure_percent: 50, window: 10s, min_requests: 4, open_for: 2s, half_open_requests: 2}",
    ));
    for _ in 0..4 {
        assert_eq!(get(&gw.url("/x")).status, 500);
    }
    let open = get(&gw.url("/x"));
    assert_eq!(
        (open.status, open.error_code()),
        (503, "upstream_overloaded".to_owned())
    );
    assert!(open.header("retry-after").is_some());
    assert_eq!(b.received(), 4, "an open breaker sends nothing");
    assert_eq!(gw.metric("circuit_state{upstream=\"u\"}"), Some(1.0));
    assert!(gw
        .log()
        .contains("circuit breaker of upstream u is now open"));

    // Still failing when the trials come: open again.
    wait_for(
        "a trial request to reach the backend",
        Duration::from_secs(5),
        || (get(&gw.url("/x")).status == 500).then_some(()),
    );
    assert_eq!(b.received(), 5, "one trial went through");
    assert_eq!(
        get(&gw.url("/x")).status,
        503,
        "the failed trial opened it again"
    );

    // Recovered: the trials succeed and the breaker closes.
    b.set_status(0);
    wait_for(
        "the breaker to let trials through",
        Duration::from_secs(5),
        || (get(&gw.url("/x")).status == 200).then_some(()),
    );
    assert_eq!(get(&gw.url("/x")).status, 200);
    wait_for("the breaker to close", Duration::from_secs(5), || {
        (gw.metric("circuit_state{upstream=\"u\"}") == Some(0.0)).then_some(())
    });
    for _ in 0..10 {
        assert_eq!(get(&gw.url("/x")).status, 200);
    }
    let log = gw.log();
    for state in ["open", "half_open", "closed"] {
        assert!(
            log.contains(&format!("circuit breaker of upstream u is now {state}")),
            "{state}"
        );
    }
    assert_eq!(
        gw.metric("circuit_transitions_total{state=\"open\",upstream=\"u\"}"),
        Some(2.0)
    );
}

/// A loopback listener that accepts nothing, its one queue place taken: connects to it hang
/// (Linux drops the SYN of a full accept queue) until it starts serving.
struct Unaccepting {
    listener: std::net::TcpListener,
    _queued: std::net::TcpStream,
}

impl Unaccepting {
    fn new() -> Unaccepting {
        use socket2::{Domain, Socket, Type};
        let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
        let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
        socket.bind(&any.into()).expect("bind");
        socket.listen(0).expect("listen");
        let listener: std::net::TcpListener = socket.into();
        let addr = listener.local_addr().expect("addr");
        let queued = std::net::TcpStream::connect(addr).expect("the queued connection");
        // Readiness: the next connect no longer completes.
        wait_for("a full accept queue", Duration::from_secs(5), || {
            std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200))
                .is_err()
                .then_some(())
        });
        Unaccepting {
            listener,
            _queued: queued,
        }
    }

    /// Accepts from now on, answering every request on every connection with 200.
    fn serve(self) {
        std::thread::spawn(move || {
            for stream in self.listener.incoming().flatten() {
                std::thread::spawn(move || answer_all(stream));
            }
        });
    }
}

fn answer_all(mut stream: std::net::TcpStream) {
    use std::io::{Read, Write};
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            return;
        }
        seen.extend_from_slice(&buf[..n]);
        while let Some(end) = seen.windows(4).position(|w| w == b"\r\n\r\n") {
            seen.drain(..end + 4);
            let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
            if stream.write_all(ok).is_err() {
                return;
            }
        }
    }
}

#[test]
fn past_max_pending_connects_the_answer_is_an_immediate_503_and_connects_resume() {
    use common::auth::{auth_section_with_admin_key, ADMIN_KEY};
    let stuck = Unaccepting::new();
    let addr = stuck.listener.local_addr().expect("addr");
    let gw = Gateway::start(&format!(
        "{}upstreams:\n  u:\n    backends: [{{addr: \"{addr}\"}}]\n    connect_timeout: 20s\n    retries: 0\n    circuit_breaker: {{max_pending_connects: 2}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        auth_section_with_admin_key("memory")
    ));
    gw.wait_admin();
    let connecting = || {
        let r = common::request(
            "GET",
            &gw.admin_url("/api/upstreams"),
            &[("x-api-key", ADMIN_KEY)],
            None,
        );
        r.json()["upstreams"][0]["connecting"].as_u64()
    };
    assert_eq!(connecting(), Some(0));
    std::thread::scope(|s| {
        let waiting: Vec<_> = (0..2).map(|_| s.spawn(|| get(&gw.url("/x")))).collect();
        wait_for("two connects under way", Duration::from_secs(5), || {
            (connecting() == Some(2)).then_some(())
        });
        let started = Instant::now();
        let refused = get(&gw.url("/x"));
        assert_eq!(
            (refused.status, refused.error_code()),
            (503, "upstream_overloaded".to_owned())
        );
        assert_eq!(refused.header("retry-after"), Some("1"));
        assert!(
            started.elapsed() < Duration::from_millis(1000),
            "refused at once, not queued: {:?}",
            started.elapsed()
        );
        // The backend accepts again: the waiting connects complete (on their SYN's next try).
        stuck.serve();
        for w in waiting {
            assert_eq!(w.join().expect("waiting request").status, 200);
        }
    });
    assert_eq!(connecting(), Some(0));
    assert_eq!(get(&gw.url("/x")).status, 200, "room again");
}
