//! The admin listener end to end: authorization of every endpoint, redaction, reload, purge,
//! upstream state, the stats history, metrics, OpenAPI, PromQL through a real Prometheus, and
//! the dashboard files.

mod common;

use common::auth::{
    auth_section_with_admin_key, hash, sha256_hex, tokens, ADMIN_KEY, API_KEY, SECRET,
};
use common::prometheus::prometheus;
use common::{free_port, get, raw, request, wait_for, Backend, Gateway, Resp};
use serde_json::Value;
use std::time::Duration;

fn auth_with_admin_key() -> String {
    auth_section_with_admin_key("memory")
}

fn config(backend: &Backend, extra: &str) -> String {
    format!(
        "{}{extra}upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: open, path: /open, upstream: u}}\n  - {{name: cached, path: /c, upstream: u, cache: {{enabled: true, ttl: 60s}}}}\n",
        auth_with_admin_key(),
        backend.addr
    )
}

/// An admin-listener call; every answer carries the strict CSP.
fn call(
    gw: &Gateway,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Resp {
    let r = request(method, &gw.admin_url(path), headers, body);
    let csp = r.header("content-security-policy").unwrap_or("");
    assert!(
        csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{method} {path}: CSP {csp:?}"
    );
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    r
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn admin_token(gw: &Gateway) -> String {
    // The admin listener serves /auth/login itself (same origin for the dashboard).
    let r = call(
        gw,
        "POST",
        "/auth/login",
        &[("content-type", "application/json")],
        Some(r#"{"username":"admin","password":"admin-pass"}"#),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r.json()["access_token"].as_str().expect("token").to_owned()
}

fn as_admin(gw: &Gateway, token: &str, method: &str, path: &str, body: Option<&str>) -> Resp {
    let auth = bearer(token);
    call(
        gw,
        method,
        path,
        &[
            ("authorization", &auth),
            ("content-type", "application/json"),
        ],
        body,
    )
}

fn start(extra: &str) -> (Backend, Gateway) {
    let b = Backend::start("b");
    let gw = Gateway::start(&config(&b, extra));
    gw.wait_admin();
    (b, gw)
}

const GETS: [&str; 8] = [
    "/api/routes",
    "/api/upstreams",
    "/api/config",
    "/api/metrics",
    "/api/stats/history",
    "/api/openapi.json",
    "/api/promql?query=up",
    "/api/promql/range?query=up&start=1&end=2&step=1",
];
const POSTS: [&str; 2] = ["/api/reload", "/api/cache/purge"];

#[test]
fn every_endpoint_wants_an_admin_and_says_why_not() {
    let (_b, gw) = start("");
    let (user, _) = tokens(&gw, "alice", "alice-pass");
    let (admin, admin_refresh) = tokens(&gw, "admin", "admin-pass");
    let user_auth = bearer(&user);
    let refresh_auth = bearer(&admin_refresh);
    let admin_auth = bearer(&admin);
    for (method, path) in GETS
        .iter()
        .map(|p| ("GET", *p))
        .chain(POSTS.iter().map(|p| ("POST", *p)))
    {
        let body = (method == "POST").then_some(r#"{"prefix":"/c"}"#);
        let none = call(&gw, method, path, &[], body);
        assert_eq!(
            (none.status, none.error_code()),
            (401, "unauthorized".into()),
            "{path}"
        );
        assert!(none.header("www-authenticate").is_some(), "{path}");
        assert_eq!(none.header("cache-control"), Some("no-store"));

        let forged = call(
            &gw,
            method,
            path,
            &[("authorization", "Bearer not.a.token")],
            body,
        );
        assert_eq!(
            (forged.status, forged.error_code()),
            (401, "invalid_token".into()),
            "{path}"
        );
        let refresh = call(&gw, method, path, &[("authorization", &refresh_auth)], body);
        assert_eq!(
            refresh.status, 401,
            "a refresh token is no access token: {path}"
        );

        let user = call(&gw, method, path, &[("authorization", &user_auth)], body);
        assert_eq!(
            (user.status, user.error_code()),
            (403, "forbidden".into()),
            "{path}"
        );
        let user_key = call(&gw, method, path, &[("x-api-key", API_KEY)], body);
        assert_eq!(user_key.status, 403, "{path}");

        for auth in [
            ("authorization", admin_auth.as_str()),
            ("x-api-key", ADMIN_KEY),
        ] {
            let ok = call(&gw, method, path, &[auth], body);
            // PromQL without a Prometheus is a 503 of its own, past the authorization.
            let want = if path.starts_with("/api/promql") {
                503
            } else {
                200
            };
            assert_eq!(
                ok.status, want,
                "{method} {path} with {}: {}",
                auth.0, ok.body
            );
        }
    }
    // One credential per call, even when both are valid.
    let both = [
        ("authorization", admin_auth.as_str()),
        ("x-api-key", ADMIN_KEY),
    ];
    let r = call(&gw, "GET", "/api/routes", &both, None);
    assert_eq!((r.status, r.error_code()), (401, "unauthorized".into()));
    // Wrong method, unknown path: the contract's errors, before any authorization.
    let r = call(&gw, "DELETE", "/api/routes", &[], None);
    assert_eq!((r.status, r.header("allow")), (405, Some("GET, HEAD")));
    let r = call(&gw, "GET", "/api/reload", &[], None);
    assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    let r = call(&gw, "GET", "/api/nothing", &[], None);
    assert_eq!((r.status, r.error_code()), (404, "route_not_found".into()));
    // Logging out ends the token for the admin API at once.
    let r = call(
        &gw,
        "POST",
        "/auth/logout",
        &[("authorization", &admin_auth)],
        None,
    );
    assert_eq!(r.status, 204);
    let r = call(
        &gw,
        "GET",
        "/api/routes",
        &[("authorization", &admin_auth)],
        None,
    );
    assert_eq!((r.status, r.error_code()), (401, "invalid_token".into()));
    let scrape = gw.scrape();
    assert!(
        scrape.contains(r#"auth_requests_total{reason="forbidden",result="failure"}"#),
        "{scrape}"
    );
}

#[test]
fn a_gateway_without_auth_keeps_its_admin_api_closed() {
    let b = Backend::start("b");
    let gw = Gateway::start(&format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        b.addr
    ));
    gw.wait_admin();
    let r = call(&gw, "GET", "/api/config", &[], None);
    assert_eq!(r.status, 401);
    let r = call(&gw, "POST", "/auth/login", &[], Some("{}"));
    assert_eq!(r.status, 404, "no token endpoints without a signer");
}

#[test]
fn the_config_comes_back_with_every_secret_redacted() {
    let redis_port = free_port();
    let prom_port = free_port();
    let extra = format!(
        "redis: {{url: \"redis://:hunter2-redis@127.0.0.1:{redis_port}/0\"}}\nadmin: {{prometheus_url: \"http://ops:prom-s3cret@127.0.0.1:{prom_port}\"}}\n"
    );
    let (_b, gw) = start(&extra);
    let token = admin_token(&gw);
    let r = as_admin(&gw, &token, "GET", "/api/config", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let admin_hash = hash("admin-pass");
    let leaks = [
        SECRET,
        "hunter2-redis",
        "prom-s3cret",
        "ops:",
        "$argon2",
        "sha256:",
        &sha256_hex(ADMIN_KEY),
        &admin_hash,
    ];
    for secret in leaks {
        assert!(!r.body.contains(secret), "{secret} leaked in {}", r.body);
    }
    let v = r.json();
    assert_eq!(v["auth"]["jwt"]["secret"], "[redacted]");
    assert_eq!(v["auth"]["users"][0]["password_hash"], "[redacted]");
    assert_eq!(v["auth"]["users"][0]["username"], "alice");
    assert_eq!(v["auth"]["api_keys"][1]["key_hash"], "[redacted]");
    assert_eq!(v["auth"]["api_keys"][1]["name"], "ops-bot");
    assert_eq!(
        v["redis"]["url"],
        format!("redis://[redacted]@127.0.0.1:{redis_port}/0")
    );
    assert_eq!(v["routes"][1]["name"], "cached");
}

#[test]
fn reload_says_what_changed_and_a_bad_file_keeps_the_running_config() {
    let (b, gw) = start("");
    let token = admin_token(&gw);
    let added = config(&b, "").replace(
        "routes:\n",
        "routes:\n  - {name: extra, path: /extra, upstream: u}\n",
    );
    gw.write_config(&format!("{}{added}", common::gateway::header()));
    let r = as_admin(&gw, &token, "POST", "/api/reload", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["reloaded"], true);
    assert_eq!(v["changes"]["sections"], serde_json::json!(["routes"]));
    assert_eq!(
        v["changes"]["routes"]["added"],
        serde_json::json!(["extra"])
    );
    assert_eq!(get(&gw.url("/extra")).status, 200);

    // Two problems at once, each with its path; the running config stays.
    let broken = added
        .replace(
            "upstream: u}\n  - {name: open",
            "upstream: nowhere}\n  - {name: open",
        )
        .replace("ttl: 60s", "ttl: soon");
    gw.write_config(&format!("{}{broken}", common::gateway::header()));
    let r = as_admin(&gw, &token, "POST", "/api/reload", None);
    assert_eq!(r.status, 400, "{}", r.body);
    let v = r.json();
    assert_eq!(v["error"]["code"], "invalid_config");
    assert!(v["error"]["request_id"]
        .as_str()
        .is_some_and(|s| !s.is_empty()));
    let problems: Vec<String> = v["error"]["problems"]
        .as_array()
        .expect("problems")
        .iter()
        .map(|p| format!("{}: {}", p["path"].as_str().unwrap_or(""), p["message"]))
        .collect();
    assert!(problems.len() >= 2, "{problems:?}");
    assert!(
        problems.iter().any(|p| p.starts_with("routes[0].upstream")),
        "{problems:?}"
    );
    assert!(problems.iter().any(|p| p.contains("ttl")), "{problems:?}");
    assert_eq!(
        get(&gw.url("/extra")).status,
        200,
        "the running config stays"
    );
    let routes = as_admin(&gw, &token, "GET", "/api/routes", None).json();
    assert_eq!(routes["routes"][0]["name"], "extra");
    assert_eq!(routes["routes"][0]["prefix"], "/extra");
    assert!(gw
        .scrape()
        .contains(r#"config_reloads_total{result="failure"} 1"#));
}

#[test]
fn purge_by_url_or_prefix_and_bad_purges_are_refused() {
    let (_b, gw) = start("");
    let token = admin_token(&gw);
    let status = |path: &str| {
        get(&gw.url(path))
            .header("x-cache-status")
            .unwrap_or("")
            .to_owned()
    };
    for path in ["/c/a?x=1", "/c/b", "/c/d/e"] {
        assert_eq!(status(path), "MISS");
        assert_eq!(status(path), "HIT");
    }
    let r = as_admin(
        &gw,
        &token,
        "POST",
        "/api/cache/purge",
        Some(r#"{"url":"/c/a?x=1"}"#),
    );
    assert_eq!(
        (r.status, r.json()["purged"].as_u64()),
        (200, Some(1)),
        "{}",
        r.body
    );
    assert_eq!(status("/c/a?x=1"), "MISS");
    assert_eq!(status("/c/b"), "HIT", "other URLs stay");
    // Another spelling of the same path names the same entries.
    let r = as_admin(
        &gw,
        &token,
        "POST",
        "/api/cache/purge",
        Some(r#"{"prefix":"/c//%64/"}"#),
    );
    assert_eq!(r.json()["purged"].as_u64(), Some(1), "{}", r.body);
    assert_eq!(status("/c/d/e"), "MISS");
    assert_eq!(status("/c/b"), "HIT");

    for bad in [
        "{}",
        r#"{"url":"/c/b","prefix":"/c"}"#,
        "not json",
        r#"{"url":"relative"}"#,
        r#"{"url":"/c/b","extra":1}"#,
    ] {
        let r = as_admin(&gw, &token, "POST", "/api/cache/purge", Some(bad));
        assert_eq!(
            (r.status, r.error_code()),
            (400, "bad_request".into()),
            "{bad}"
        );
    }
    let huge = format!(r#"{{"url":"/{}"}}"#, "a".repeat(70 * 1024));
    let r = as_admin(&gw, &token, "POST", "/api/cache/purge", Some(&huge));
    assert_eq!(r.status, 413);
    assert_eq!(status("/c/b"), "HIT", "refused purges removed nothing");

    let b = Backend::start("b2");
    let plain = Gateway::start(&format!(
        "{}upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        auth_with_admin_key(),
        b.addr
    ));
    plain.wait_admin();
    let r = call(
        &plain,
        "POST",
        "/api/cache/purge",
        &[("x-api-key", ADMIN_KEY)],
        Some(r#"{"prefix":"/"}"#),
    );
    assert_eq!((r.status, r.error_code()), (409, "cache_disabled".into()));
}

#[test]
fn upstreams_show_health_counters_and_the_last_check() {
    let good = Backend::start("good");
    let flaky = Backend::start("flaky");
    let gw = Gateway::start(&format!(
        "{}upstreams:\n  u:\n    backends: [{{addr: \"{}\", weight: 3}}, {{addr: \"{}\"}}]\n    health_check: {{kind: http, path: /health, interval: 200ms, timeout: 300ms, healthy_threshold: 1, unhealthy_threshold: 1}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        auth_with_admin_key(),
        good.addr,
        flaky.addr
    ));
    let token = admin_token(&gw);
    let backend = |addr: &str| -> Value {
        let v = as_admin(&gw, &token, "GET", "/api/upstreams", None).json();
        let u = v["upstreams"]
            .as_array()
            .and_then(|a| a.iter().find(|u| u["name"] == "u"))
            .cloned()
            .expect("upstream u");
        u["backends"]
            .as_array()
            .and_then(|a| a.iter().find(|b| b["addr"] == addr))
            .cloned()
            .expect("backend")
    };
    let flaky_addr = flaky.addr.to_string();
    wait_for("a first check", Duration::from_secs(5), || {
        (backend(&flaky_addr)["last_check"]["ok"] == true).then_some(())
    });
    assert_eq!(backend(&good.addr.to_string())["weight"], 3);
    for _ in 0..8 {
        let r = get(&gw.url("/x?status=500"));
        assert_eq!(r.status, 500);
    }
    // A try is counted once its answer has gone out: the last one may land just after.
    let counts = || {
        let (g, f) = (backend(&good.addr.to_string()), backend(&flaky_addr));
        let total = |key: &str| g[key].as_u64().unwrap_or(0) + f[key].as_u64().unwrap_or(0);
        (
            (total("requests_total"), total("failures_total")),
            format!("{g} {f}"),
        )
    };
    let settled = wait_for("the tries to be counted", Duration::from_secs(5), || {
        let (c, _) = counts();
        (c.0 >= 8 && c.1 >= 8).then_some(c)
    });
    assert_eq!(settled, (8, 8), "{}", counts().1);

    flaky.set_healthy(false);
    let down = wait_for(
        "the backend to turn unhealthy",
        Duration::from_secs(5),
        || {
            let b = backend(&flaky_addr);
            (b["healthy"] == false).then_some(b)
        },
    );
    assert_eq!(down["last_check"]["ok"], false, "{down}");
    assert!(
        down["last_check"]["error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{down}"
    );
    assert!(down["last_check"]["at_ms"]
        .as_u64()
        .is_some_and(|t| t > 1_700_000_000_000));
    flaky.set_healthy(true);
    wait_for("the backend to come back", Duration::from_secs(5), || {
        (backend(&flaky_addr)["healthy"] == true).then_some(())
    });
}

#[test]
fn the_history_has_one_entry_a_second_with_what_happened_in_it() {
    let (_b, gw) = start("");
    let token = admin_token(&gw);
    for i in 0..30 {
        let path = match i % 3 {
            0 => "/open/a",
            1 => "/open/b?status=503",
            _ => "/nowhere",
        };
        get(&gw.url(path));
    }
    let seconds = wait_for("the traffic in the history", Duration::from_secs(5), || {
        let v = as_admin(&gw, &token, "GET", "/api/stats/history", None).json();
        assert_eq!(
            (v["interval_s"].as_u64(), v["capacity"].as_u64()),
            (Some(1), Some(900))
        );
        let seconds = v["seconds"].as_array().cloned().unwrap_or_default();
        let total: u64 = seconds.iter().filter_map(|s| s["requests"].as_u64()).sum();
        (total >= 30).then_some(seconds)
    });
    let sum = |f: &dyn Fn(&Value) -> u64| -> u64 { seconds.iter().map(f).sum() };
    assert_eq!(sum(&|s| s["requests"].as_u64().unwrap_or(0)), 30);
    assert_eq!(sum(&|s| s["errors_5xx"].as_u64().unwrap_or(0)), 10);
    assert_eq!(sum(&|s| s["errors_4xx"].as_u64().unwrap_or(0)), 10);
    assert_eq!(
        sum(&|s| s["upstreams"]["u"]["requests"].as_u64().unwrap_or(0)),
        20
    );
    assert_eq!(
        sum(&|s| s["upstreams"]["u"]["errors"].as_u64().unwrap_or(0)),
        10
    );
    let busy = seconds
        .iter()
        .find(|s| s["requests"].as_u64() > Some(0))
        .expect("a busy second");
    let (p50, p99) = (busy["p50_ms"].as_f64(), busy["p99_ms"].as_f64());
    assert!(p50.is_some_and(|p| p > 0.0) && p99 >= p50, "{busy}");
    let times: Vec<u64> = seconds.iter().filter_map(|s| s["t"].as_u64()).collect();
    assert!(times.windows(2).all(|w| w[1] > w[0]), "{times:?}");
    let last = times.last().copied().unwrap_or(0);
    let newer = as_admin(
        &gw,
        &token,
        "GET",
        &format!("/api/stats/history?since={last}"),
        None,
    )
    .json();
    assert!(newer["seconds"]
        .as_array()
        .is_some_and(|a| a.iter().all(|s| s["t"].as_u64() > Some(last))));
    let r = as_admin(
        &gw,
        &token,
        "GET",
        "/api/stats/history?since=yesterday",
        None,
    );
    assert_eq!(r.status, 400);
}

#[test]
fn metrics_text_and_the_openapi_description() {
    let (_b, gw) = start("");
    let token = admin_token(&gw);
    get(&gw.url("/open/x"));
    // The request is counted in its logging phase, which may end after its answer arrived.
    let r = wait_for("the request in the metrics", Duration::from_secs(5), || {
        let r = as_admin(&gw, &token, "GET", "/api/metrics", None);
        r.body
            .contains(r#"http_requests_total{method="GET",route="open",status="200"}"#)
            .then_some(r)
    });
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    let doc = as_admin(&gw, &token, "GET", "/api/openapi.json", None).json();
    assert_eq!(doc["openapi"], "3.1.0");
    for path in GETS.iter().chain(POSTS.iter()) {
        let bare = path.split('?').next().unwrap_or(path);
        assert!(doc["paths"][bare].is_object(), "{bare} undocumented");
    }
    for path in ["/auth/login", "/auth/refresh", "/auth/logout"] {
        assert!(
            doc["paths"][path]["post"].is_object(),
            "{path} undocumented"
        );
    }
}

#[test]
fn promql_goes_to_prometheus_and_says_so_when_it_cannot() {
    let dead = free_port();
    let (_b, gw) = start(&format!(
        "admin: {{prometheus_url: \"http://127.0.0.1:{dead}\"}}\n"
    ));
    let token = admin_token(&gw);
    let r = as_admin(&gw, &token, "GET", "/api/promql?query=up", None);
    assert_eq!(
        (r.status, r.error_code()),
        (503, "prometheus_unavailable".into()),
        "{}",
        r.body
    );
    assert!(r.header("retry-after").is_some());

    let prom = prometheus(gw.metrics);
    let mut cfg = std::fs::read_to_string(&gw.config).expect("config");
    cfg = cfg.replace(&format!("http://127.0.0.1:{dead}"), &prom.url);
    gw.write_config(&cfg);
    assert_eq!(
        as_admin(&gw, &token, "POST", "/api/reload", None).status,
        200
    );

    let up = wait_for("a scrape of the gateway", Duration::from_secs(20), || {
        let r = as_admin(
            &gw,
            &token,
            "GET",
            "/api/promql?query=up%7Bjob%3D%22gateway%22%7D",
            None,
        );
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        let value = v["data"]["result"][0]["value"][1]
            .as_str()
            .map(str::to_owned);
        (value.as_deref() == Some("1")).then_some(v)
    });
    assert_eq!(up["status"], "success");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let range = as_admin(
        &gw,
        &token,
        "GET",
        &format!(
            "/api/promql/range?query=up&start={}&end={now}&step=1&ignored=1",
            now - 30
        ),
        None,
    );
    assert_eq!(range.status, 200, "{}", range.body);
    assert_eq!(range.json()["data"]["resultType"], "matrix");
    // Prometheus' own error comes back as it is.
    let bad = as_admin(&gw, &token, "GET", "/api/promql?query=rate(up", None);
    assert_eq!(bad.status, 400, "{}", bad.body);
    assert_eq!(bad.json()["status"], "error");
    let empty = as_admin(&gw, &token, "GET", "/api/promql?query=", None);
    assert_eq!(
        (empty.status, empty.error_code()),
        (400, "bad_request".into())
    );

    let none = start("").1;
    let t = admin_token(&none);
    let r = as_admin(&none, &t, "GET", "/api/promql?query=up", None);
    assert_eq!(
        (r.status, r.error_code()),
        (503, "prometheus_not_configured".into())
    );
}

#[test]
fn credentials_in_prometheus_url_are_sent_as_basic_authentication() {
    // A stand-in that answers with the request it got, passed back as Prometheus' answer.
    let echo = Backend::start("prometheus");
    let (_b, gw) = start(&format!(
        "admin: {{prometheus_url: \"http://ops:s%40cret@{}\"}}\n",
        echo.addr
    ));
    let token = admin_token(&gw);
    let r = as_admin(&gw, &token, "GET", "/api/promql?query=up", None);
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = r.json();
    assert_eq!(seen["path"], "/api/v1/query?query=up");
    // base64("ops:s@cret"): the password percent-decoded.
    assert_eq!(seen["headers"]["authorization"], "Basic b3BzOnNAY3JldA==");
    assert_eq!(seen["headers"]["host"], echo.addr.to_string());
}

#[test]
fn the_dashboard_is_served_with_fallback_and_caching() {
    let dist = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dist.path().join("assets")).expect("assets");
    std::fs::write(
        dist.path().join("index.html"),
        "<!doctype html><title>gw</title>",
    )
    .expect("index");
    std::fs::write(dist.path().join("assets/app-1a2b3c.js"), "console.log(1)").expect("js");
    std::fs::write(dist.path().join("favicon.svg"), "<svg/>").expect("svg");
    let (_b, gw) = start(&format!(
        "admin: {{dashboard_dir: \"{}\"}}\n",
        dist.path().display()
    ));

    let index = call(&gw, "GET", "/", &[], None);
    assert_eq!(index.status, 200);
    assert!(index.body.contains("<title>gw</title>"));
    assert_eq!(index.header("cache-control"), Some("no-cache"));
    assert!(index
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/html")));
    for client_route in ["/backends", "/metrics/x", "/login"] {
        let r = call(&gw, "GET", client_route, &[], None);
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, index.body.as_str()),
            "{client_route}"
        );
    }
    let js = call(&gw, "GET", "/assets/app-1a2b3c.js", &[], None);
    assert_eq!(js.body, "console.log(1)");
    assert_eq!(
        js.header("cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    assert!(js
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/javascript")));
    let svg = call(&gw, "GET", "/favicon.svg", &[], None);
    assert_eq!(svg.header("content-type"), Some("image/svg+xml"));
    let head = call(&gw, "HEAD", "/", &[], None);
    assert_eq!((head.status, head.body.as_str()), (200, ""));
    assert_eq!(call(&gw, "GET", "/assets/gone.js", &[], None).status, 404);
    assert_eq!(call(&gw, "POST", "/", &[], Some("x")).status, 405);

    // Whatever the spelling, nothing outside the folder.
    std::fs::write(
        dist.path().parent().expect("parent").join("secret.txt"),
        "top secret",
    )
    .ok();
    for attack in [
        "/../secret.txt",
        "/assets/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/assets/%2e%2e%2f%2e%2e%2fsecret.txt",
        "/..%5csecret.txt",
    ] {
        let answer = raw(
            gw.admin,
            format!("GET {attack} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(!answer.contains("top secret"), "{attack}: {answer}");
    }
    // A symbolic link out of the folder is not followed; one inside it is.
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(outside.path().join("key.pem"), "private key").expect("outside file");
    std::os::unix::fs::symlink(outside.path().join("key.pem"), dist.path().join("key.pem"))
        .expect("symlink out");
    std::os::unix::fs::symlink(outside.path(), dist.path().join("linked")).expect("dir link");
    std::os::unix::fs::symlink(
        dist.path().join("favicon.svg"),
        dist.path().join("icon.svg"),
    )
    .expect("symlink in");
    for path in ["/key.pem", "/linked/key.pem"] {
        let r = call(&gw, "GET", path, &[], None);
        assert_eq!(r.status, 404, "{path}: {}", r.body);
        assert!(!r.body.contains("private key"));
    }
    assert_eq!(call(&gw, "GET", "/icon.svg", &[], None).body, "<svg/>");

    let (_b2, bare) = start(&format!(
        "admin: {{dashboard_dir: \"{}\"}}\n",
        dist.path().join("missing").display()
    ));
    let r = call(&bare, "GET", "/", &[], None);
    assert_eq!(r.status, 404);
    assert!(r.body.contains("make dashboard"), "{}", r.body);
}

#[test]
fn reload_problems_never_show_secrets() {
    let (b, gw) = start("");
    let token = admin_token(&gw);
    let redis = config(
        &b,
        "redis: {url: \"redis://:hunter2-redis@127.0.0.1:1/x\"}\n",
    );
    let secret = config(&b, "").replace(
        &format!("secret: \"{SECRET}\""),
        "secret: 98765432109876543210987654321",
    );
    for (body, path) in [(redis, "redis.url"), (secret, "auth.jwt.secret")] {
        let file = format!("{}{body}", common::gateway::header());
        gw.write_config(&file);
        let r = as_admin(&gw, &token, "POST", "/api/reload", None);
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(r.body.contains(path), "{}", r.body);
        let (code, text) = common::gateway::check_config(&file.replace("{dir}", "/tmp"));
        assert_eq!(code, Some(1), "{text}");
        assert!(text.contains(path), "{text}");
        for (what, text) in [("answer", r.body), ("gateway -t", text), ("log", gw.log())] {
            for secret in ["hunter2-redis", "98765432109876543210987654321"] {
                assert!(!text.contains(secret), "the {what} shows {secret}: {text}");
            }
        }
    }
}

#[test]
fn routes_show_the_policy_that_applies_and_backends_their_names() {
    let b = Backend::start("b");
    let gw = Gateway::start(&format!(
        "{}cache: {{default_ttl: 45s}}\ngroups:\n  api: {{prefix: /api, auth: {{required: true, roles: [user]}}, rate_limit: {{rate: 50/s, burst: 100}}}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\", name: primary}}]}}\nroutes:\n  - {{name: open, path: /open, upstream: u}}\n  - {{name: grouped, group: api, path: /things, upstream: u, cache: {{enabled: true}}}}\n",
        auth_with_admin_key(),
        b.addr
    ));
    gw.wait_admin();
    let token = admin_token(&gw);
    let routes = as_admin(&gw, &token, "GET", "/api/routes", None).json();
    let route = |name: &str| {
        routes["routes"]
            .as_array()
            .and_then(|r| r.iter().find(|r| r["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("route {name}: {routes}"))
    };
    let open = route("open")["effective"].clone();
    assert_eq!(open["auth"], Value::Null, "an open route: {open}");
    assert_eq!(open["rate_limit"], Value::Null, "no limit: {open}");
    assert_eq!(open["cache"], Value::Null);
    let grouped = route("grouped")["effective"].clone();
    assert_eq!(
        grouped["auth"]["roles"],
        serde_json::json!(["user"]),
        "{grouped}"
    );
    assert_eq!(grouped["rate_limit"]["burst"], 100, "{grouped}");
    assert_eq!(grouped["rate_limit"]["algorithm"], "token_bucket");
    assert_eq!(
        grouped["rate_limit"]["key"],
        serde_json::json!(["client_ip", "user", "path"])
    );
    assert_eq!(
        grouped["cache"]["ttl_s"], 45,
        "the cache section's default: {grouped}"
    );
    let upstreams = as_admin(&gw, &token, "GET", "/api/upstreams", None).json();
    assert_eq!(upstreams["upstreams"][0]["backends"][0]["name"], "primary");
}
