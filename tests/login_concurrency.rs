//! Login limits under concurrency: an attempt is counted when it begins, so logins sent at once
//! (on the proxy and the admin listener together) get no more password checks than the limit.

mod common;

use common::auth::auth_section;
use common::{request, Backend, Gateway, Resp};

fn start(limits: &str) -> Gateway {
    let b = Backend::start("b");
    Gateway::start(&format!(
        "{}  login_limit: {limits}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        auth_section("memory"),
        b.addr
    ))
}

/// `n` logins at once, alternately on the proxy and the admin listener; `user(i)` names the
/// i-th one's user. The answers' statuses.
fn at_once(gw: &Gateway, n: usize, user: impl Fn(usize) -> String + Sync) -> Vec<u16> {
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|i| {
                let user = user(i);
                s.spawn(move || {
                    let body =
                        serde_json::json!({"username": user, "password": "wrong"}).to_string();
                    let url = match i % 2 {
                        0 => gw.url("/auth/login"),
                        _ => gw.admin_url("/auth/login"),
                    };
                    let r: Resp = request(
                        "POST",
                        &url,
                        &[("content-type", "application/json")],
                        Some(&body),
                    );
                    r.status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("login thread"))
            .collect()
    })
}

fn checked(statuses: &[u16]) -> usize {
    statuses.iter().filter(|s| **s == 401).count()
}

#[test]
fn logins_at_once_for_one_user_get_at_most_per_user_checks() {
    let gw = start("{per_user: 5/m, per_ip: 1000/m}");
    let statuses = at_once(&gw, 40, |_| "alice".to_owned());
    let n = checked(&statuses);
    assert!((1..=5).contains(&n), "{n} password checks: {statuses:?}");
    assert!(
        statuses.iter().all(|s| matches!(s, 401 | 429 | 503)),
        "{statuses:?}"
    );
    // The window still holds afterwards.
    assert_eq!(at_once(&gw, 2, |_| "alice".to_owned()), vec![429, 429]);
}

#[test]
fn logins_at_once_from_one_address_get_at_most_per_ip_checks() {
    let gw = start("{per_user: 100/m, per_ip: 8/m}");
    let statuses = at_once(&gw, 40, |i| format!("nobody{i}"));
    let n = checked(&statuses);
    assert!((1..=8).contains(&n), "{n} password checks: {statuses:?}");
}
