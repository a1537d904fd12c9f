//! The five strategies end to end, with real backends and the real gateway.

mod common;

use common::{dead_addr, get, request, wait_for, Backend, Gateway};
use std::collections::HashMap;
use std::time::Duration;

fn upstream(strategy: &str, backends: &[(String, usize)], extra: &str) -> String {
    let list: Vec<String> = backends
        .iter()
        .map(|(a, w)| format!("{{addr: \"{a}\", weight: {w}}}"))
        .collect();
    format!(
        "security: {{trusted_proxies: [127.0.0.1/32]}}\nupstreams:\n  u: {{strategy: {strategy}, backends: [{}]{extra}}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        list.join(", ")
    )
}

fn start(n: usize) -> Vec<Backend> {
    (0..n).map(|i| Backend::start(&format!("b{i}"))).collect()
}

fn backend_of(gw: &Gateway, path: &str, headers: &[(&str, &str)]) -> String {
    let r = request("GET", &gw.url(path), headers, None);
    assert_eq!(r.status, 200, "{}", r.body);
    r.header("x-backend").expect("x-backend").to_owned()
}

#[test]
fn round_robin_splits_exactly_evenly() {
    let bs = start(3);
    let list: Vec<_> = bs.iter().map(|b| (b.addr.to_string(), 1)).collect();
    let gw = Gateway::start(&upstream("round_robin", &list, ""));
    for _ in 0..300 {
        backend_of(&gw, "/", &[]);
    }
    let hits: Vec<usize> = bs.iter().map(Backend::hits).collect();
    assert_eq!(hits, [100, 100, 100]);
}

#[test]
fn weighted_round_follows_weights_smoothly() {
    let bs = start(2);
    let list = vec![(bs[0].addr.to_string(), 1), (bs[1].addr.to_string(), 3)];
    let gw = Gateway::start(&upstream("weighted_round", &list, ""));
    let seq: Vec<String> = (0..400).map(|_| backend_of(&gw, "/", &[])).collect();
    let light = seq.iter().filter(|b| *b == "b0").count();
    assert!(
        (88..=112).contains(&light),
        "weight 1 of 4 got {light} of 400"
    );
    // Smooth: every four consecutive requests include exactly one for the light backend.
    for (i, w) in seq.windows(4).enumerate() {
        assert_eq!(
            w.iter().filter(|b| *b == "b0").count(),
            1,
            "window at {i}: {w:?}"
        );
    }
}

#[test]
fn least_conn_avoids_the_backend_holding_slow_requests() {
    let bs = start(2);
    let list: Vec<_> = bs.iter().map(|b| (b.addr.to_string(), 1)).collect();
    let gw = Gateway::start(&upstream("least_conn", &list, ""));
    // Held long enough for the fast requests below to finish on a loaded machine.
    let url = gw.url("/slow?delay_ms=5000");
    let slow = std::thread::spawn(move || get(&url).status);
    let busy = wait_for(
        "the slow request to arrive",
        Duration::from_secs(10),
        || bs.iter().position(|b| b.received() == 1),
    );
    let idle = format!("b{}", 1 - busy);
    for i in 0..8 {
        assert_eq!(backend_of(&gw, "/fast", &[]), idle, "fast request {i}");
    }
    assert_eq!(slow.join().expect("slow client"), 200);
    // Released: both take new requests again.
    let after: Vec<String> = (0..4).map(|_| backend_of(&gw, "/", &[])).collect();
    assert!(after.contains(&format!("b{busy}")), "{after:?}");
}

/// Client addresses for the ip_hash test. The bound below is a fraction of clients; with 1 000
/// of them sampling noise is about ±1.5%, while the ring itself (backend addresses get random
/// ports) gave one backend at most 30.4% instead of 25% over 300 random rings.
const CLIENTS: usize = 1000;

#[test]
fn ip_hash_is_sticky_and_remaps_few_clients_when_a_backend_goes() {
    let bs = start(4);
    let all: Vec<_> = bs.iter().map(|b| (b.addr.to_string(), 1)).collect();
    let gw = Gateway::start(&upstream("ip_hash", &all, ""));
    let ips: Vec<String> = (0..CLIENTS)
        .map(|i| format!("198.51.{}.{}", i / 250, 1 + i % 250))
        .collect();
    let map = |gw: &Gateway, ips: &[String]| -> Vec<String> {
        ips.iter()
            .map(|ip| backend_of(gw, "/", &[("x-forwarded-for", ip)]))
            .collect()
    };
    let before = map(&gw, &ips);
    assert_eq!(
        map(&gw, &ips[..100]),
        before[..100],
        "the same client IP reaches the same backend"
    );
    for b in &bs {
        let share = before.iter().filter(|x| **x == b.name).count();
        assert!(
            share > CLIENTS / 10,
            "{}: {share} of {CLIENTS} clients",
            b.name
        );
    }

    gw.reconfigure(&upstream("ip_hash", &all[..3], ""));
    gw.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        gw.log().contains("config reloaded").then_some(())
    });
    let after = map(&gw, &ips);
    assert!(
        after.iter().all(|b| b != "b3"),
        "removed backend still used"
    );
    let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
    let on_removed = before.iter().filter(|b| *b == "b3").count();
    // About 1/N of the clients move (at most 1/N + 10%): those of the removed backend, nobody else.
    assert!(
        moved <= CLIENTS / 4 + CLIENTS / 10,
        "{moved} of {CLIENTS} clients moved"
    );
    assert_eq!(
        moved, on_removed,
        "clients of remaining backends were moved"
    );
}

#[test]
fn random_gives_every_backend_a_fair_share() {
    let bs = start(3);
    let list: Vec<_> = bs.iter().map(|b| (b.addr.to_string(), 1)).collect();
    let gw = Gateway::start(&upstream("random", &list, ""));
    // 1 200 draws: each backend expects 400 with a standard deviation of 16.3. The bound,
    // within 25% of the fair share (302..=498), is 6 standard deviations: a fair selector fails
    // it about once in 10^8 runs, a selector that favours one backend by a quarter always does.
    let mut seen = HashMap::new();
    for _ in 0..1200 {
        *seen.entry(backend_of(&gw, "/", &[])).or_insert(0) += 1;
    }
    for b in &bs {
        let n = seen.get(&b.name).copied().unwrap_or(0);
        assert!(
            (302..=498).contains(&n),
            "{}: {n} of 1200 ({seen:?})",
            b.name
        );
    }
}

#[test]
fn failover_with_one_of_three_backends_down() {
    let bs = start(2);
    for strategy in [
        "round_robin",
        "weighted_round",
        "least_conn",
        "random",
        "ip_hash",
    ] {
        let list = vec![
            (bs[0].addr.to_string(), 1),
            (dead_addr().to_string(), 2),
            (bs[1].addr.to_string(), 1),
        ];
        let gw = Gateway::start(&upstream(strategy, &list, ", retries: 1"));
        for i in 0..30 {
            let ip = format!("203.0.113.{i}");
            let r = request("GET", &gw.url("/"), &[("x-forwarded-for", &ip)], None);
            assert_eq!(r.status, 200, "{strategy}, request {i}: {}", r.body);
        }
    }
}
