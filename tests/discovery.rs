//! Service discovery end to end: members from a real DNS server (dnsmasq: A records, SRV with
//! ports and weights) and from registrations in a real etcd with leases; changes picked up
//! without a reload, health kept for members that stay, a failed lookup keeping the last set.

mod common;

use common::dns::Dns;
use common::etcd::Etcd;
use common::{free_port, get, wait_for, Backend, Gateway};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

/// Which backend answered `path`.
fn who(gw: &Gateway, path: &str) -> String {
    let r = get(&gw.url(path));
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["backend"].as_str().unwrap_or_default().to_owned()
}

/// Who answered `n` requests, counted.
fn spread(gw: &Gateway, n: usize) -> BTreeMap<String, usize> {
    let mut seen = BTreeMap::new();
    for _ in 0..n {
        *seen.entry(who(gw, "/d/x")).or_insert(0) += 1;
    }
    seen
}

fn names(seen: &BTreeMap<String, usize>) -> Vec<&str> {
    seen.keys().map(String::as_str).collect()
}

fn host(name: &str, ip: &str) -> String {
    format!("--host-record={name},{ip}")
}

#[test]
fn dns_a_records_are_followed_and_health_stays_with_the_members_that_stay() {
    // Three backends on one port, each on its own loopback address.
    let port = free_port();
    let at = |ip: [u8; 4]| SocketAddr::from((ip, port));
    let b1 = Backend::start_at("b1", at([127, 0, 0, 1]));
    let b2 = Backend::start_at("b2", at([127, 0, 0, 2]));
    let _b3 = Backend::start_at("b3", at([127, 0, 0, 3]));
    let mut dns = Dns::start(&[
        host("users.test", "127.0.0.1"),
        host("users.test", "127.0.0.2"),
    ]);
    // b2 fails its health check. Members are probed when they join, and otherwise only hourly.
    b2.set_healthy(false);
    let gw = Gateway::start(&format!(
        "upstreams:\n  u:\n    discovery: {{dns: {{name: \"users.test:{port}\", nameservers: [\"{}\"], min_interval: 200ms}}}}\n    health_check: {{kind: http, interval: 1h, path: /health, healthy_threshold: 3, unhealthy_threshold: 1}}\nroutes:\n  - {{name: d, path: /d, upstream: u}}\n",
        dns.addr
    ));
    wait_for(
        "b2 marked down by its probe",
        Duration::from_secs(5),
        || {
            let seen = spread(&gw, 6);
            (names(&seen) == ["b1"]).then_some(())
        },
    );
    assert!(b1.hits() > 0);
    let h = get(&gw.url("/health")).json();
    assert_eq!(h["checks"]["upstreams"]["u"]["total"], 2, "{h}");
    assert_eq!(h["checks"]["upstreams"]["u"]["healthy"], 1, "{h}");

    // The name now points at b2 and b3: b1 leaves, b3 joins (healthy until a probe says
    // otherwise), b2 stays down although its probe passes again: it is one success of the
    // three it needs (its state is kept, not reset by the change). So b3 takes everything,
    // with no reload.
    b2.set_healthy(true);
    dns.serve(&[
        host("users.test", "127.0.0.2"),
        host("users.test", "127.0.0.3"),
    ]);
    wait_for("the new members", Duration::from_secs(5), || {
        let seen = spread(&gw, 6);
        (names(&seen) == ["b3"]).then_some(())
    });
    let h = get(&gw.url("/health")).json();
    assert_eq!(h["checks"]["upstreams"]["u"]["total"], 2, "{h}");
    assert_eq!(h["checks"]["upstreams"]["u"]["healthy"], 1, "{h}");
    assert_eq!(gw.metric("discovery_members{upstream=\"u\"}"), Some(2.0));

    // DNS gone: lookups fail, are counted, and the last members keep serving.
    dns.stop();
    let before = gw
        .metric("discovery_lookups_total{result=\"failure\",upstream=\"u\"}")
        .unwrap_or(0.0);
    wait_for("failed lookups counted", Duration::from_secs(15), || {
        let now = gw.metric("discovery_lookups_total{result=\"failure\",upstream=\"u\"}")?;
        (now > before).then_some(())
    });
    assert_eq!(names(&spread(&gw, 4)), ["b3"]);
    assert!(
        gw.log().contains("keeping the last 2 members"),
        "{}",
        gw.log()
    );
}

#[test]
fn dns_srv_records_give_ports_and_weights_and_backups_wait() {
    let light = Backend::start("light");
    let heavy = Backend::start("heavy");
    let backup = Backend::start("backup");
    let srv = |b: &Backend, prio: u8, weight: u8| {
        format!(
            "--srv-host=_http._tcp.svc.test,t-{}.test,{},{prio},{weight}",
            b.name,
            b.addr.port()
        )
    };
    let dns = Dns::start(&[
        host("t-light.test", "127.0.0.1"),
        host("t-heavy.test", "127.0.0.1"),
        host("t-backup.test", "127.0.0.1"),
        srv(&light, 0, 1),
        srv(&heavy, 0, 3),
        srv(&backup, 1, 50),
    ]);
    let gw = Gateway::start(&format!(
        "upstreams:\n  u:\n    strategy: weighted_round\n    discovery: {{dns: {{srv: _http._tcp.svc.test, nameservers: [\"{}\"]}}}}\nroutes:\n  - {{name: d, path: /d, upstream: u}}\n",
        dns.addr
    ));
    let seen = spread(&gw, 40);
    assert_eq!(seen.get("heavy"), Some(&30), "{seen:?}");
    assert_eq!(seen.get("light"), Some(&10), "{seen:?}");
    assert_eq!(seen.get("backup"), None, "{seen:?}");
}

#[test]
fn etcd_registrations_with_leases_come_and_go() {
    let etcd = Etcd::start();
    let stays = Backend::start("stays");
    let leased = Backend::start("leased");
    etcd.put(
        "/gw-test/config",
        "upstreams:\n  u:\n    discovery: {etcd: {prefix: /svc/users/}}\nroutes:\n  - {name: d, path: /d, upstream: u}\n",
    );
    etcd.put("/svc/users/stays", &stays.addr.to_string());
    let gw = Gateway::start_raw(&format!(
        "{}etcd: {{endpoints: [\"{}\"], prefix: /gw-test/}}\n",
        common::gateway::header(),
        etcd.endpoint()
    ));
    assert_eq!(names(&spread(&gw, 4)), ["stays"]);

    // An instance registers with a 2 s lease (JSON, with a weight) and then dies: it serves
    // while the lease lives and is gone when it expires.
    let grant = etcd.ctl(&["lease", "grant", "2"]).expect("lease grant");
    let lease = grant
        .split_whitespace()
        .nth(1)
        .expect("lease id")
        .to_owned();
    let value = format!("{{\"addr\": \"{}\", \"weight\": 1}}", leased.addr);
    etcd.ctl(&["put", "--lease", &lease, "/svc/users/leased", &value])
        .expect("put with lease");
    wait_for("the registration", Duration::from_secs(2), || {
        (names(&spread(&gw, 4)) == ["leased", "stays"]).then_some(())
    });
    wait_for("the lease to expire", Duration::from_secs(10), || {
        (names(&spread(&gw, 4)) == ["stays"]).then_some(())
    });
    // A registration that is not an address is left out (and logged), the others stay.
    etcd.put("/svc/users/bad", "somewhere:80");
    assert_eq!(names(&spread(&gw, 4)), ["stays"]);
    wait_for("the warning", Duration::from_secs(2), || {
        gw.log()
            .contains("registration /svc/users/bad left out")
            .then_some(())
    });
}
