//! Retries beyond connect failures: on another backend, idempotent methods only once a backend
//! was reached, within the upstream's retry budget.

mod common;

use common::{dead_addr, request, Backend, Gateway};

fn config(addrs: &[String], retry: &str, budget: &str) -> String {
    let list: Vec<String> = addrs.iter().map(|a| format!("{{addr: \"{a}\"}}")).collect();
    format!(
        "upstreams:\n  u:\n    backends: [{}]\n{budget}routes:\n  - {{name: r, path: /, upstream: u, retry: {retry}}}\n",
        list.join(", ")
    )
}

fn counter(gw: &Gateway, series: &str) -> u64 {
    gw.metric(series).map_or(0, |v| v as u64)
}

#[test]
fn a_503_on_a_get_is_retried_on_another_backend_and_the_client_sees_200() {
    let (bad, good) = (Backend::start("bad"), Backend::start("good"));
    bad.set_status(503);
    let gw = Gateway::start(&config(
        &[bad.addr.to_string(), good.addr.to_string()],
        "{attempts: 2, on: [503], backoff: 1ms}",
        "",
    ));
    for i in 0..10 {
        let r = request("GET", &gw.url(&format!("/x/{i}")), &[], None);
        assert_eq!(r.status, 200, "{i}: {}", r.body);
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    let retried = bad.received() as u64;
    assert!(
        retried >= 4,
        "round robin sent about half to the bad one first: {retried}"
    );
    assert_eq!(
        good.received(),
        10,
        "each request reached the good backend once"
    );
    assert_eq!(
        counter(&gw, "retries_total{reason=\"503\",route=\"r\"}"),
        retried
    );
    let scrape = gw.scrape();
    let line = format!(
        "backend_requests_total{{backend=\"{}\",status=\"503\",upstream=\"u\"}} {retried}",
        bad.addr
    );
    assert!(scrape.contains(&line), "{line} in\n{scrape}");

    // A PUT with a body is replayed whole on the other backend.
    let r = request("PUT", &gw.url("/put"), &[], Some("the body"));
    assert_eq!(r.status, 200);
    let sent: serde_json::Value = r.json();
    assert_eq!(sent["body"], "the body");
}

#[test]
fn a_post_is_not_retried_once_it_reached_a_backend_but_is_after_a_refused_connect() {
    let (a, b) = (Backend::start("a"), Backend::start("b"));
    a.set_status(503);
    b.set_status(503);
    let gw = Gateway::start(&config(
        &[a.addr.to_string(), b.addr.to_string()],
        "{attempts: 3, on: [connect, 503], backoff: 1ms}",
        "",
    ));
    for _ in 0..6 {
        let r = request("POST", &gw.url("/order"), &[], Some("{}"));
        assert_eq!(r.status, 503);
    }
    assert_eq!(
        a.received() + b.received(),
        6,
        "each POST reached one backend once"
    );

    let good = Backend::start("good");
    let gw = Gateway::start(&config(
        &[dead_addr().to_string(), good.addr.to_string()],
        "{attempts: 2, on: [connect]}",
        "",
    ));
    for _ in 0..4 {
        let r = request("POST", &gw.url("/order"), &[], Some("{}"));
        assert_eq!(r.status, 200, "nothing reached the dead backend: retried");
    }
    assert_eq!(good.received(), 4);
}

#[test]
fn the_budget_caps_retries_when_every_backend_fails() {
    let (a, b, c) = (
        Backend::start("a"),
        Backend::start("b"),
        Backend::start("c"),
    );
    for x in [&a, &b, &c] {
        x.set_status(502);
    }
    let gw = Gateway::start(&config(
        &[a.addr.to_string(), b.addr.to_string(), c.addr.to_string()],
        "{attempts: 3, on: [502], backoff: 1ms}",
        "    retry_budget: {percent: 20, min_per_second: 1}\n",
    ));
    for _ in 0..50 {
        assert_eq!(request("GET", &gw.url("/x"), &[], None).status, 502);
    }
    let tries = (a.received() + b.received() + c.received()) as u64;
    // Without a budget: 150 tries. With it: 50 + at most 10 (1/s over 10 s) + 20% of 50.
    assert!(tries <= 70, "{tries} tries");
    assert!(tries >= 55, "the floor still allows retries: {tries}");
    assert_eq!(
        counter(&gw, "retries_total{reason=\"502\",route=\"r\"}"),
        tries - 50
    );
    assert!(counter(&gw, "retry_budget_exhausted_total{upstream=\"u\"}") > 0);
}

#[test]
fn a_timed_out_try_is_retried_on_another_backend_within_its_per_try_timeout() {
    let (slow, good) = (Backend::start("slow"), Backend::start("good"));
    slow.set_delay(5_000);
    let gw = Gateway::start(&config(
        &[slow.addr.to_string(), good.addr.to_string()],
        "{attempts: 2, on: [timeout], per_try_timeout: 300ms, backoff: 1ms}",
        "",
    ));
    let started = std::time::Instant::now();
    for i in 0..6 {
        let r = request("GET", &gw.url(&format!("/t/{i}")), &[], None);
        assert_eq!(r.status, 200, "{i}: {}", r.body);
        assert_eq!(r.header("x-backend"), Some("good"));
    }
    // Each request waited at most one per-try timeout, never the slow backend's 5 s.
    let took = started.elapsed();
    assert!(took < std::time::Duration::from_secs(5), "{took:?}");
    let timed_out = slow.received() as u64;
    assert!(
        timed_out >= 2,
        "round robin tried the slow one first: {timed_out}"
    );
    assert_eq!(
        counter(&gw, "retries_total{reason=\"timeout\",route=\"r\"}"),
        timed_out
    );
    let line = format!(
        "backend_requests_total{{backend=\"{}\",status=\"timeout\",upstream=\"u\"}} {timed_out}",
        slow.addr
    );
    let scrape = gw.scrape();
    assert!(scrape.contains(&line), "{line} in\n{scrape}");

    // A POST that timed out is not sent again: its answer is the timeout.
    let posts: Vec<u16> = (0..2)
        .map(|_| request("POST", &gw.url("/p"), &[], Some("x")).status)
        .collect();
    assert!(
        posts.contains(&504),
        "one POST met the slow backend: {posts:?}"
    );
}
