//! Headers a client could use to be taken for someone or something else: method overrides
//! past a route's `methods`, identity headers of other proxies and auth front-ends, and `Host`
//! values that are not a host.

mod common;

use common::{raw, Backend, Gateway};

/// A gateway with `security` as given and one route `/` (GET and POST only) to `b`.
fn start(b: &Backend, security: &str) -> Gateway {
    Gateway::start(&format!(
        "security: {security}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u, methods: [GET, POST]}}\n",
        b.addr
    ))
}

/// Sends `GET /x` (or `method`) with `headers`; the status and the headers the backend saw.
fn send(gw: &Gateway, method: &str, headers: &[(&str, &str)]) -> (u16, serde_json::Value) {
    let mut head =
        format!("{method} /x HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let answer = raw(gw.proxy, head.as_bytes());
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let seen: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
    (status, seen["headers"].clone())
}

#[test]
fn method_overrides_never_reach_the_backend() {
    let b = Backend::start("b");
    let gw = start(&b, "{trusted_proxies: [127.0.0.1/32]}");
    let (status, seen) = send(
        &gw,
        "POST",
        &[
            ("X-HTTP-Method-Override", "DELETE"),
            ("X-HTTP-Method", "DELETE"),
            ("X-Method-Override", "DELETE"),
            ("X_HTTP_Method_Override", "DELETE"),
        ],
    );
    assert_eq!(status, 200);
    let seen = seen.as_object().expect("headers");
    for name in seen.keys() {
        assert!(
            !name.contains("method"),
            "{name} reached the backend: {seen:?}"
        );
    }
    // The route's own methods still hold.
    assert_eq!(send(&gw, "DELETE", &[]).0, 405);
}

const IDENTITY: [&str; 14] = [
    "X-Client-IP",
    "True-Client-IP",
    "CF-Connecting-IP",
    "X-Cluster-Client-IP",
    "Remote-User",
    "X-Remote-User",
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Groups",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Groups",
    "X-Authenticated-User",
    "X-Rewrite-URL",
];

#[test]
fn identity_headers_pass_only_from_trusted_proxies() {
    let b = Backend::start("b");
    let sent: Vec<(&str, &str)> = IDENTITY.iter().map(|h| (*h, "admin")).collect();
    // Loopback is not trusted: every one is removed.
    let gw = start(&b, "{}");
    let (status, seen) = send(&gw, "GET", &sent);
    assert_eq!(status, 200);
    for name in IDENTITY {
        let lower = name.to_ascii_lowercase();
        assert!(
            seen.get(&lower).is_none(),
            "{name} reached the backend: {seen}"
        );
    }
    // From a trusted proxy (an auth front-end, say) they are its word and pass.
    let gw = start(&b, "{trusted_proxies: [127.0.0.1/32]}");
    let (_, seen) = send(&gw, "GET", &sent);
    for name in IDENTITY {
        assert_eq!(seen[name.to_ascii_lowercase()], "admin", "{name}: {seen}");
    }
}

#[test]
fn a_host_that_is_not_a_host_is_refused() {
    let b = Backend::start("b");
    let gw = start(&b, "{}");
    // (`user@x` is refused by pingora itself, before the gateway sees the request.)
    for host in ["x/../api/admin", "a\tb", "x:port", "x?y", "x\\y"] {
        let answer = raw(
            gw.proxy,
            format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(answer.starts_with("HTTP/1.1 400"), "{host:?}: {answer}");
        assert!(
            answer.contains("\"code\":\"bad_request\""),
            "{host:?}: {answer}"
        );
    }
    assert_eq!(b.received(), 0);
    for host in ["api.example.com:8080", "[::1]:80", "127.0.0.1"] {
        let answer = raw(
            gw.proxy,
            format!("GET /x HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(answer.starts_with("HTTP/1.1 200"), "{host:?}: {answer}");
    }
}
