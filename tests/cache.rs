//! Response caching end to end: real backends, the real binary, a real `redis-server` for the
//! shared store.

mod common;

use common::redis::Redis;
use common::{request, wait_for, Backend, Gateway, Resp};
use std::time::{Duration, Instant};

fn get(gw: &Gateway, path: &str) -> Resp {
    request("GET", &gw.url(path), &[], None)
}

/// `PURGE path` over a raw connection (HTTP clients refuse unknown methods): status and body.
fn purge(gw: &Gateway, path: &str) -> (u16, serde_json::Value) {
    purge_with(gw, path, "")
}

/// `PURGE path` with extra header lines (each ending in CRLF).
fn purge_with(gw: &Gateway, path: &str, headers: &str) -> (u16, serde_json::Value) {
    let req = format!("PURGE {path} HTTP/1.1\r\nHost: gw\r\n{headers}Connection: close\r\n\r\n");
    let text = common::raw(gw.proxy, req.as_bytes());
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no answer to PURGE: {text:?}"));
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (status, serde_json::from_str(body).unwrap_or_default())
}

fn status(r: &Resp) -> &str {
    r.header("x-cache-status").unwrap_or("-")
}

fn config(backend: &Backend, cache: &str, route_cache: &str) -> String {
    format!(
        "security: {{trusted_proxies: [127.0.0.1/32]}}\ncache: {cache}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u, cache: {route_cache}}}\n  - {{name: plain, path: /plain, upstream: u}}\n",
        backend.addr
    )
}

/// The `cache_requests_total` sample for `route` and `result`.
fn counted(gw: &Gateway, route: &str, result: &str) -> u64 {
    let needle = format!("cache_requests_total{{result=\"{result}\",route=\"{route}\"}} ");
    gw.scrape()
        .lines()
        .find_map(|l| l.strip_prefix(needle.as_str()))
        .map_or(0, |v| v.trim().parse().unwrap_or(0))
}

/// Fires `n` GETs for `path` at once, spread over `gateways` (under one `Host`, as behind a
/// load balancer); returns the answers.
fn concurrently(gateways: &[&Gateway], path: &str, n: usize) -> Vec<Resp> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let gw = gateways[i % gateways.len()];
                s.spawn(move || request("GET", &gw.url(path), &[("host", "api.example")], None))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    })
}

#[test]
fn miss_then_hit_with_query_in_the_key_head_from_get_post_bypassed_and_purge() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(
        &b,
        "{memory_size: 8MiB}",
        "{enabled: true, ttl: 60s}",
    ));

    let first = get(&gw, "/a?x=1");
    assert_eq!((first.status, status(&first)), (200, "MISS"), "{first:?}");
    let second = get(&gw, "/a?x=1");
    assert_eq!((second.status, status(&second)), (200, "HIT"));
    assert_eq!(second.body, first.body, "the stored answer, not a new one");
    assert!(
        second.header("age").is_some(),
        "Age on answers from the cache"
    );
    assert!(second.header("x-request-id") != first.header("x-request-id"));
    assert_eq!(b.hits(), 1);

    assert_eq!(
        status(&get(&gw, "/a?x=2")),
        "MISS",
        "the query is part of the key"
    );
    assert_eq!(b.hits(), 2);
    let head = request("HEAD", &gw.url("/a?x=1"), &[], None);
    assert_eq!(
        (head.status, status(&head)),
        (200, "HIT"),
        "HEAD from the GET entry"
    );
    assert!(head.body.is_empty());
    let post = request("POST", &gw.url("/a?x=1"), &[], Some("{}"));
    assert_eq!((post.status, status(&post)), (200, "BYPASS"));
    assert_eq!(b.hits(), 3, "POST reached the backend");
    assert_eq!(status(&get(&gw, "/a?x=1")), "HIT");
    let elsewhere = request(
        "GET",
        &gw.url("/a?x=1"),
        &[("host", "elsewhere.example")],
        None,
    );
    assert_eq!(
        status(&elsewhere),
        "MISS",
        "one host's answer is not another's"
    );
    assert_eq!(b.hits(), 4);
    let plain = get(&gw, "/plain/x");
    assert_eq!(plain.header("x-cache-status"), None, "not a cache route");

    // Purge one URL, then a prefix.
    // A client forwarded by the trusted proxy is not the proxy.
    let (code, body) = purge_with(&gw, "/a?x=1", "X-Forwarded-For: 203.0.113.9\r\n");
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    assert_eq!(status(&get(&gw, "/a?x=1")), "HIT");
    let (code, body) = purge(&gw, "/a?x=1");
    assert_eq!(
        (code, body["purged"].as_u64()),
        (200, Some(2)),
        "both hosts' entries"
    );
    assert_eq!(status(&get(&gw, "/a?x=1")), "MISS");
    assert_eq!(status(&get(&gw, "/a?x=2")), "HIT", "other URLs stay");
    for p in ["/p/1", "/p/2", "/px"] {
        assert_eq!(status(&get(&gw, p)), "MISS");
    }
    let (_, body) = purge(&gw, "/p*");
    assert_eq!(body["purged"].as_u64(), Some(2), "{body}");
    assert_eq!(status(&get(&gw, "/p/1")), "MISS");
    assert_eq!(status(&get(&gw, "/px")), "HIT", "whole segments only");

    assert!(counted(&gw, "r", "hit") >= 5);
    assert!(counted(&gw, "r", "miss") >= 7);
    assert_eq!(counted(&gw, "r", "bypass"), 1);
    let lines = wait_for("access lines", Duration::from_secs(10), || {
        let lines = gw.access_lines();
        (lines.len() >= 12).then_some(lines)
    });
    assert!(lines.iter().any(|l| l["cache"] == "hit"), "{lines:?}");
    assert!(lines.iter().any(|l| l["cache"] == "bypass"));
}

#[test]
fn freshness_follows_the_origin_and_some_answers_are_never_kept() {
    let b = Backend::start("b");
    // No trusted proxies here: PURGE is refused.
    let gw = Gateway::start(&format!(
        "cache: {{memory_size: 8MiB}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u, cache: {{enabled: true}}}}\n",
        b.addr
    ));
    let path = "/e?set_header=cache-control:max-age=1";
    assert_eq!(status(&get(&gw, path)), "MISS");
    assert_eq!(status(&get(&gw, path)), "HIT");
    let started = Instant::now();
    let after = wait_for("the entry to expire", Duration::from_secs(10), || {
        let r = get(&gw, path);
        (status(&r) != "HIT").then_some(r)
    });
    assert_eq!(status(&after), "EXPIRED");
    assert!(started.elapsed() < Duration::from_secs(3), "max-age=1 held");

    for (i, never) in [
        "set_header=cache-control:no-store",
        "set_header=cache-control:private,max-age=60",
        "set_header=set-cookie:session=1",
        "set_header=vary:*",
        "status=500",
        "status=302",
    ]
    .iter()
    .enumerate()
    {
        let path = format!("/n{i}?{never}");
        let before = b.hits();
        for _ in 0..3 {
            let r = get(&gw, &path);
            assert_eq!(status(&r), "MISS", "{never}");
        }
        assert_eq!(b.hits(), before + 3, "{never} reached the origin each time");
    }
    let (code, body) = purge(&gw, "/e");
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
}

#[test]
fn answers_over_max_object_size_pass_through_unstored() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(
        &b,
        "{memory_size: 8MiB, max_object_size: 2KiB}",
        "{enabled: true}",
    ));
    for path in ["/big?pad=4096", "/big?pad=4096&chunked=1"] {
        for _ in 0..2 {
            let r = get(&gw, path);
            assert_eq!((r.status, status(&r)), (200, "MISS"), "{path}");
            assert_eq!(
                r.json()["pad"].as_str().map(str::len),
                Some(4096),
                "whole body"
            );
        }
    }
    for path in ["/small?pad=10", "/small?pad=10&chunked=1"] {
        assert_eq!(status(&get(&gw, path)), "MISS");
        assert_eq!(status(&get(&gw, path)), "HIT", "{path}");
    }
    assert_eq!(b.hits(), 6);
}

#[test]
fn credentials_bypass_unless_the_route_opts_in_and_callers_never_share_answers() {
    let b = Backend::start("b");
    let gw = Gateway::start(&format!(
        "cache: {{memory_size: 8MiB}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: open, path: /open, upstream: u, cache: {{enabled: true}}}}\n  - {{name: mine, path: /mine, upstream: u, cache: {{enabled: true, authenticated: true}}}}\n",
        b.addr
    ));
    for h in [
        ("authorization", "Bearer a"),
        ("cookie", "s=1"),
        ("x-api-key", "k"),
    ] {
        for _ in 0..2 {
            let r = request("GET", &gw.url("/open/x"), &[h], None);
            assert_eq!(status(&r), "BYPASS", "{h:?}");
        }
    }
    let as_user = |who: &str| {
        let auth = format!("Bearer {who}");
        request("GET", &gw.url("/mine/x"), &[("authorization", &auth)], None)
    };
    let alice = as_user("alice");
    let bob = as_user("bob");
    assert_eq!((status(&alice), status(&bob)), ("MISS", "MISS"));
    let alice2 = as_user("alice");
    let bob2 = as_user("bob");
    assert_eq!((status(&alice2), status(&bob2)), ("HIT", "HIT"));
    assert_eq!(alice2.json()["headers"]["authorization"], "Bearer alice");
    assert_eq!(bob2.json()["headers"]["authorization"], "Bearer bob");
    let anonymous = get(&gw, "/mine/x");
    assert_eq!(
        status(&anonymous),
        "MISS",
        "no caller's entry for the anonymous"
    );
    assert!(anonymous.json()["headers"]["authorization"].is_null());
}

#[test]
fn conditional_requests_get_304_and_stale_entries_are_revalidated() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b, "{memory_size: 8MiB}", "{enabled: true}"));
    let path = "/c?etag=v1&set_header=cache-control:max-age=1";
    let first = get(&gw, path);
    assert_eq!(status(&first), "MISS");
    assert_eq!(first.header("etag"), Some("\"v1\""));
    let cond = request("GET", &gw.url(path), &[("if-none-match", "\"v1\"")], None);
    assert_eq!((cond.status, cond.body.as_str()), (304, ""), "{cond:?}");
    assert_eq!(b.hits(), 1, "answered from the cache");
    let other = request("GET", &gw.url(path), &[("if-none-match", "\"v0\"")], None);
    assert_eq!(other.status, 200);

    let stale = wait_for("the entry to go stale", Duration::from_secs(10), || {
        let r = get(&gw, path);
        (status(&r) != "HIT").then_some(r)
    });
    // The origin answered 304 to the gateway's revalidation; the stored body is served.
    assert_eq!((stale.status, status(&stale)), (200, "EXPIRED"));
    assert_eq!(stale.body, first.body);
    assert_eq!(b.hits(), 2);
    let fresh = get(&gw, path);
    assert_eq!((status(&fresh), fresh.body == first.body), ("HIT", true));
    assert_eq!(b.hits(), 2, "fresh again without a new body");
}

#[test]
fn stale_while_revalidate_answers_at_once_and_stale_if_error_covers_a_dead_origin() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(
        &b,
        "{memory_size: 8MiB, stale_if_error: 60s}",
        "{enabled: true}",
    ));
    let swr = "/w?set_header=cache-control:max-age=1,stale-while-revalidate=30";
    let first = get(&gw, swr);
    assert_eq!(status(&first), "MISS");
    let stale = wait_for("the entry to go stale", Duration::from_secs(10), || {
        let r = get(&gw, swr);
        (status(&r) != "HIT").then_some(r)
    });
    assert_eq!((status(&stale), stale.body == first.body), ("STALE", true));
    wait_for("the background refresh", Duration::from_secs(10), || {
        (b.hits() >= 2).then_some(())
    });
    let refreshed = wait_for("the refreshed entry", Duration::from_secs(10), || {
        let r = get(&gw, swr);
        (status(&r) == "HIT" && r.body != first.body).then_some(r)
    });
    assert_eq!(refreshed.status, 200);

    let sie = "/s?set_header=cache-control:max-age=1";
    let kept = get(&gw, sie);
    assert_eq!(status(&kept), "MISS");
    drop(b);
    let served = wait_for("a stale answer", Duration::from_secs(10), || {
        let r = get(&gw, sie);
        (status(&r) != "HIT").then_some(r)
    });
    assert_eq!(
        (served.status, status(&served)),
        (200, "STALE"),
        "{served:?}"
    );
    assert_eq!(served.body, kept.body);
    let uncached = get(&gw, "/never-stored");
    assert_eq!(uncached.status, 502, "no stale copy: the origin's failure");
}

#[test]
fn concurrent_misses_for_a_cold_key_reach_the_origin_once() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(
        &b,
        "{memory_size: 8MiB, lock_timeout: 5s}",
        "{enabled: true}",
    ));
    let answers = concurrently(&[&gw], "/cold?delay_ms=500", 50);
    assert!(answers.iter().all(|r| r.status == 200));
    assert!(b.received() <= 2, "{} origin fetches", b.received());
    assert!(answers.iter().filter(|r| status(r) == "HIT").count() >= 45);
}

/// Peak resident memory of a process, in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn the_memory_store_stays_within_its_bound_under_many_keys() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b, "{memory_size: 16MiB}", "{enabled: true}"));
    assert_eq!(get(&gw, "/plain/warm-up?pad=65536").status, 200);
    let idle = peak_rss_kib(gw.child.id());
    // 800 distinct 64 KiB answers: 50 MiB through a 16 MiB store.
    std::thread::scope(|s| {
        for t in 0..4 {
            let gw = &gw;
            s.spawn(move || {
                for i in 0..200 {
                    let r = get(gw, &format!("/m/{t}/{i}?pad=65536"));
                    assert_eq!(r.status, 200);
                }
            });
        }
    });
    let scrape = gw.scrape();
    let gauge = |kind: &str| -> u64 {
        let needle = format!("cache_memory_bytes{{kind=\"{kind}\"}} ");
        scrape
            .lines()
            .find_map(|l| l.strip_prefix(needle.as_str()))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {kind} gauge:\n{scrape}"))
    };
    let (used, limit) = (gauge("used"), gauge("limit"));
    assert_eq!(limit, 16 << 20);
    assert!(used <= limit && used > limit / 2, "{used} of {limit}");
    // The most recent entries are still there, the first ones were evicted.
    assert_eq!(status(&get(&gw, "/m/0/199?pad=65536")), "HIT");
    assert_eq!(status(&get(&gw, "/m/0/0?pad=65536")), "MISS");
    // What the entries really cost: the process grew by at most the bound and 32 MiB of
    // buffers and allocator slack (absolute figures for the release build: `make bench`).
    let grown = peak_rss_kib(gw.child.id()).saturating_sub(idle);
    assert!(
        grown <= (16 + 32) * 1024,
        "peak RSS grew {grown} KiB with a 16 MiB cache"
    );
}

fn redis_config(backend: &Backend, redis: &Redis, memory: &str, timeout: &str) -> String {
    format!(
        "security: {{trusted_proxies: [127.0.0.1/32]}}\nredis: {{url: \"{}\", timeout: {timeout}}}\ncache: {{store: redis, memory_size: {memory}, lock_timeout: 5s}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u, cache: {{enabled: true}}}}\n",
        redis.url(),
        backend.addr
    )
}

#[test]
fn two_instances_share_one_redis_cache_and_purges() {
    let redis = Redis::start();
    let b = Backend::start("b");
    for memory in ["0", "4MiB"] {
        let a = Gateway::start(&redis_config(&b, &redis, memory, "1s"));
        let c = Gateway::start(&redis_config(&b, &redis, memory, "1s"));
        let path = format!("/shared?tier={memory}");
        // Instances behind one name: the same Host whichever answers.
        let get = |gw: &Gateway, path: &str| {
            request("GET", &gw.url(path), &[("host", "api.example")], None)
        };
        let first = get(&a, &path);
        assert_eq!(status(&first), "MISS", "{memory}");
        let other = get(&c, &path);
        assert_eq!(
            (status(&other), other.body == first.body),
            ("HIT", true),
            "{memory}"
        );
        assert_eq!(status(&get(&c, &path)), "HIT");
        let (code, body) = purge(&a, &path);
        assert_eq!(code, 200, "{body}");
        wait_for(
            "the purge to reach the other instance",
            Duration::from_secs(5),
            || (status(&get(&c, &path)) == "MISS").then_some(()),
        );
        let health = get(&a, "/health").json();
        assert_eq!(health["checks"]["cache"], "ok");
    }
}

#[test]
fn a_cold_key_is_fetched_once_across_two_instances() {
    let redis = Redis::start();
    let b = Backend::start("b");
    let a = Gateway::start(&redis_config(&b, &redis, "0", "1s"));
    let c = Gateway::start(&redis_config(&b, &redis, "0", "1s"));
    let answers = concurrently(&[&a, &c], "/cold?delay_ms=500", 50);
    assert!(answers.iter().all(|r| r.status == 200));
    assert!(b.received() <= 2, "{} origin fetches", b.received());
}

#[test]
fn a_dead_or_frozen_redis_costs_misses_not_errors_or_timeouts() {
    let mut redis = Redis::start();
    let b = Backend::start("b");
    let gw = Gateway::start(&redis_config(&b, &redis, "0", "500ms"));
    assert_eq!(status(&get(&gw, "/r/warm")), "MISS");
    assert_eq!(status(&get(&gw, "/r/warm")), "HIT");

    redis.pause();
    let mut slow = 0;
    let started = Instant::now();
    for i in 0..20 {
        let t = Instant::now();
        let r = get(&gw, &format!("/r/frozen/{i}"));
        assert_eq!(r.status, 200, "{r:?}");
        if t.elapsed() >= Duration::from_millis(250) {
            slow += 1;
        }
    }
    let took = started.elapsed();
    // Without the back-off each request would wait for a lookup and a write (2 × 500 ms); with
    // it only the first does (the probe runs in the background).
    assert!(
        slow <= 2,
        "{slow} of 20 requests waited for Redis ({took:?})"
    );
    assert_eq!(get(&gw, "/health").json()["checks"]["cache"], "down");
    redis.resume();
    wait_for(
        "the probe to find Redis back",
        Duration::from_secs(5),
        || (get(&gw, "/health").json()["checks"]["cache"] == "ok").then_some(()),
    );
    assert_eq!(status(&get(&gw, "/r/back")), "MISS");
    assert_eq!(status(&get(&gw, "/r/back")), "HIT");

    redis.kill();
    for i in 0..10 {
        let r = get(&gw, &format!("/r/dead/{i}"));
        assert_eq!((r.status, status(&r)), (200, "MISS"));
    }
    let scrape = gw.scrape();
    assert!(scrape.contains("cache_store_errors_total{op=\"lookup\"}"));
    let backoffs = scrape
        .lines()
        .find_map(|l| l.strip_prefix("redis_backoffs_total "))
        .and_then(|v| v.trim().parse::<u64>().ok());
    assert!(backoffs.is_some_and(|n| n >= 1), "{backoffs:?}");
    assert!(gw.log().contains("redis unavailable: calls skip it"));
}

#[test]
fn a_reload_keeps_the_store_while_its_settings_stay_and_a_new_one_otherwise() {
    let b = Backend::start("b");
    let body = |cache: &str, marker: &str| {
        format!(
            "{}  - {{name: {marker}, path: /{marker}, upstream: u}}\n",
            config(&b, cache, "{enabled: true}")
        )
    };
    let gw = Gateway::start(&body("{memory_size: 8MiB}", "one"));
    assert_eq!(status(&get(&gw, "/k")), "MISS");
    assert_eq!(status(&get(&gw, "/k")), "HIT");
    let reload = |cache: &str, marker: &str| {
        gw.reconfigure(&body(cache, marker));
        gw.signal("HUP");
        wait_for("the reload", Duration::from_secs(10), || {
            (get(&gw, &format!("/{marker}/x"))
                .header("x-cache-status")
                .is_none())
            .then_some(())
        });
    };
    reload("{memory_size: 8MiB, default_ttl: 30s}", "two");
    assert_eq!(
        status(&get(&gw, "/k")),
        "HIT",
        "same store settings: entries kept"
    );
    reload("{memory_size: 4MiB}", "three");
    assert_eq!(status(&get(&gw, "/k")), "MISS", "a new store");
    gw.reconfigure(&body("{memory_size: 0}", "four"));
    gw.signal("HUP");
    wait_for("the failed reload", Duration::from_secs(10), || {
        gw.log().contains("cache.memory_size").then_some(())
    });
    assert_eq!(
        status(&get(&gw, "/k")),
        "HIT",
        "a bad file keeps the running cache"
    );
}
