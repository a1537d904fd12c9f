//! Traffic splitting between upstreams: the share by weight over many clients, sticky sides,
//! overrides, per-side cache entries, and a weight change by SIGHUP under load.

mod common;

use common::client::KeepAlive;
use common::{request, wait_for, Backend, Gateway, Resp};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

fn config(v1: &Backend, v2: &Backend, w1: u32, w2: u32, extra: &str) -> String {
    format!(
        "security: {{trusted_proxies: [127.0.0.1/32]}}\n{extra}upstreams:\n  v1: {{backends: [{{addr: \"{}\"}}]}}\n  v2: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - name: api\n    path: /\n    upstreams: [{{name: v1, weight: {w1}}}, {{name: v2, weight: {w2}}}]\n    split: {{override_header: X-Canary, override_cookie: canary}}\n",
        v1.addr, v2.addr
    )
}

/// Client number `n` as a distinct address, sent through the trusted loopback proxy.
fn client(n: u32) -> String {
    std::net::Ipv4Addr::from(0x0a00_0000 + n).to_string()
}

fn get_as(gw: &Gateway, n: u32, headers: &[(&str, &str)]) -> Resp {
    let ip = client(n);
    let mut all = vec![("x-forwarded-for", ip.as_str())];
    all.extend_from_slice(headers);
    request("GET", &gw.url("/x"), &all, None)
}

/// The backend that answered (every test backend names itself).
fn side(r: &Resp) -> String {
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["backend"].as_str().expect("backend").to_owned()
}

/// The side of each of `clients` (through one kept-alive connection: the address is the
/// forwarded one).
fn sides(gw: &Gateway, clients: std::ops::Range<u32>) -> HashMap<u32, String> {
    let http = KeepAlive::new();
    let url = gw.url("/x");
    clients
        .map(|n| {
            let ip = client(n);
            let r = http.request("GET", &url, &[("x-forwarded-for", ip.as_str())]);
            (n, side(&r))
        })
        .collect()
}

fn share(of: &HashMap<u32, String>, name: &str) -> f64 {
    of.values().filter(|s| *s == name).count() as f64 / of.len() as f64
}

#[test]
fn distinct_clients_split_by_weight_and_each_stays_on_its_side() {
    let (v1, v2) = (Backend::start("v1"), Backend::start("v2"));
    let gw = Gateway::start(&config(&v1, &v2, 80, 20, ""));
    let first = sides(&gw, 0..2000);
    let v2_share = share(&first, "v2");
    assert!((0.17..=0.23).contains(&v2_share), "v2 took {v2_share}");
    // The same clients again, in another order: nobody changes sides.
    for n in (0..2000).rev().step_by(7) {
        assert_eq!(side(&get_as(&gw, n, &[])), first[&n], "client {n} moved");
    }
    // Every request is counted on the side it went to.
    let on_v2 = v2.hits() as f64;
    let counted = gw
        .metric(r#"canary_requests_total{route="api",upstream="v2"}"#)
        .expect("counted");
    assert_eq!(counted, on_v2);
    let all = gw.metric(r#"canary_requests_total{route="api",upstream="v1"}"#);
    assert_eq!(
        all.map(|v1_count| v1_count + counted),
        Some(v1.hits() as f64 + on_v2)
    );
}

#[test]
fn an_override_header_or_cookie_forces_a_side() {
    let (v1, v2) = (Backend::start("v1"), Backend::start("v2"));
    let gw = Gateway::start(&config(&v1, &v2, 95, 5, ""));
    let plain = sides(&gw, 0..100);
    let on_v1: Vec<u32> = (0..100).filter(|n| plain[n] == "v1").collect();
    let on_v2: Vec<u32> = (0..100).filter(|n| plain[n] == "v2").collect();
    assert!(on_v1.len() > 80 && !on_v2.is_empty(), "{plain:?}");
    for n in &on_v1 {
        assert_eq!(side(&get_as(&gw, *n, &[("x-canary", "always")])), "v2");
        assert_eq!(
            side(&get_as(&gw, *n, &[("cookie", "a=1; canary=v2")])),
            "v2"
        );
        assert_eq!(side(&get_as(&gw, *n, &[("x-canary", "nonsense")])), "v1");
    }
    for n in &on_v2 {
        assert_eq!(side(&get_as(&gw, *n, &[("x-canary", "never")])), "v1");
        assert_eq!(side(&get_as(&gw, *n, &[("cookie", "canary=v1")])), "v1");
    }
}

#[test]
fn each_side_has_its_own_cache_entries() {
    let (v1, v2) = (Backend::start("v1"), Backend::start("v2"));
    let gw = Gateway::start(
        &config(
            &v1,
            &v2,
            50,
            50,
            "cache: {memory_size: 8MiB, default_ttl: 60s}\n",
        )
        .replace("    split:", "    cache: {enabled: true}\n    split:"),
    );
    let plain = sides(&gw, 0..40);
    let a = *plain
        .keys()
        .find(|n| plain[n] == "v1")
        .expect("a v1 client");
    let b = *plain
        .keys()
        .find(|n| plain[n] == "v2")
        .expect("a v2 client");
    let path = "/shared?k=1";
    let get = |n: u32| {
        let ip = client(n);
        request(
            "GET",
            &gw.url(path),
            &[("x-forwarded-for", ip.as_str())],
            None,
        )
    };
    let (first_a, first_b) = (get(a), get(b));
    assert_eq!(first_a.header("x-cache-status"), Some("MISS"));
    assert_eq!(first_b.header("x-cache-status"), Some("MISS"));
    let (again_a, again_b) = (get(a), get(b));
    assert_eq!(again_a.header("x-cache-status"), Some("HIT"));
    assert_eq!((side(&again_a), side(&again_b)), ("v1".into(), "v2".into()));
}

#[test]
fn a_reload_moves_traffic_without_a_failed_request() {
    let (v1, v2) = (Backend::start("v1"), Backend::start("v2"));
    let gw = Arc::new(Gateway::start(&config(&v1, &v2, 90, 10, "")));
    let before = sides(&gw, 0..2000);
    let before_share = share(&before, "v2");
    assert!((0.07..=0.13).contains(&before_share), "{before_share}");

    // Clients keep asking while the weights change.
    let stop = Arc::new(AtomicBool::new(false));
    let (sent, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let load: Vec<_> = (0..4)
        .map(|t| {
            let (gw, stop, sent, failed) = (gw.clone(), stop.clone(), sent.clone(), failed.clone());
            std::thread::spawn(move || {
                let (http, url) = (KeepAlive::new(), gw.url("/x"));
                let mut n = 10_000 * (t + 1);
                while !stop.load(Ordering::SeqCst) {
                    let ip = client(n);
                    let r = http.try_request("GET", &url, &[("x-forwarded-for", ip.as_str())]);
                    if !r.is_ok_and(|r| r.status == 200) {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                    sent.fetch_add(1, Ordering::SeqCst);
                    n += 1;
                }
            })
        })
        .collect();
    wait_for("load to start", Duration::from_secs(10), || {
        (sent.load(Ordering::SeqCst) > 50).then_some(())
    });
    gw.reconfigure(&config(&v1, &v2, 50, 50, ""));
    gw.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        gw.metric(r#"config_reloads_total{result="success"}"#)
            .filter(|n| *n >= 1.0)
    });
    let at_reload = sent.load(Ordering::SeqCst);
    wait_for("load after the reload", Duration::from_secs(10), || {
        (sent.load(Ordering::SeqCst) > at_reload + 200).then_some(())
    });
    stop.store(true, Ordering::SeqCst);
    for t in load {
        t.join().expect("load thread");
    }
    assert_eq!(failed.load(Ordering::SeqCst), 0, "of {sent:?}");

    let after = sides(&gw, 0..2000);
    let after_share = share(&after, "v2");
    assert!((0.47..=0.53).contains(&after_share), "{after_share}");
    // Weight moved to v2, so clients only moved that way.
    let left = (0..2000).filter(|n| before[n] == "v2" && after[n] == "v1");
    assert_eq!(left.count(), 0);
}
