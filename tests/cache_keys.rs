//! What decides a cache entry: the scheme and forwarded host the backend is told, GET and HEAD
//! with a body, `Proxy-Authorization`, and the spelling of a path on a case-insensitive route.

mod common;

use common::{request, Backend, Gateway, Resp};

fn status(r: &Resp) -> &str {
    r.header("x-cache-status").unwrap_or("-")
}

/// A cached route `/` and a case-insensitive cached route `/ci` on one echo backend; loopback
/// is a trusted proxy.
fn start(b: &Backend) -> Gateway {
    Gateway::start(&format!(
        "security: {{trusted_proxies: [127.0.0.1/32]}}\ncache: {{store: memory}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u, cache: {{enabled: true, ttl: 60s}}}}\n  - {{name: ci, path: /ci, upstream: u, case_insensitive: true, cache: {{enabled: true, ttl: 60s}}}}\n",
        b.addr
    ))
}

#[test]
fn each_scheme_and_forwarded_host_gets_its_own_entry() {
    let b = Backend::start("b");
    let gw = start(&b);
    let url = gw.url("/page");
    let seen = |r: &Resp, name: &str| r.json()["headers"][name].as_str().map(str::to_owned);
    let plain = request("GET", &url, &[], None);
    assert_eq!(status(&plain), "MISS");
    assert_eq!(seen(&plain, "x-forwarded-proto").as_deref(), Some("http"));
    // A trusted proxy that terminated TLS: not the plain entry.
    let https = request("GET", &url, &[("x-forwarded-proto", "https")], None);
    assert_eq!(status(&https), "MISS", "{}", https.body);
    assert_eq!(seen(&https, "x-forwarded-proto").as_deref(), Some("https"));
    // Each is then served from its own entry.
    let again = request("GET", &url, &[("x-forwarded-proto", "https")], None);
    assert_eq!(
        (status(&again), seen(&again, "x-forwarded-proto").as_deref()),
        ("HIT", Some("https"))
    );
    let again = request("GET", &url, &[], None);
    assert_eq!(
        (status(&again), seen(&again, "x-forwarded-proto").as_deref()),
        ("HIT", Some("http"))
    );
    // A forwarded host the backend may build links from.
    let other = request("GET", &url, &[("x-forwarded-host", "public.example")], None);
    assert_eq!(status(&other), "MISS");
    assert_eq!(
        seen(&other, "x-forwarded-host").as_deref(),
        Some("public.example")
    );
    assert_eq!(b.hits(), 3);
}

#[test]
fn a_get_with_a_body_bypasses_the_cache() {
    let b = Backend::start("b");
    let gw = start(&b);
    let url = gw.url("/search");
    let fat = request("GET", &url, &[], Some("{\"query\":\"mine\"}"));
    assert_eq!(status(&fat), "BYPASS");
    assert_eq!(
        fat.json()["body"],
        "{\"query\":\"mine\"}",
        "the body reached the origin"
    );
    // The next client of the URL does not get the answer the body chose.
    let plain = request("GET", &url, &[], None);
    assert_eq!(status(&plain), "MISS");
    assert_eq!(plain.json()["body"], "");
    let fat = request("GET", &url, &[], Some("{\"query\":\"mine\"}"));
    assert_eq!(
        status(&fat),
        "BYPASS",
        "a stored entry is not served either"
    );
    assert_eq!(fat.json()["body"], "{\"query\":\"mine\"}");
}

#[test]
fn proxy_authorization_is_a_credential() {
    let b = Backend::start("b");
    let gw = start(&b);
    let r = request(
        "GET",
        &gw.url("/private"),
        &[("proxy-authorization", "Basic dXNlcjpwYXNz")],
        None,
    );
    assert_eq!(status(&r), "BYPASS");
    let r = request("GET", &gw.url("/private"), &[], None);
    assert_eq!(status(&r), "MISS", "the credentialed answer was not stored");
}

/// The cache status of a plain `GET path`.
fn cached(gw: &Gateway, path: &str) -> String {
    status(&request("GET", &gw.url(path), &[], None)).to_owned()
}

#[test]
fn a_case_insensitive_route_keeps_one_entry_for_every_spelling() {
    let b = Backend::start("b");
    let gw = start(&b);
    assert_eq!(cached(&gw, "/ci/Item"), "MISS");
    assert_eq!(cached(&gw, "/CI/ITEM"), "HIT");
    assert_eq!(cached(&gw, "/ci/item"), "HIT");
    // A purge in any spelling takes the entry (PURGE from loopback, a trusted proxy here).
    let answer = common::raw(
        gw.proxy,
        b"PURGE /Ci/ITEM HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.contains("\"purged\":1"), "{answer}");
    assert_eq!(cached(&gw, "/ci/item"), "MISS");
    // On a case-sensitive route spellings stay apart.
    assert_eq!(cached(&gw, "/Other"), "MISS");
    assert_eq!(cached(&gw, "/other"), "MISS");
}

#[test]
fn escaped_spellings_of_a_query_share_an_entry() {
    let b = Backend::start("b");
    let gw = start(&b);
    assert_eq!(cached(&gw, "/q?name=%41b"), "MISS");
    assert_eq!(cached(&gw, "/q?name=Ab"), "HIT");
    assert_eq!(cached(&gw, "/q?p=%2f"), "MISS");
    assert_eq!(cached(&gw, "/q?p=%2F"), "HIT");
    // Order stays significant.
    assert_eq!(cached(&gw, "/q?a=1&b=2"), "MISS");
    assert_eq!(cached(&gw, "/q?b=2&a=1"), "MISS");
}
