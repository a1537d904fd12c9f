//! Rate limits end to end: burst exactness, refill, per-key isolation, overrides, sliding window,
//! one limit shared by two gateways through Redis (leased a few tokens at a time: round trips
//! and accuracy across three gateways), and Redis going away.

mod common;

use common::auth::{auth_section, tokens, with_token};
use common::redis::Redis;
use common::{request, Backend, Gateway, Resp};
use std::time::{Duration, Instant};

fn from(gw: &Gateway, path: &str, ip: &str) -> Resp {
    request("GET", &gw.url(path), &[("x-forwarded-for", ip)], None)
}

fn passed(gw: &Gateway, path: &str, ip: &str, n: usize) -> usize {
    (0..n).filter(|_| from(gw, path, ip).status == 200).count()
}

fn config(backend: &Backend, head: &str, routes: &str) -> String {
    format!(
        "security: {{trusted_proxies: [127.0.0.1/32]}}\n{head}upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n{routes}",
        backend.addr
    )
}

/// Tokens a 5/s bucket can regain in `elapsed`: what a slow machine may add to a count.
fn refilled(elapsed: Duration) -> usize {
    (elapsed.as_secs_f64() * 5.0).floor() as usize
}

#[test]
fn burst_is_exact_refill_follows_the_rate_and_headers_agree() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b, "", "  - {name: r, path: /, upstream: u, rate_limit: {rate: 5/s, burst: 10, key: [client_ip]}}\n"));
    let started = Instant::now();
    let first = from(&gw, "/x", "198.51.100.1");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("ratelimit-limit"), Some("10"));
    assert_eq!(first.header("ratelimit-remaining"), Some("9"));
    assert!(first.header("ratelimit-reset").is_some_and(|v| v != "0"));

    // 19 more at once: the bucket had 9 left.
    let answers: Vec<Resp> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..19)
            .map(|_| s.spawn(|| from(&gw, "/x", "198.51.100.1")))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    let burst_end = Instant::now();
    let extra = refilled(burst_end - started);
    let ok: Vec<&Resp> = answers.iter().filter(|r| r.status == 200).collect();
    assert!(
        (9..=9 + extra).contains(&ok.len()),
        "{} of 19 passed ({extra} tokens could refill)",
        ok.len()
    );
    if extra == 0 {
        let mut remaining: Vec<u64> = ok
            .iter()
            .map(|r| {
                r.header("ratelimit-remaining")
                    .and_then(|v| v.parse().ok())
                    .expect("remaining")
            })
            .collect();
        remaining.sort_unstable();
        assert_eq!(remaining, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
    }
    let limited = answers.iter().find(|r| r.status == 429).expect("a refusal");
    assert_eq!(limited.error_code(), "rate_limited");
    assert_eq!(limited.header("retry-after"), Some("1"));
    assert_eq!(limited.header("ratelimit-remaining"), Some("0"));
    assert_eq!(b.hits(), 1 + ok.len());

    // Refill is a matter of time: after one second, five more tokens.
    std::thread::sleep(Duration::from_millis(1000));
    let again = passed(&gw, "/x", "198.51.100.1", 20);
    // The bucket may carry a fraction of a token out of the burst: one more at most.
    let most = (refilled(burst_end.elapsed()) + 1).min(10);
    assert!(
        (5..=most).contains(&again),
        "{again} passed after a pause, at most {most} could"
    );
}

#[test]
fn keys_are_isolated_by_client_and_by_user() {
    let b = Backend::start("b");
    let routes = "  - {name: ip, path: /ip, upstream: u, rate_limit: {rate: 1/m, burst: 2, key: [client_ip]}}\n  - {name: me, path: /me, upstream: u, auth: {required: true}, rate_limit: {rate: 1/m, burst: 2, key: [user]}}\n";
    let gw = Gateway::start(&config(&b, &auth_section("memory"), routes));
    assert_eq!(passed(&gw, "/ip", "203.0.113.1", 4), 2);
    assert_eq!(passed(&gw, "/ip", "203.0.113.2", 4), 2);
    let (alice, _) = tokens(&gw, "alice", "alice-pass");
    let (admin, _) = tokens(&gw, "admin", "admin-pass");
    let ok = |t: &str| {
        (0..4)
            .filter(|_| with_token(&gw, "/me", t).status == 200)
            .count()
    };
    assert_eq!(ok(&alice), 2);
    assert_eq!(ok(&admin), 2);
}

#[test]
fn group_and_route_override_the_global_policy_field_by_field() {
    let b = Backend::start("b");
    let head = "rate_limit: {rate: 1/m, burst: 2, key: [client_ip]}\ngroups:\n  api: {prefix: /api, rate_limit: {burst: 4}}\n";
    let routes = "  - {name: plain, path: /plain, upstream: u}\n  - {name: grouped, group: api, path: /g, upstream: u}\n  - {name: own, group: api, path: /own, upstream: u, rate_limit: {burst: 6}}\n  - {name: off, group: api, path: /off, upstream: u, rate_limit: {enabled: false}}\n";
    let gw = Gateway::start(&config(&b, head, routes));
    assert_eq!(passed(&gw, "/plain", "192.0.2.1", 10), 2);
    assert_eq!(passed(&gw, "/api/g", "192.0.2.1", 10), 4);
    assert_eq!(passed(&gw, "/api/own", "192.0.2.1", 10), 6);
    assert_eq!(passed(&gw, "/api/off", "192.0.2.1", 10), 10);
    assert!(from(&gw, "/api/off", "192.0.2.1")
        .header("ratelimit-limit")
        .is_none());
}

#[test]
fn sliding_window_stays_at_its_rate() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b, "", "  - {name: r, path: /, upstream: u, rate_limit: {algorithm: sliding_window, rate: 10/m, key: [client_ip]}}\n"));
    assert_eq!(passed(&gw, "/", "198.51.100.7", 25), 10);
    let r = from(&gw, "/", "198.51.100.7");
    assert_eq!(r.status, 429);
    assert_eq!(r.header("ratelimit-limit"), Some("10"));
    assert!(r
        .header("retry-after")
        .and_then(|v| v.parse::<u64>().ok())
        .is_some_and(|s| (1..=60).contains(&s)));
    assert_eq!(
        passed(&gw, "/", "198.51.100.8", 3),
        3,
        "another client has its own window"
    );
}

/// One route `name` with a Redis-stored limit of `limit` (YAML fields) and `key: [client_ip]`.
fn with_redis(redis: &Redis, backend: &Backend, timeout: &str, name: &str, limit: &str) -> String {
    config(
        backend,
        &format!("redis: {{url: \"{}\", timeout: {timeout}}}\n", redis.url()),
        &format!("  - {{name: {name}, path: /, upstream: u, rate_limit: {{store: redis, {limit}, key: [client_ip]}}}}\n"),
    )
}

fn redis_config(redis: &Redis, backend: &Backend, on_error: &str) -> String {
    let limit = format!("rate: 1/m, burst: 5, on_store_error: {on_error}");
    with_redis(redis, backend, "200ms", "shared", &limit)
}

#[test]
fn two_gateways_share_one_limit_through_redis() {
    let redis = Redis::start();
    let b = Backend::start("b");
    let one = Gateway::start(&redis_config(&redis, &b, "allow"));
    let two = Gateway::start(&redis_config(&redis, &b, "allow"));
    let total: usize = (0..12)
        .map(|i| if i % 2 == 0 { &one } else { &two })
        .filter(|gw| from(gw, "/", "203.0.113.50").status == 200)
        .count();
    assert!(
        (5..=6).contains(&total),
        "{total} passed a shared burst of 5"
    );
    assert_eq!(
        passed(&one, "/", "203.0.113.51", 3),
        3,
        "another client is not affected"
    );
}

fn shared_config(redis: &Redis, backend: &Backend, rate: &str, burst: u64) -> String {
    let limit = format!("rate: {rate}, burst: {burst}");
    with_redis(redis, backend, "500ms", "leased", &limit)
}

#[test]
fn a_busy_key_costs_one_redis_round_trip_per_twenty_requests() {
    let redis = Redis::start();
    let b = Backend::start("b");
    let gw = Gateway::start(&shared_config(&redis, &b, "100000/s", 100_000));
    let before = redis.script_calls();
    let n = 400;
    assert_eq!(passed(&gw, "/", "198.51.100.70", n), n);
    let calls = redis.script_calls() - before;
    // Leases of 20 tokens: 20 round trips. A lease unspent after 250 ms goes back and the next
    // request takes a new one, which only a machine ten times slower than usual would see.
    assert!(
        (n as u64 / 20..=n as u64 / 20 + 3).contains(&calls),
        "{calls} scripts for {n} requests"
    );
    let r = from(&gw, "/", "198.51.100.70");
    assert_eq!(r.header("ratelimit-limit"), Some("100000"));
    let remaining: u64 = r
        .header("ratelimit-remaining")
        .and_then(|v| v.parse().ok())
        .expect("remaining");
    assert!(remaining < 100_000, "remaining {remaining}");
}

/// Concurrent requests of one key share the lease one of them asks for, instead of each asking
/// Redis while it is on its way.
#[test]
fn concurrent_requests_of_a_key_share_one_round_trip_per_lease() {
    let redis = Redis::start();
    let b = Backend::start("b");
    let gw = Gateway::start(&shared_config(&redis, &b, "100000/s", 100_000));
    let before = redis.script_calls();
    let (threads, each) = (16, 50);
    let admitted: usize = std::thread::scope(|s| {
        let clients: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| passed(&gw, "/", "198.51.100.71", each)))
            .collect();
        clients.into_iter().map(|c| c.join().expect("client")).sum()
    });
    let n = threads * each;
    assert_eq!(admitted, n);
    let calls = redis.script_calls() - before;
    // 20 tokens a lease: n / 20 round trips. Leases expire after 250 ms (then a new one is
    // taken), and an asker still out after the Redis timeout lets a waiter ask too, so a slow
    // machine adds a few; a round trip for every request that found the lease empty would add
    // about one per client and lease.
    assert!(
        calls <= (n / 20 + 8) as u64,
        "{calls} scripts for {n} requests from {threads} clients"
    );
}

#[test]
fn three_gateways_keep_a_shared_limit_within_five_percent() {
    let redis = Redis::start();
    let b = Backend::start("b");
    let gateways: Vec<Gateway> = (0..3)
        .map(|_| Gateway::start(&shared_config(&redis, &b, "100/s", 100)))
        .collect();
    let started = Instant::now();
    let run = Duration::from_secs(3);
    let admitted: usize = std::thread::scope(|s| {
        let clients: Vec<_> = gateways
            .iter()
            .flat_map(|gw| [gw, gw])
            .map(|gw| {
                s.spawn(move || {
                    let mut ok = 0;
                    while started.elapsed() < run {
                        ok += usize::from(from(gw, "/", "203.0.113.77").status == 200);
                    }
                    ok
                })
            })
            .collect();
        clients.into_iter().map(|c| c.join().expect("client")).sum()
    });
    let elapsed = started.elapsed().as_secs_f64();
    // The bucket starts full (100) and gains 100 a second; the first request may come a moment
    // after `started`, so the lower bound counts from 0.1 s later.
    let most = 100.0 + 100.0 * elapsed;
    let least = 0.95 * (100.0 + 100.0 * (elapsed - 0.1));
    assert!(
        (least..=most + 1.0).contains(&(admitted as f64)),
        "{admitted} admitted in {elapsed:.2} s: expected {least:.0}..{most:.0}"
    );
}

#[test]
fn redis_gone_follows_on_store_error() {
    let mut redis = Redis::start();
    let b = Backend::start("b");
    let allow = Gateway::start(&redis_config(&redis, &b, "allow"));
    let deny = Gateway::start(&redis_config(&redis, &b, "deny"));
    assert_eq!(from(&allow, "/", "192.0.2.9").status, 200);
    redis.kill();
    let started = Instant::now();
    for _ in 0..3 {
        let r = from(&allow, "/", "192.0.2.9");
        assert_eq!(r.status, 200, "{}", r.body);
        assert!(r.header("ratelimit-limit").is_none());
        let r = from(&deny, "/", "192.0.2.9");
        assert_eq!(r.status, 429, "{}", r.body);
        assert_eq!(r.error_code(), "rate_limited");
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dead Redis must not hang requests"
    );
    let health = request("GET", &allow.url("/health"), &[], None).json();
    assert_eq!(health["checks"]["redis"], "down");
    assert_eq!(health["status"], "degraded");
}

#[test]
fn decisions_are_counted() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b, "", "  - {name: r, path: /, upstream: u, rate_limit: {rate: 1/m, burst: 3, key: [client_ip]}}\n"));
    passed(&gw, "/", "192.0.2.44", 5);
    common::wait_for("the counters", Duration::from_secs(5), || {
        let text = gw.scrape();
        (text.contains(r#"rate_limit_requests_total{result="allowed",route="r"} 3"#)
            && text.contains(r#"rate_limit_requests_total{result="limited",route="r"} 2"#))
        .then_some(())
    });
}
