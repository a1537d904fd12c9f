//! Security headers, CORS, body limits, trusted proxies and IP rules, end to end.

mod common;

use common::{get, raw, request, Backend, Gateway};

const HEADERS: &str = "  headers:\n    strict_transport_security: max-age=31536000\n    x_frame_options: DENY\n    x_content_type_options: nosniff\n    referrer_policy: no-referrer\n";

fn config(backend: &Backend, security: &str, routes: &str) -> String {
    format!(
        "security:\n{security}upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n{routes}",
        backend.addr
    )
}

#[test]
fn security_headers_added_unless_set_and_overridable_per_route() {
    let b = Backend::start("b");
    let routes = "  - {name: r, path: /, upstream: u}\n  - {name: off, path: /off, upstream: u, security_headers: false}\n  - {name: own, path: /own, upstream: u, security_headers: {x_frame_options: SAMEORIGIN, referrer_policy: \"\"}}\n";
    let gw = Gateway::start(&config(&b, HEADERS, routes));
    let r = get(&gw.url("/x"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
    assert_eq!(
        r.header("strict-transport-security"),
        Some("max-age=31536000")
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));
    // The upstream's own value wins.
    let r = get(&gw.url("/x?set_header=x-frame-options:SAMEORIGIN"));
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    let r = get(&gw.url("/off"));
    assert!(r.header("x-frame-options").is_none() && r.header("referrer-policy").is_none());
    let r = get(&gw.url("/own"));
    assert_eq!(r.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert!(r.header("referrer-policy").is_none());
    // Answers written by the gateway carry them too.
    let b2 = Backend::start("b2");
    let gw2 = Gateway::start(&config(
        &b2,
        HEADERS,
        "  - {name: r, path: /only, upstream: u}\n",
    ));
    let r = get(&gw2.url("/missing"));
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

const CORS: &str = "  cors:\n    allow_origins: [\"https://app.example.com\"]\n    allow_methods: [GET, POST]\n    allow_headers: [Authorization, Content-Type]\n    expose_headers: [X-Request-Id]\n    allow_credentials: true\n    max_age: 10m\n";

#[test]
fn cors_preflight_and_actual_requests() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(
        &b,
        CORS,
        "  - {name: r, path: /api, upstream: u, methods: [GET, POST]}\n",
    ));
    let origin = ("origin", "https://app.example.com");
    let preflight = |origin: (&str, &str)| {
        request(
            "OPTIONS",
            &gw.url("/api/items"),
            &[
                origin,
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "content-type"),
            ],
            None,
        )
    };
    let r = preflight(origin);
    assert_eq!(r.status, 204);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET, POST"));
    assert_eq!(
        r.header("access-control-allow-headers"),
        Some("Authorization, Content-Type")
    );
    assert_eq!(r.header("access-control-max-age"), Some("600"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(r.header("vary"), Some("Origin"));

    let r = preflight(("origin", "https://evil.example"));
    assert_eq!(r.status, 204);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("access-control-allow-methods").is_none());
    assert_eq!(b.hits(), 0, "preflights are answered by the gateway");

    let r = request("GET", &gw.url("/api/items"), &[origin], None);
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        r.header("access-control-expose-headers"),
        Some("X-Request-Id")
    );
    assert_eq!(r.header("vary"), Some("Origin"));
    let r = request(
        "GET",
        &gw.url("/api/items"),
        &[("origin", "https://evil.example")],
        None,
    );
    assert_eq!(r.status, 200);
    assert!(r.header("access-control-allow-origin").is_none());
    assert!(r.header("access-control-allow-credentials").is_none());
    // A plain OPTIONS (no preflight headers) is routed like any request: 405 here.
    assert_eq!(request("OPTIONS", &gw.url("/api"), &[], None).status, 405);
}

#[test]
fn body_limit_for_declared_and_chunked_bodies() {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(
        &b,
        "  max_body_size: 1KiB\n",
        "  - {name: r, path: /, upstream: u}\n",
    ));
    let small = "x".repeat(1024);
    assert_eq!(
        request("POST", &gw.url("/up"), &[], Some(&small)).status,
        200
    );
    let big = "x".repeat(1025);
    let r = request("POST", &gw.url("/up"), &[], Some(&big));
    assert_eq!(r.status, 413);
    assert_eq!(r.error_code(), "payload_too_large");
    assert_eq!(
        b.hits(),
        1,
        "a declared oversize body never reaches the backend"
    );

    let chunk = "y".repeat(600);
    let chunked = format!(
        "POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len(),
        chunk.len()
    );
    let answer = raw(gw.proxy, chunked.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("\"code\":\"payload_too_large\""),
        "{answer}"
    );
    let fits = format!("POST /up HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n", chunk.len());
    assert!(raw(gw.proxy, fits.as_bytes()).starts_with("HTTP/1.1 200"));
}

#[test]
fn ip_rules_use_the_resolved_client_address() {
    let b = Backend::start("b");
    let routes = "  - {name: open, path: /open, upstream: u, ip_deny: [10.0.0.0/8]}\n  - {name: local, path: /local, upstream: u, ip_allow: [127.0.0.1/32]}\n  - {name: shut, path: /shut, upstream: u, ip_deny: [127.0.0.0/8]}\n";
    let gw = Gateway::start(&config(&b, "  trusted_proxies: []\n", routes));
    let spoof = [("x-forwarded-for", "10.1.2.3")];
    // From an untrusted peer, X-Forwarded-For is ignored: the peer 127.0.0.1 is the client.
    assert_eq!(request("GET", &gw.url("/open"), &spoof, None).status, 200);
    assert_eq!(request("GET", &gw.url("/local"), &spoof, None).status, 200);
    let r = get(&gw.url("/shut"));
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "forbidden");

    // Behind a trusted proxy the forwarded address counts.
    let b2 = Backend::start("b2");
    let gw2 = Gateway::start(&config(&b2, "  trusted_proxies: [127.0.0.1/32]\n", routes));
    assert_eq!(request("GET", &gw2.url("/open"), &spoof, None).status, 403);
    assert_eq!(request("GET", &gw2.url("/local"), &spoof, None).status, 403);
    assert_eq!(request("GET", &gw2.url("/local"), &[], None).status, 200);
}

#[test]
fn global_and_group_ip_rules() {
    let b = Backend::start("b");
    let yaml = format!(
        "security:\n  ip_deny: [127.0.0.2/32]\n  trusted_proxies: [127.0.0.1/32]\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\ngroups:\n  internal: {{prefix: /internal, ip_allow: [192.168.0.0/16]}}\nroutes:\n  - {{name: pub, path: /pub, upstream: u}}\n  - {{name: int, group: internal, path: /, upstream: u}}\n",
        b.addr
    );
    let gw = Gateway::start(&yaml);
    let from = |ip: &str, path: &str| {
        request("GET", &gw.url(path), &[("x-forwarded-for", ip)], None).status
    };
    assert_eq!(from("127.0.0.2", "/pub"), 403);
    assert_eq!(from("127.0.0.3", "/pub"), 200);
    assert_eq!(from("192.168.4.4", "/internal/x"), 200);
    assert_eq!(from("172.16.0.1", "/internal/x"), 403);
}
