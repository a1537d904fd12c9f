//! Routing end to end: groups, whole-segment prefixes, longest match, methods, strip_prefix.

mod common;

use common::{get, raw, request, Backend, Gateway};

fn setup() -> (Gateway, Backend, Backend, Backend) {
    let (users, admin, root) = (
        Backend::start("users"),
        Backend::start("admin"),
        Backend::start("root"),
    );
    let gw = Gateway::start(&format!(
        r#"
upstreams:
  users: {{backends: [{{addr: "{}"}}]}}
  admin: {{backends: [{{addr: "{}"}}]}}
  root: {{backends: [{{addr: "{}"}}]}}
groups:
  api: {{prefix: /api}}
routes:
  - {{name: users, group: api, path: /users, upstream: users}}
  - {{name: users-write, group: api, path: /users, upstream: admin, methods: [POST, DELETE]}}
  - {{name: user-admin, group: api, path: /users/admin, upstream: admin}}
  - {{name: reports, group: api, path: /reports, upstream: admin, methods: [GET]}}
  - {{name: stripped, group: api, path: /v2, upstream: users, strip_prefix: true}}
  - {{name: site, path: /site, upstream: root}}
"#,
        users.addr, admin.addr, root.addr
    ));
    (gw, users, admin, root)
}

fn backend_of(gw: &Gateway, method: &str, path: &str) -> String {
    let r = request(method, &gw.url(path), &[], None);
    assert_eq!(r.status, 200, "{method} {path}: {}", r.body);
    r.json()["backend"]
        .as_str()
        .expect("backend name")
        .to_owned()
}

#[test]
fn group_prefix_whole_segments_and_longest_match() {
    let (gw, _u, _a, _r) = setup();
    assert_eq!(backend_of(&gw, "GET", "/api/users"), "users");
    assert_eq!(backend_of(&gw, "GET", "/api/users/7"), "users");
    assert_eq!(backend_of(&gw, "GET", "/api/users/admin/x"), "admin");
    assert_eq!(backend_of(&gw, "GET", "/site/a/b?c=d"), "root");
    for path in ["/api/usersx", "/users", "/api", "/", "/sitex"] {
        let r = get(&gw.url(path));
        assert_eq!(r.status, 404, "{path}");
        assert_eq!(r.error_code(), "route_not_found");
    }
}

#[test]
fn a_route_listing_the_method_wins_over_the_catch_all() {
    let (gw, _u, _a, _r) = setup();
    assert_eq!(backend_of(&gw, "POST", "/api/users"), "admin");
    assert_eq!(backend_of(&gw, "DELETE", "/api/users/3"), "admin");
    assert_eq!(backend_of(&gw, "PUT", "/api/users/3"), "users");
}

#[test]
fn wrong_method_gets_405_with_allow() {
    let (gw, _u, _a, _r) = setup();
    let r = request("POST", &gw.url("/api/reports/1"), &[], Some("{}"));
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET"));
    assert_eq!(r.error_code(), "method_not_allowed");
    assert_eq!(r.header("content-type"), Some("application/json"));
}

#[test]
fn error_body_carries_the_request_id() {
    let (gw, _u, _a, _r) = setup();
    let r = request(
        "GET",
        &gw.url("/nowhere"),
        &[("x-request-id", "trace-42")],
        None,
    );
    assert_eq!(r.status, 404);
    assert_eq!(r.header("x-request-id"), Some("trace-42"));
    let body = r.json();
    assert_eq!(body["error"]["request_id"], "trace-42");
    assert_eq!(body["error"]["message"], "No route matches this path");
}

#[test]
fn strip_prefix_keeps_the_rest_and_the_query() {
    let (gw, _u, _a, _r) = setup();
    for (sent, seen) in [
        ("/api/v2/items/9?x=1&y=2", "/items/9?x=1&y=2"),
        ("/api/v2", "/"),
        ("/api/v2?q=1", "/?q=1"),
    ] {
        let r = get(&gw.url(sent));
        assert_eq!(r.status, 200);
        assert_eq!(r.json()["path"], seen, "{sent}");
    }
    // Without strip_prefix the backend sees the full path.
    assert_eq!(
        get(&gw.url("/api/users/1?z=3")).json()["path"],
        "/api/users/1?z=3"
    );
}

#[test]
fn dot_segments_are_refused_before_matching() {
    let (gw, users, admin, _r) = setup();
    for path in [
        "/api/reports/../users/admin",
        "/api/users/%2e%2e/admin",
        "/site/./x",
    ] {
        let text = raw(
            gw.proxy,
            format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(text.starts_with("HTTP/1.1 400"), "{path}: {text}");
        assert!(text.contains("\"code\":\"bad_request\""), "{path}: {text}");
    }
    assert_eq!(users.hits() + admin.hits(), 0);
}

#[test]
fn thousands_of_routes() {
    let backend = Backend::start("many");
    let mut yaml = format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n",
        backend.addr
    );
    for i in 0..3000 {
        yaml.push_str(&format!(
            "  - {{name: r{i}, path: /svc{i}/v{}, upstream: u}}\n",
            i % 7
        ));
    }
    yaml.push_str("  - {name: deep, path: /svc10/v3/deeper, upstream: u, methods: [GET]}\n");
    let gw = Gateway::start(&yaml);
    for i in [0, 1, 1499, 2999] {
        let r = get(&gw.url(&format!("/svc{i}/v{}/x", i % 7)));
        assert_eq!(r.status, 200, "route r{i}");
    }
    assert_eq!(get(&gw.url("/svc10/v3/deeper/1")).status, 200);
    assert_eq!(
        request("POST", &gw.url("/svc10/v3/deeper"), &[], Some("")).status,
        405
    );
    assert_eq!(get(&gw.url("/svc10/v4")).status, 404);
    assert_eq!(backend.hits(), 5);
}
