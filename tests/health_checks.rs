//! Active health checks: eviction, recovery, TCP probes, no healthy backend, reload.

mod common;

use common::{dead_addr, get, wait_for, Backend, Gateway};
use std::time::{Duration, Instant};

const INTERVAL_MS: u64 = 400;

fn config(addrs: &[String], check: &str) -> String {
    let list: Vec<String> = addrs.iter().map(|a| format!("{{addr: \"{a}\"}}")).collect();
    format!(
        "upstreams:\n  u:\n    backends: [{}]\n    health_check: {check}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        list.join(", ")
    )
}

fn http_check() -> String {
    format!("{{kind: http, path: /health, interval: {INTERVAL_MS}ms, timeout: 300ms, healthy_threshold: 1, unhealthy_threshold: 1}}")
}

fn healthy_count(gw: &Gateway) -> (u64, String) {
    let body = get(&gw.url("/health")).json();
    let n = body["checks"]["upstreams"]["u"]["healthy"]
        .as_u64()
        .expect("healthy count");
    (n, body["status"].as_str().unwrap_or("").to_owned())
}

#[test]
fn failing_backend_is_evicted_within_two_intervals_and_returns() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    let gw = Gateway::start(&config(
        &[a.addr.to_string(), b.addr.to_string()],
        &http_check(),
    ));
    wait_for("both healthy", Duration::from_secs(10), || {
        (healthy_count(&gw).0 == 2).then_some(())
    });

    a.set_healthy(false);
    let flipped = Instant::now();
    wait_for(
        "eviction",
        Duration::from_millis(2 * INTERVAL_MS + 300),
        || (healthy_count(&gw).0 == 1).then_some(()),
    );
    assert!(flipped.elapsed() < Duration::from_millis(2 * INTERVAL_MS + 300));
    assert_eq!(healthy_count(&gw).1, "degraded");
    let before = a.hits();
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/")).header("x-backend"), Some("b"));
    }
    assert_eq!(a.hits(), before, "an unhealthy backend got traffic");

    a.set_healthy(true);
    wait_for("recovery", Duration::from_secs(5), || {
        (healthy_count(&gw).0 == 2).then_some(())
    });
    assert_eq!(healthy_count(&gw).1, "ok");
    for _ in 0..10 {
        get(&gw.url("/"));
    }
    assert_eq!(a.hits(), before + 5);
}

#[test]
fn tcp_check_takes_a_dead_backend_out_so_no_request_fails() {
    let live = Backend::start("live");
    let check =
        format!("{{kind: tcp, interval: {INTERVAL_MS}ms, timeout: 300ms, unhealthy_threshold: 1}}");
    let gw = Gateway::start(&config(
        &[dead_addr().to_string(), live.addr.to_string()],
        &check,
    ));
    wait_for(
        "the dead backend to be marked",
        Duration::from_secs(5),
        || (healthy_count(&gw).0 == 1).then_some(()),
    );
    // No retries configured: every request must still succeed, as the dead one is never picked.
    for i in 0..20 {
        assert_eq!(get(&gw.url("/")).status, 200, "request {i}");
    }
}

#[test]
fn no_healthy_backend_is_a_503_and_health_says_down() {
    let a = Backend::start("a");
    a.set_healthy(false);
    let gw = Gateway::start(&config(&[a.addr.to_string()], &http_check()));
    wait_for("eviction", Duration::from_secs(5), || {
        (healthy_count(&gw).0 == 0).then_some(())
    });
    let r = get(&gw.url("/x"));
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "no_healthy_upstream");
    let h = get(&gw.url("/health"));
    assert_eq!(h.status, 503);
    assert_eq!(h.json()["status"], "down");
    assert_eq!(a.hits(), 0);
}

#[test]
fn reload_keeps_the_health_state_of_unchanged_upstreams() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    a.set_healthy(false);
    // One probe at start, the next an hour later: only a carried-over state can still say 1/2.
    let check = "{kind: http, interval: 1h, healthy_threshold: 1, unhealthy_threshold: 1}";
    let body = config(&[a.addr.to_string(), b.addr.to_string()], check);
    let gw = Gateway::start(&body);
    wait_for("eviction", Duration::from_secs(5), || {
        (healthy_count(&gw).0 == 1).then_some(())
    });
    gw.reconfigure(&body.replace("path: /,", "path: /moved,"));
    gw.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        (get(&gw.url("/moved")).status == 200).then_some(())
    });
    assert_eq!(healthy_count(&gw).0, 1);
    for _ in 0..6 {
        assert_eq!(get(&gw.url("/moved")).header("x-backend"), Some("b"));
    }
}
