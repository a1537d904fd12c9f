//! Holes found by probing from outside, each reproduced against the real binary: global IP
//! rules on the token endpoints, repeated credentials, roles without `required`, and identity
//! or routing headers a client must not hand to the backend.

mod common;

use common::auth::{auth_section, login, tokens, with_token, API_KEY};
use common::{raw, request, Backend, Gateway};

#[test]
fn global_ip_rules_cover_the_token_endpoints() {
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        auth_section("memory") + "security: {ip_deny: [127.0.0.1/32]}\n",
        &b,
        &["{name: r, path: /, upstream: u}"],
    ));
    let r = login(&gw, "alice", "alice-pass");
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error_code(), "forbidden");
    assert_eq!(
        common::get(&gw.url("/health")).status,
        200,
        "/health stays open"
    );
}

#[test]
fn repeated_credentials_are_refused_and_checked_keys_are_not_forwarded() {
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        auth_section("memory"),
        &b,
        &[
            "{name: open, path: /open, upstream: u}",
            "{name: me, path: /me, upstream: u, auth: {required: true}}",
        ],
    ));
    let (token, _) = tokens(&gw, "alice", "alice-pass");
    for (path, name, first, second) in [
        (
            "/me",
            "Authorization",
            format!("Bearer {token}"),
            "Bearer forged".to_owned(),
        ),
        (
            "/open",
            "Authorization",
            "Bearer a".to_owned(),
            "Bearer b".to_owned(),
        ),
        ("/me", "X-API-Key", API_KEY.to_owned(), "another".to_owned()),
    ] {
        let answer = raw(
            gw.proxy,
            format!(
                "GET {path} HTTP/1.1\r\nHost: x\r\n{name}: {first}\r\n{name}: {second}\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        assert!(
            answer.starts_with("HTTP/1.1 400"),
            "{path} {name}: {answer}"
        );
        assert!(answer.contains("\"code\":\"bad_request\""), "{answer}");
    }
    assert_eq!(b.received(), 0, "nothing ambiguous reached the backend");

    let r = request("GET", &gw.url("/me"), &[("x-api-key", API_KEY)], None);
    assert_eq!(r.status, 200, "{}", r.body);
    let seen = &r.json()["headers"];
    assert!(
        seen.get("x-api-key").is_none(),
        "the checked key was forwarded: {seen}"
    );
    assert_eq!(seen["x-user-id"], "ci-bot");
    // On a route without auth the gateway checked nothing: the backend's own key passes.
    let r = request(
        "GET",
        &gw.url("/open"),
        &[("x-api-key", "backend-key")],
        None,
    );
    assert_eq!(r.json()["headers"]["x-api-key"], "backend-key");
}

#[test]
fn roles_without_required_still_need_a_caller() {
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        auth_section("memory"),
        &b,
        &["{name: admin, path: /admin, upstream: u, auth: {roles: [admin]}}"],
    ));
    let anonymous = common::get(&gw.url("/admin"));
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let (user, _) = tokens(&gw, "alice", "alice-pass");
    assert_eq!(with_token(&gw, "/admin", &user).status, 403);
    let (admin, _) = tokens(&gw, "admin", "admin-pass");
    assert_eq!(with_token(&gw, "/admin", &admin).status, 200);
    assert_eq!(b.received(), 1);
}

#[test]
fn an_explicitly_open_route_with_roles_is_a_config_error() {
    let out = std::process::Command::new(common::gateway::BIN)
        .arg("-t")
        .arg("-c")
        .arg({
            let dir = tempfile::tempdir().expect("dir").keep();
            let path = dir.join("gateway.yaml");
            std::fs::write(
                &path,
                format!(
                    "{}upstreams: {{u: {{backends: [{{addr: 127.0.0.1:1}}]}}}}\nroutes:\n  - {{name: r, path: /, upstream: u, auth: {{required: false, roles: [admin]}}}}\n",
                    auth_section("memory")
                ),
            )
            .expect("write");
            path
        })
        .output()
        .expect("run gateway -t");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("routes[0].auth: required: false with roles [\"admin\"]"),
        "{stderr}"
    );
}

#[test]
fn identity_and_proxy_headers_from_clients_never_reach_the_backend() {
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        String::new(),
        &b,
        &["{name: r, path: /, upstream: u}"],
    ));
    let sent = [
        ("X-User-Id", "admin"),
        ("X_User_Id", "admin"),
        ("x_user-roles", "admin"),
        ("X-User_Roles", "admin"),
        ("Forwarded", "for=1.2.3.4;proto=https"),
        ("X-Real-IP", "1.2.3.4"),
        ("X-Forwarded-Port", "443"),
        ("X-Forwarded-Prefix", "/admin"),
        ("X-Original-URL", "/admin"),
        ("X_Forwarded_For", "1.2.3.4"),
        ("X_Request_Id", "forged"),
        ("X_API_Key", "forged"),
        ("X-Custom_Header", "kept"),
    ];
    let mut head = String::from("GET /x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n");
    for (k, v) in sent {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let answer = raw(gw.proxy, head.as_bytes());
    let body = answer.split("\r\n\r\n").nth(1).expect("a body");
    let seen: serde_json::Value = serde_json::from_str(body).expect("backend JSON");
    let headers = seen["headers"].as_object().expect("headers");
    for name in [
        "x-user-id",
        "x_user_id",
        "x_user-roles",
        "x-user_roles",
        "forwarded",
        "x-real-ip",
        "x-forwarded-port",
        "x-forwarded-prefix",
        "x-original-url",
        "x_forwarded_for",
        "x_request_id",
        "x_api_key",
    ] {
        assert!(
            !headers.contains_key(name),
            "{name} reached the backend: {headers:?}"
        );
    }
    assert_eq!(headers["x-custom_header"], "kept", "other headers pass");
    assert_eq!(headers["x-forwarded-for"], "127.0.0.1");
}

/// `prefix` (other sections), then one upstream `u` on `backend` and `routes` to it.
fn with_routes(prefix: impl Into<String>, backend: &Backend, routes: &[&str]) -> String {
    let mut yaml = prefix.into();
    yaml.push_str(&format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n",
        backend.addr
    ));
    for r in routes {
        yaml.push_str(&format!("  - {r}\n"));
    }
    yaml
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

fn status_of(answer: &str) -> u16 {
    answer
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {answer:?}"))
}

#[test]
fn path_variants_cannot_reach_a_parent_route() {
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(auth_section("memory"), &b, &["{name: api, path: /api, upstream: u, auth: {roles: [user]}}", "{name: admin, path: /api/admin, upstream: u, auth: {roles: [admin]}, case_insensitive: true}", "{name: internal, path: /internal, upstream: u, ip_allow: [10.0.0.0/8]}", "{name: rl, path: /rl, upstream: u, rate_limit: {rate: 1/m, burst: 1, key: [path]}}"]));
    let (user, _) = tokens(&gw, "alice", "alice-pass");
    let get = |path: &str, token: Option<&str>| {
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        raw(
            gw.proxy,
            format!("GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").as_bytes(),
        )
    };
    for variant in [
        "/api/%61dmin",
        "/api/ADMIN",
        "/api//admin",
        "/api/admin;x",
        "/api\\admin",
        "/api/x/..%2fadmin",
        "/api%2fadmin",
        "/api/admin.",
        "/api/admin%20",
        "/api/%2e%2e/api/admin",
    ] {
        let answer = get(variant, Some(&user));
        let status = status_of(&answer);
        assert!(
            status == 400 || status == 403,
            "{variant} with a user token: {answer}"
        );
    }
    for variant in ["/%69nternal", "//internal", "/internal/", "/INTERNAL;x"] {
        let status = status_of(&get(variant, None));
        assert!(
            status == 403 || status == 400 || status == 404,
            "{variant}: {status}"
        );
    }
    // The built-in endpoints are found by the normalized path too: a spelling of /auth/login
    // is the gateway's login (with its limits), never a path for a catch-all route.
    let body = r#"{"username":"alice","password":"alice-pass"}"#;
    for spelling in ["/auth//login", "/auth/%6cogin", "//auth/login"] {
        let answer = raw(
            gw.proxy,
            format!(
                "POST {spelling} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .as_bytes(),
        );
        assert_eq!(status_of(&answer), 200, "{spelling}: {answer}");
        assert!(answer.contains("access_token"), "{spelling}: {answer}");
    }
    assert_eq!(b.received(), 0, "no variant reached the backend");

    // What the backend gets is the path that was matched.
    let answer = get("/api//users/%7ex?q=%2F", Some(&user));
    assert_eq!(status_of(&answer), 200, "{answer}");
    let body = answer.split("\r\n\r\n").nth(1).expect("body");
    let seen: serde_json::Value = serde_json::from_str(body).expect("backend JSON");
    assert_eq!(seen["path"], "/api/users/~x?q=%2F");

    // The rate-limit key uses the normalized path: the spellings share one bucket.
    assert_eq!(status_of(&get("/rl/a", None)), 200);
    for same in ["/rl/%61", "/rl//a", "/rl//%61"] {
        assert_eq!(status_of(&get(same, None)), 429, "{same}");
    }
}

#[test]
fn ipv4_clients_of_a_dual_stack_listener_meet_ipv4_rules() {
    let b = Backend::start("b");
    let header =
        common::gateway::header().replace("proxy: \"{proxy}\"", "proxy: \"[::]:{proxy_port}\"");
    assert!(header.contains("[::]"), "{header}");
    let gw = Gateway::start_raw(&format!(
        "{header}security: {{trusted_proxies: [127.0.0.1/32]}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: denied, path: /denied, upstream: u, ip_deny: [127.0.0.1/32]}}\n  - {{name: allowed, path: /allowed, upstream: u, ip_allow: [127.0.0.1/32]}}\n  - {{name: open, path: /open, upstream: u}}\n",
        b.addr
    ));
    assert_eq!(common::get(&gw.url("/denied")).status, 403);
    assert_eq!(common::get(&gw.url("/allowed")).status, 200);
    // The IPv4 peer is the trusted proxy it is configured as: its X-Forwarded-For is believed.
    let r = request(
        "GET",
        &gw.url("/open"),
        &[("x-forwarded-for", "203.0.113.5")],
        None,
    );
    assert_eq!(
        r.json()["headers"]["x-forwarded-for"],
        "203.0.113.5, 127.0.0.1"
    );
}

#[test]
fn configured_claims_are_required_and_audience_lists_accepted() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        auth_section("memory"),
        &b,
        &["{name: me, path: /me, upstream: u, auth: {required: true}}"],
    ));
    let now = unix_now();
    // A token the gateway issued, as the model: its claims with one thing changed at a time.
    let (issued, _) = tokens(&gw, "alice", "alice-pass");
    let mut validation = jsonwebtoken::Validation::default();
    validation.set_audience(&["api"]);
    let key = jsonwebtoken::DecodingKey::from_secret(common::auth::SECRET.as_bytes());
    let mut claims = jsonwebtoken::decode::<serde_json::Value>(&issued, &key, &validation)
        .expect("the gateway's own token")
        .claims;
    claims["exp"] = serde_json::json!(now + 300);
    claims["jti"] = serde_json::json!("j1");
    let sign = |c: &serde_json::Value| {
        let key = EncodingKey::from_secret(common::auth::SECRET.as_bytes());
        encode(&Header::default(), c, &key).expect("sign")
    };
    let without = |k: &str| {
        let mut c = claims.clone();
        c.as_object_mut().expect("object").remove(k);
        c
    };
    assert_eq!(
        with_token(&gw, "/me", &sign(&claims)).status,
        200,
        "the control"
    );
    for missing in ["iss", "aud"] {
        let r = with_token(&gw, "/me", &sign(&without(missing)));
        assert_eq!(r.status, 401, "without {missing}: {}", r.body);
    }
    let mut listed = claims.clone();
    listed["aud"] = serde_json::json!(["web", "api"]);
    assert_eq!(
        with_token(&gw, "/me", &sign(&listed)).status,
        200,
        "aud as a list"
    );
    listed["aud"] = serde_json::json!(["web", "app"]);
    assert_eq!(with_token(&gw, "/me", &sign(&listed)).status, 401);

    // A token without an id (minted elsewhere with the key) passes on routes, but logout cannot
    // revoke it and says so instead of answering 204.
    let unrevocable = sign(&without("jti"));
    assert_eq!(with_token(&gw, "/me", &unrevocable).status, 200);
    let r = request(
        "POST",
        &gw.url("/auth/logout"),
        &[("authorization", &format!("Bearer {unrevocable}"))],
        None,
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(with_token(&gw, "/me", &unrevocable).status, 200);
    // A token of a user the config no longer has (its epoch names nobody) is refused.
    let mut stranger = claims.clone();
    stranger["sub"] = serde_json::json!("mallory");
    assert_eq!(with_token(&gw, "/me", &sign(&stranger)).status, 401);
}

/// An auth section with the given users (`name`, argon2id hash, roles) and JWT settings.
fn users_section(users: &[(&str, &str, &str)], jwt_extra: &str) -> String {
    let mut s = format!(
        "auth:\n  jwt: {{algorithm: HS256, secret: \"{}\", issuer: gw-test, audience: api, refresh_ttl: 1h{jwt_extra}}}\n  users:\n",
        common::auth::SECRET
    );
    for (name, hash, roles) in users {
        s.push_str(&format!(
            "    - {{username: {name}, password_hash: \"{hash}\", roles: [{roles}]}}\n"
        ));
    }
    s
}

fn refresh(gw: &Gateway, token: &str) -> common::Resp {
    request(
        "POST",
        &gw.url("/auth/refresh"),
        &[("content-type", "application/json")],
        Some(&serde_json::json!({"refresh_token": token}).to_string()),
    )
}

#[test]
fn removed_users_and_new_passwords_end_sessions_and_refresh_takes_current_roles() {
    use common::auth::hash;
    let b = Backend::start("b");
    let (alice, bob) = (hash("alice-pass"), hash("bob-pass"));
    let routes = format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: me, path: /me, upstream: u, auth: {{required: true}}}}\n",
        b.addr
    );
    let both = [
        ("alice", alice.as_str(), "user"),
        ("bob", bob.as_str(), "user"),
    ];
    let gw = Gateway::start(&format!("{}{routes}", users_section(&both, "")));
    let (alice_access, alice_refresh) = tokens(&gw, "alice", "alice-pass");
    let (bob_access, bob_refresh) = tokens(&gw, "bob", "bob-pass");

    let reload = |users: &[(&str, &str, &str)], marker: &str| {
        let before = gw.log().matches("config reloaded").count();
        gw.reconfigure(&format!("{}{routes}", users_section(users, marker)));
        gw.signal("HUP");
        common::wait_for("the reload", std::time::Duration::from_secs(10), || {
            (gw.log().matches("config reloaded").count() > before).then_some(())
        });
    };
    // Bob is removed; Alice gets a second role.
    reload(&[("alice", alice.as_str(), "user, ops")], "");
    let r = refresh(&gw, &bob_refresh);
    assert_eq!(r.status, 401, "a removed user's refresh token: {}", r.body);
    assert_eq!(
        with_token(&gw, "/me", &bob_access).status,
        401,
        "and access token"
    );
    let r = refresh(&gw, &alice_refresh);
    assert_eq!(r.status, 200, "{}", r.body);
    let fresh = r.json()["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let seen = with_token(&gw, "/me", &fresh).json();
    assert_eq!(
        seen["headers"]["x-user-roles"], "user,ops",
        "roles from the running config"
    );
    assert_eq!(
        with_token(&gw, "/me", &alice_access).status,
        200,
        "old roles, same user"
    );

    // Alice's password changes: every token of the old password stops working.
    let new_hash = hash("alice-new");
    let rotated = r.json()["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    reload(&[("alice", new_hash.as_str(), "user")], "");
    assert_eq!(refresh(&gw, &rotated).status, 401);
    assert_eq!(with_token(&gw, "/me", &fresh).status, 401);
    let (after, _) = tokens(&gw, "alice", "alice-new");
    assert_eq!(with_token(&gw, "/me", &after).status, 200);

    // Bob comes back with the same password hash: his old tokens stay dead, new ones work.
    reload(
        &[
            ("alice", new_hash.as_str(), "user"),
            ("bob", bob.as_str(), "user"),
        ],
        "",
    );
    let r = refresh(&gw, &bob_refresh);
    assert_eq!(r.status, 401, "an old refresh token came back: {}", r.body);
    assert_eq!(with_token(&gw, "/me", &bob_access).status, 401);
    // Tokens are stamped in whole seconds: a login in the second of the removal counts as
    // before it.
    let removed_at = unix_now();
    common::wait_for("the next second", std::time::Duration::from_secs(3), || {
        (unix_now() > removed_at).then_some(())
    });
    let (bob_again, _) = tokens(&gw, "bob", "bob-pass");
    assert_eq!(with_token(&gw, "/me", &bob_again).status, 200);
}

#[test]
fn a_login_has_an_absolute_lifetime_that_refreshing_does_not_extend() {
    use common::auth::hash;
    let b = Backend::start("b");
    let alice = hash("alice-pass");
    let gw = Gateway::start(&with_routes(
        users_section(&[("alice", alice.as_str(), "user")], ", session_ttl: 2s"),
        &b,
        &["{name: me, path: /me, upstream: u, auth: {required: true}}"],
    ));
    let started = std::time::Instant::now();
    let (_, mut token) = tokens(&gw, "alice", "alice-pass");
    let mut rotations = 0;
    let ended = common::wait_for(
        "the session to end",
        std::time::Duration::from_secs(10),
        || {
            let r = refresh(&gw, &token);
            if r.status == 200 {
                token = r.json()["refresh_token"]
                    .as_str()
                    .expect("refresh")
                    .to_owned();
                rotations += 1;
                std::thread::sleep(std::time::Duration::from_millis(100));
                return None;
            }
            Some(r)
        },
    );
    assert_eq!(ended.status, 401, "{}", ended.body);
    assert_eq!(ended.error_code(), "token_expired");
    assert!(rotations >= 1, "rotation worked before the end");
    // Token times have whole seconds: a 2 s session ends after more than 1 s.
    assert!(started.elapsed() >= std::time::Duration::from_secs(1));
}

fn login_as(gw: &Gateway, user: &str, password: &str) -> u16 {
    login(gw, user, password).status
}

#[test]
fn login_limits_count_failures_are_configurable_and_cover_addresses_and_refreshes() {
    use common::auth::hash;
    let b = Backend::start("b");
    let (alice, bob) = (hash("alice-pass"), hash("bob-pass"));
    let section = users_section(
        &[
            ("alice", alice.as_str(), "user"),
            ("bob", bob.as_str(), "user"),
        ],
        "",
    ) + "  login_limit: {per_user: 2/m, per_ip: 4/m, refresh_per_ip: 3/m}\n";
    let gw = Gateway::start(&with_routes(
        section.clone(),
        &b,
        &["{name: r, path: /, upstream: u}"],
    ));
    // Successes never count: a dashboard open in many tabs logs in again and again.
    for _ in 0..8 {
        assert_eq!(login_as(&gw, "alice", "alice-pass"), 200);
    }
    // Two failures, then the limit; a success before it clears the count.
    assert_eq!(login_as(&gw, "alice", "wrong"), 401);
    assert_eq!(login_as(&gw, "alice", "alice-pass"), 200);
    assert_eq!(login_as(&gw, "alice", "wrong"), 401);
    assert_eq!(login_as(&gw, "alice", "wrong"), 401);
    assert_eq!(login_as(&gw, "alice", "alice-pass"), 429, "per_user: 2/m");
    // Failures from one address add up across usernames, and a success does not clear them
    // (per_ip: 4/m): three so far, one more reaches the limit, for every username.
    assert_eq!(login_as(&gw, "nobody", "x"), 401);
    let r = login(&gw, "bob", "bob-pass");
    assert_eq!(r.status, 429, "per_ip: {}", r.body);
    assert!(r.header("retry-after").is_some());

    let refresh_gw = Gateway::start(&with_routes(
        section.clone(),
        &b,
        &["{name: r, path: /, upstream: u}"],
    ));
    let (_, mut token) = tokens(&refresh_gw, "alice", "alice-pass");
    for _ in 0..3 {
        let r = refresh(&refresh_gw, &token);
        assert_eq!(r.status, 200, "{}", r.body);
        token = r.json()["refresh_token"]
            .as_str()
            .expect("token")
            .to_owned();
    }
    assert_eq!(
        refresh(&refresh_gw, &token).status,
        429,
        "refresh_per_ip: 3/m"
    );
}

fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("proc status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn a_flood_of_logins_cannot_exhaust_memory() {
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        auth_section("memory"),
        &b,
        &["{name: r, path: /, upstream: u}"],
    ));
    let before = peak_rss_kib(gw.child.id());
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..48)
            .map(|i| {
                let gw = &gw;
                s.spawn(move || login_as(gw, &format!("unknown-{i}"), "guess"))
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("client"))
            .collect()
    });
    for status in &statuses {
        assert!([401, 429, 503].contains(status), "{statuses:?}");
    }
    // Each argon2 check holds 19 MiB; 48 at once took the process past 1 GiB. With at most 8
    // checks at once the growth stays below 8 × 19 MiB plus buffers, on any machine.
    let grown_mib = peak_rss_kib(gw.child.id()).saturating_sub(before) / 1024;
    assert!(grown_mib < 400, "peak RSS grew by {grown_mib} MiB");
}

#[test]
fn strip_prefix_never_hands_the_backend_a_network_path() {
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        String::new(),
        &b,
        &["{name: r, path: /api, upstream: u, strip_prefix: true}"],
    ));
    for (sent, expected) in [
        ("/api//evil.example/x", "/evil.example/x"),
        ("/api///evil.example", "/evil.example"),
        ("/api", "/"),
        ("/api/?q=1", "/?q=1"),
    ] {
        let answer = raw(
            gw.proxy,
            format!("GET {sent} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let body = answer.split("\r\n\r\n").nth(1).expect("body");
        let seen: serde_json::Value = serde_json::from_str(body).expect("backend JSON");
        assert_eq!(seen["path"], expected, "{sent}");
    }
}

#[test]
fn malformed_requests_get_the_contract_errors() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        auth_section("memory"),
        &b,
        &[
            "{name: open, path: /open, upstream: u}",
            "{name: me, path: /me, upstream: u, auth: {required: true}}",
        ],
    ));
    let send = |head: &str| raw(gw.proxy, head.as_bytes());
    let no_host = send("GET /open HTTP/1.1\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&no_host), 400, "{no_host}");
    assert!(no_host.contains("\"code\":\"bad_request\""), "{no_host}");
    let two_hosts = send("GET /open HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&two_hosts), 400, "{two_hosts}");
    let bare_lf = send("GET /open HTTP/1.1\nHost: x\nConnection: close\n\n");
    assert_eq!(status_of(&bare_lf), 400, "{bare_lf}");
    let trace = send("TRACE /open HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&trace), 405, "{trace}");
    assert!(
        trace.to_ascii_lowercase().contains("\r\nallow: "),
        "{trace}"
    );
    assert_eq!(b.received(), 0, "none of them reached the backend");
    let fine = send("GET /open HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(status_of(&fine), 200, "{fine}");

    // A correctly signed token whose subject would split a header line.
    let now = unix_now();
    let claims = serde_json::json!({"sub": "alice\r\nX-Injected: 1", "roles": ["user"], "iss": "gw-test", "aud": "api", "exp": now + 300, "jti": "j", "fam": "f", "typ": "access"});
    let key = EncodingKey::from_secret(common::auth::SECRET.as_bytes());
    let token = encode(&Header::default(), &claims, &key).expect("sign");
    let r = with_token(&gw, "/me", &token);
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn long_limit_keys_cost_a_fixed_size() {
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(String::new(), &b, &["{name: r, path: /, upstream: u, rate_limit: {rate: 1000000/s, burst: 1000000, key: [path]}}"]));
    let pad = "a".repeat(58 * 1024);
    let send = |i: usize| {
        let head = format!("GET /{i}-{pad} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        status_of(&raw(gw.proxy, head.as_bytes()))
    };
    // Warm up the allocator with requests of the same size, then measure.
    for i in 0..50 {
        assert_eq!(send(i), 200);
    }
    let before = peak_rss_kib(gw.child.id());
    for i in 50..850 {
        assert_eq!(send(i), 200);
    }
    // 800 keys of 58 KiB each would be 45 MiB; hashed they are a few bytes each.
    let grown_mib = peak_rss_kib(gw.child.id()).saturating_sub(before) / 1024;
    assert!(
        grown_mib < 16,
        "peak RSS grew by {grown_mib} MiB for 800 long keys"
    );
}

#[test]
fn a_request_head_sent_slowly_is_cut_off() {
    use std::io::{Read, Write};
    let (b, gw) = head_timeout_gateway();
    let mut s = connect(&gw);
    let started = std::time::Instant::now();
    let answer = send_head_slowly(&mut s, b"GET / HTTP/1.1\r\nHost: x\r\n");
    assert!(
        !answer.contains(" 200 "),
        "the slow head was served: {answer}"
    );
    assert_eq!(b.received(), 0);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(9),
        "the connection was held for {:?}",
        started.elapsed()
    );
    // A head sent at once is served as usual, also on a kept-alive connection.
    let mut s = std::net::TcpStream::connect(gw.proxy).expect("connect");
    for _ in 0..2 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("send");
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).expect("answer");
        assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
        std::thread::sleep(std::time::Duration::from_millis(1500));
    }
}

/// A gateway with a 1 s request head deadline in front of one backend.
fn head_timeout_gateway() -> (Backend, Gateway) {
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        "security: {request_head_timeout: 1s}\n".to_owned(),
        &b,
        &["{name: r, path: /, upstream: u}"],
    ));
    (b, gw)
}

/// A connection to the proxy listener whose reads give up after 10 s.
fn connect(gw: &Gateway) -> std::net::TcpStream {
    let s = std::net::TcpStream::connect(gw.proxy).expect("connect");
    s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .expect("timeout");
    s
}

/// Sends `start`, then one header line every 300 ms for 3 s (each read is quick, the head as a
/// whole is not) and the empty line if the connection is still open; what came back.
fn send_head_slowly(s: &mut std::net::TcpStream, start: &[u8]) -> String {
    use std::io::{Read, Write};
    s.write_all(start).expect("start");
    let mut cut_off = false;
    for i in 0..10 {
        std::thread::sleep(std::time::Duration::from_millis(300));
        if s.write_all(format!("X-Slow-{i}: y\r\n").as_bytes())
            .is_err()
        {
            cut_off = true;
            break;
        }
    }
    if !cut_off {
        let _ = s.write_all(b"\r\n");
    }
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// Pingora serves a kept-alive connection's requests in a loop of its own: the head deadline
/// must start again for each of them, not only for the connection's first.
#[test]
fn a_slow_head_after_a_kept_alive_request_is_cut_off() {
    use std::io::{Read, Write};
    let (b, gw) = head_timeout_gateway();
    let mut s = connect(&gw);
    s.write_all(b"GET /first HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("answer");
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    // The second head, one line every 300 ms, on the same connection.
    let started = std::time::Instant::now();
    let answer = send_head_slowly(&mut s, b"GET /second HTTP/1.1\r\nHost: x\r\n");
    assert!(
        !answer.contains(" 200 "),
        "the slow second head was served: {answer}"
    );
    assert_eq!(
        b.received(),
        1,
        "only the first request reached the backend"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_millis(2900),
        "the second head was allowed {:?}",
        started.elapsed()
    );
}

#[test]
fn connections_per_address_are_capped() {
    use std::io::{Read, Write};
    let b = Backend::start("b");
    let gw = Gateway::start(&with_routes(
        "security: {max_connections_per_ip: 3}\n".to_owned(),
        &b,
        &["{name: r, path: /, upstream: u}"],
    ));
    // A connection that got an answer is counted and stays open (keep-alive).
    let served = || {
        let mut s = std::net::TcpStream::connect(gw.proxy).ok()?;
        s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
            .ok()?;
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n").ok()?;
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf).ok()?;
        String::from_utf8_lossy(&buf[..n])
            .starts_with("HTTP/1.1 200")
            .then_some(s)
    };
    // Three such connections take every slot of 127.0.0.1 (once the readiness probe's is gone).
    common::wait_for(
        "three connections served",
        std::time::Duration::from_secs(5),
        || {
            let held: Vec<_> = (0..3).filter_map(|_| served()).collect();
            if held.len() < 3 {
                return None;
            }
            let mut fourth = std::net::TcpStream::connect(gw.proxy).expect("connect");
            fourth
                .set_read_timeout(Some(std::time::Duration::from_secs(5)))
                .expect("timeout");
            let _ = fourth.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
            let mut buf = [0u8; 64];
            let refused = matches!(fourth.read(&mut buf), Ok(0) | Err(_));
            drop(held);
            refused.then_some(())
        },
    );
    // Once they close, the address gets its slots back.
    common::wait_for("a slot to free", std::time::Duration::from_secs(5), || {
        let answer = common::client::try_request("GET", &gw.url("/"), &[], None);
        answer.is_ok_and(|r| r.status == 200).then_some(())
    });
}

/// The admin listener's `/auth/*` is the proxy's: the same global IP rules, and the same client
/// address (an IPv4 client of a dual-stack listener is the IPv4 address the rules name).
#[test]
fn the_admin_listeners_login_meets_the_global_ip_rules() {
    let b = Backend::start("b");
    let header =
        common::gateway::header().replace("admin: \"{admin}\"", "admin: \"[::]:{admin_port}\"");
    let gw = Gateway::start_raw(&with_routes(
        header + &auth_section("memory") + "security: {ip_deny: [127.0.0.1/32]}\n",
        &b,
        &["{name: r, path: /, upstream: u}"],
    ));
    let body = serde_json::json!({"username": "alice", "password": "alice-pass"}).to_string();
    let r = request(
        "POST",
        &gw.admin_url("/auth/login"),
        &[("content-type", "application/json")],
        Some(&body),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(r.error_code(), "forbidden");
    // And the proxy listener's, as before.
    assert_eq!(login(&gw, "alice", "alice-pass").status, 403);
}
