//! Redis Cluster and Redis Sentinel under two gateway instances: limits, revocations and the
//! cache (with its purge channel) shared through a real cluster (three primaries, one replica
//! each) and a real sentinel set-up, and a primary failed over under load: no 5xx, the shared
//! limit within 5% of its rate, revocations and cache entries as the README promises.

mod common;

use common::auth::{auth_section, tokens, with_token};
use common::redis_ha::{Cluster, Sentinel};
use common::{request, wait_for, Backend, Gateway, Resp};
use serde_json::json;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The shared limit: a burst worth four seconds, so a failover's seconds without Redis (calls
/// denied) cost nothing overall: the bucket fills meanwhile.
const RATE: f64 = 100.0;
const BURST: f64 = 400.0;

fn config(redis: &str, backend: &Backend) -> String {
    format!(
        "redis: {{{redis}, timeout: 500ms}}\nsecurity: {{trusted_proxies: [127.0.0.1/32]}}\n{}cache: {{store: redis, memory_size: 1MiB, lock_timeout: 2s}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: me, path: /me, upstream: u, auth: {{required: true, roles: [user]}}}}\n  - {{name: limited, path: /limited, upstream: u, rate_limit: {{store: redis, rate: {RATE}/s, burst: {BURST}, key: [route], on_store_error: deny}}}}\n  - {{name: cached, path: /cached, upstream: u, cache: {{enabled: true, ttl: 60s}}}}\n",
        auth_section("redis"),
        backend.addr
    )
}

fn get(gw: &Gateway, path: &str) -> Resp {
    request("GET", &gw.url(path), &[("host", "api.example")], None)
}

fn cache_status(r: &Resp) -> String {
    r.header("x-cache-status").unwrap_or("-").to_owned()
}

fn logout(gw: &Gateway, access: &str) -> u16 {
    let auth = format!("Bearer {access}");
    request(
        "POST",
        &gw.url("/auth/logout"),
        &[("authorization", &auth)],
        Some(&json!({}).to_string()),
    )
    .status
}

fn purge(gw: &Gateway, path: &str) -> u16 {
    let req = format!("PURGE {path} HTTP/1.1\r\nHost: api.example\r\nConnection: close\r\n\r\n");
    let text = common::raw(gw.proxy, req.as_bytes());
    text.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer to PURGE: {text:?}"))
}

/// Requests to `/limited` from 8 threads on both instances until `stop`: statuses counted, and
/// the time from the first request to the last answer.
fn load(gws: [&Gateway; 2], stop: &Arc<AtomicBool>) -> (BTreeMap<u16, usize>, Duration) {
    let seen = Arc::new(Mutex::new(BTreeMap::new()));
    let urls: Vec<String> = gws.iter().map(|g| g.url("/limited")).collect();
    let started = Instant::now();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            let (seen, stop, urls) = (seen.clone(), stop.clone(), urls.clone());
            std::thread::spawn(move || {
                let mut n = i;
                while !stop.load(Ordering::SeqCst) {
                    let status = request("GET", &urls[n % 2], &[], None).status;
                    *seen.lock().expect("counts").entry(status).or_insert(0) += 1;
                    n += 1;
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("load thread");
    }
    let counts = seen.lock().expect("counts").clone();
    (counts, started.elapsed())
}

/// Runs the load on both instances and calls `fail_over` 2.5 s into it; the load goes on 6 s
/// more. Then checks: no 5xx, and what the shared bucket let through within 5% of its rate.
fn fail_over_under_load(a: &Gateway, b: &Gateway, fail_over: impl FnOnce()) {
    let stop = Arc::new(AtomicBool::new(false));
    let (counts, elapsed) = std::thread::scope(|s| {
        let stop2 = stop.clone();
        let runner = s.spawn(move || load([a, b], &stop2));
        std::thread::sleep(Duration::from_millis(2500));
        fail_over();
        std::thread::sleep(Duration::from_secs(6));
        stop.store(true, Ordering::SeqCst);
        runner.join().expect("load")
    });
    let errors: usize = counts
        .iter()
        .filter(|(s, _)| **s >= 500)
        .map(|(_, n)| n)
        .sum();
    assert_eq!(errors, 0, "5xx during the failover: {counts:?}");
    let allowed = counts.get(&200).copied().unwrap_or(0) as f64;
    let limited = counts.get(&429).copied().unwrap_or(0);
    assert!(limited > 0, "the load must exceed the limit: {counts:?}");
    let expected = BURST + RATE * elapsed.as_secs_f64();
    let ratio = allowed / expected;
    assert!(
        (0.95..=1.05).contains(&ratio),
        "allowed {allowed} of an expected {expected:.0} ({ratio:.3}) over {elapsed:?}: {counts:?}\n{}",
        a.log().lines().filter(|l| !l.contains("\"access\"")).collect::<Vec<_>>().join("\n")
    );
}

/// What was shared before a failover: a revoked token, a cached answer.
struct Before {
    revoked: String,
    cached: Resp,
}

fn before_failover(a: &Gateway, b: &Gateway) -> Before {
    let (revoked, _) = tokens(a, "alice", "alice-pass");
    assert_eq!(logout(a, &revoked), 204);
    let cached = get(a, "/cached/x");
    assert_eq!(cache_status(&cached), "MISS");
    assert_eq!(cache_status(&get(b, "/cached/x")), "HIT");
    Before { revoked, cached }
}

/// What the README promises across a coordinated failover: a revocation made before it holds
/// on an instance that starts after it (it is in Redis, not only in memory), one made after it
/// reaches the other instance, a cached entry is still shared, and a purge still reaches the
/// other instance's in-process tier.
fn after_failover(cfg: &str, a: &Gateway, b: &Gateway, before: &Before) {
    let late = Gateway::start(cfg);
    let synced = (0..500).any(|_| {
        std::thread::sleep(Duration::from_millis(20));
        with_token(&late, "/me", &before.revoked).status == 401
    });
    assert!(
        synced,
        "the late instance did not see the revocation: {}",
        late.log()
            .lines()
            .filter(|l| !l.contains("\"access\""))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let (revoked_after, _) = tokens(b, "admin", "admin-pass");
    assert_eq!(with_token(a, "/me", &revoked_after).status, 200);
    assert_eq!(logout(b, &revoked_after), 204);
    wait_for(
        "the revocation to reach the other instance",
        Duration::from_secs(5),
        || (with_token(a, "/me", &revoked_after).status == 401).then_some(()),
    );
    let hit = get(&late, "/cached/x");
    assert_eq!(cache_status(&hit), "HIT");
    assert_eq!(hit.body, before.cached.body);
    assert_eq!(purge(a, "/cached/x"), 200);
    wait_for(
        "the purge to reach the other instance",
        Duration::from_secs(5),
        || (cache_status(&get(b, "/cached/x")) == "MISS").then_some(()),
    );
}

#[test]
fn a_redis_cluster_is_shared_and_survives_a_failover_under_load() {
    let cluster = Cluster::start();
    let backend = Backend::start("b");
    let nodes: Vec<String> = cluster.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let cfg = config(&format!("cluster: [{}]", nodes.join(", ")), &backend);
    let a = Gateway::start(&cfg);
    let b = Gateway::start(&cfg);
    assert_eq!(get(&a, "/health").json()["checks"]["redis"], "ok");

    // The limiter's key, to fail its shard over.
    assert_eq!(get(&a, "/limited").status, 200);
    let key = cluster
        .keys("gw:rl:*")
        .into_iter()
        .next()
        .expect("the limiter's key is in the cluster");
    let before = before_failover(&a, &b);
    fail_over_under_load(&a, &b, || {
        cluster.fail_over(&key);
    });
    // The revocations' shard (`{gw:auth}` keys) too, and the cache entry's.
    for key in ["{gw:auth}:revoked".to_owned(), cache_key(&cluster)] {
        cluster.fail_over(&key);
    }
    after_failover(&cfg, &a, &b, &before);
}

/// The Redis key of the cached entry.
fn cache_key(cluster: &Cluster) -> String {
    cluster
        .keys("*cached/x*")
        .into_iter()
        .find(|k| !k.contains(":lock:"))
        .expect("the cached entry is in the cluster")
}

#[test]
fn redis_sentinel_is_followed_when_the_primary_crashes_under_load() {
    let mut set = Sentinel::start();
    let backend = Backend::start("b");
    let nodes: Vec<String> = set.urls().iter().map(|u| format!("\"{u}\"")).collect();
    let cfg = config(
        &format!(
            "sentinel: {{master: mymaster, nodes: [{}]}}",
            nodes.join(", ")
        ),
        &backend,
    );
    let a = Gateway::start(&cfg);
    let b = Gateway::start(&cfg);
    assert_eq!(get(&a, "/limited").status, 200);
    assert_eq!(set.current_primary(), Some(set.primary));
    let before = before_failover(&a, &b);
    fail_over_under_load(&a, &b, || set.kill_primary());
    assert!(
        a.log().contains("the sentinels name a new primary")
            || b.log().contains("the sentinels name a new primary"),
        "{}",
        a.log()
    );
    after_failover(&cfg, &a, &b, &before);
}
