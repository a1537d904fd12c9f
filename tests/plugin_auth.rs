//! Authentication middlewares end to end: `basic_auth` (login limits, state kept across a
//! reload), `hmac_auth` (signature, date, body digest, nonces in memory and shared through
//! Redis) and `forward_auth` (admission, denials as they came, failing closed).

mod common;

use base64::Engine;
use common::auth::hash;
use common::gateway::{one_upstream, refused};
use common::{get, request, wait_for, Backend, Gateway};
use std::time::Duration;

fn basic(user: &str, password: &str) -> String {
    let text = format!("{user}:{password}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(text)
    )
}

fn basic_auth_config(b: &Backend, password_hash: &str, realm: &str, extra_route: &str) -> String {
    format!(
        "{}routes:
  - name: private
    path: /private
    upstream: u
    plugins:
      - name: basic_auth
        settings:
          realm: {realm}
          users: [{{username: alice, password_hash: \"{password_hash}\", roles: [staff]}}]
          login_limit: {{per_user: 2/1m}}
{extra_route}",
        one_upstream(b)
    )
}

#[test]
fn basic_auth_users_are_checked_as_auth_users_are() {
    let b = Backend::start("b");
    let h = hash("s3cret");
    let users = |list: &str| {
        format!(
            "{}routes: [{{name: p, path: /, upstream: u, plugins: [{{name: basic_auth, settings: {{users: [{list}]}}}}]}}]\n",
            one_upstream(&b)
        )
    };
    let err = refused(&users(&format!(
        "{{username: al, password_hash: \"{h}\"}}, {{username: al, password_hash: \"{h}\"}}"
    )));
    assert!(
        err.contains("routes[0].plugins[0].settings.users[1].username: duplicate user \"al\""),
        "{err}"
    );
    let err = refused(&users("{username: al, password_hash: plain-text}"));
    assert!(
        err.contains("routes[0].plugins[0].settings.users[0].password_hash"),
        "{err}"
    );
    let err = refused(&users(&format!(
        "{{username: \"a:b\", password_hash: \"{h}\"}}"
    )));
    assert!(
        err.contains("settings.users[0].username: must be non-empty"),
        "{err}"
    );
}

#[test]
fn basic_auth_checks_passwords_under_login_limits_and_a_reload_keeps_them() {
    let b = Backend::start("b");
    let h = hash("s3cret");
    let gw = Gateway::start(&basic_auth_config(&b, &h, "staff", ""));
    let url = gw.url("/private/x");
    let r = get(&url);
    assert_eq!(r.status, 401);
    assert_eq!(r.error_code(), "unauthorized");
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"staff\", charset=\"UTF-8\"")
    );
    let r = request(
        "GET",
        &url,
        &[("authorization", &basic("alice", "s3cret"))],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-user-id"], "alice");
    assert_eq!(r.json()["headers"]["x-user-roles"], "staff");
    let wrong = || {
        request(
            "GET",
            &url,
            &[("authorization", &basic("alice", "nope"))],
            None,
        )
    };
    assert_eq!(wrong().error_code(), "invalid_credentials");
    assert_eq!(wrong().error_code(), "invalid_credentials");
    let r = wrong();
    assert_eq!(
        r.status, 429,
        "the third failure in a minute is over per_user"
    );
    assert!(r.header("retry-after").is_some());

    // A reload that leaves the entry as it is keeps its counters.
    gw.reconfigure(&basic_auth_config(
        &b,
        &h,
        "staff",
        "  - {name: more, path: /more, upstream: u}\n",
    ));
    gw.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        (get(&gw.url("/more")).status == 200).then_some(())
    });
    assert_eq!(
        wrong().status,
        429,
        "still limited after a reload that kept the entry"
    );
    // New settings make a new middleware, with counters of its own.
    gw.reconfigure(&basic_auth_config(&b, &h, "other", ""));
    gw.signal("HUP");
    wait_for("the second reload", Duration::from_secs(10), || {
        (get(&gw.url("/more")).status == 404).then_some(())
    });
    let r = wrong();
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(
        r.header("www-authenticate"),
        Some("Basic realm=\"other\", charset=\"UTF-8\"")
    );
}

#[test]
fn forward_auth_admits_on_2xx_answers_denials_as_they_came_and_fails_closed() {
    let app = Backend::start("app");
    let auth = Backend::start("auth");
    let route = |name: &str, query: &str, extra: &str| {
        format!(
            "  - name: {name}
    path: /{name}
    upstream: u
    plugins:
      - {{name: forward_auth, settings: {{url: \"http://{}/verify?{query}\", upstream_headers: [remote-user]{extra}}}}}
",
            auth.addr
        )
    };
    let gone = format!(
        "  - {{name: gone, path: /gone, upstream: u, plugins: [{{name: forward_auth, settings: {{url: \"http://{}/\"}}}}]}}\n",
        common::dead_addr()
    );
    let gw = Gateway::start(&format!(
        "{}routes:\n{}{}{}{}{gone}",
        one_upstream(&app),
        route("ok", "set_header=remote-user:bob", ""),
        route("no", "status=401&set_header=www-authenticate:Bearer", ""),
        route(
            "login",
            "status=302&set_header=location:https://sso.example/login",
            ""
        ),
        route("slow", "delay_ms=3000", ", timeout: 300ms"),
    ));
    let r = request(
        "GET",
        &gw.url("/ok/x?a=1"),
        &[("remote-user", "mallory"), ("authorization", "Bearer t")],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["backend"], "app");
    assert_eq!(
        r.json()["headers"]["remote-user"],
        "bob",
        "the client's value is replaced"
    );

    // The service's own answer goes back: here its body is the echo of what it was asked.
    let r = request(
        "GET",
        &gw.url("/no/y?b=2"),
        &[
            ("authorization", "Bearer t"),
            ("cookie", "s=1"),
            ("x-other", "1"),
        ],
        None,
    );
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let asked = &r.json()["headers"];
    assert_eq!(asked["authorization"], "Bearer t");
    assert_eq!(asked["cookie"], "s=1");
    assert!(
        asked.get("x-other").is_none(),
        "only the listed headers go: {asked}"
    );
    assert_eq!(asked["x-forwarded-method"], "GET");
    assert_eq!(asked["x-forwarded-uri"], "/no/y?b=2");
    assert_eq!(asked["x-forwarded-for"], "127.0.0.1");
    let r = get(&gw.url("/login/z"));
    assert_eq!(r.status, 302);
    assert_eq!(r.header("location"), Some("https://sso.example/login"));

    let started = std::time::Instant::now();
    let r = get(&gw.url("/slow/x"));
    assert_eq!(r.status, 503);
    assert_eq!(r.error_code(), "auth_unavailable");
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    let r = get(&gw.url("/gone/x"));
    assert_eq!(r.error_code(), "auth_unavailable");
    assert_eq!(
        app.hits(),
        1,
        "only the admitted request reached the backend"
    );
}

const HMAC_SECRET: &str = "0123456789abcdef0123456789abcdef-key-a";

/// The headers of a request signed for `hmac_auth` with key `a`.
fn signed(
    method: &str,
    target: &str,
    body: &str,
    nonce: &str,
    date: &str,
) -> Vec<(String, String)> {
    use hmac::Mac;
    use sha2::Digest;
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let digest = (!body.is_empty()).then(|| {
        format!(
            "SHA-256={}",
            base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(body))
        )
    });
    let text = format!(
        "{method}\n{path}\n{query}\n{date}\n{nonce}\n{}",
        digest.as_deref().unwrap_or("")
    );
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(HMAC_SECRET.as_bytes()).expect("key");
    mac.update(text.as_bytes());
    let signature = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let mut out = vec![
        (
            "authorization".to_owned(),
            format!("HMAC-SHA256 keyId=\"a\", nonce=\"{nonce}\", signature=\"{signature}\""),
        ),
        ("x-date".to_owned(), date.to_owned()),
    ];
    if let Some(d) = digest {
        out.push(("digest".to_owned(), d));
    }
    out
}

fn send_signed(
    gw: &Gateway,
    method: &str,
    target: &str,
    body: &str,
    headers: &[(String, String)],
) -> common::Resp {
    let h: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    request(
        method,
        &gw.url(target),
        &h,
        (!body.is_empty()).then_some(body),
    )
}

fn hmac_config(b: &Backend, store: &str, head: &str) -> String {
    format!(
        "{head}{}routes:
  - name: signed
    path: /signed
    upstream: u
    plugins:
      - {{name: hmac_auth, settings: {{keys: [{{id: a, secret: \"{HMAC_SECRET}\", roles: [partner]}}], clock_skew: 60s, nonce_store: {store}}}}}
",
        one_upstream(b)
    )
}

#[test]
fn hmac_auth_checks_signature_date_digest_and_nonce() {
    let b = Backend::start("b");
    let gw = Gateway::start(&hmac_config(&b, "memory", ""));
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    let h = signed("GET", "/signed/x?q=1", "", "n1", &now);
    let r = send_signed(&gw, "GET", "/signed/x?q=1", "", &h);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-user-id"], "a");
    assert_eq!(r.json()["headers"]["x-user-roles"], "partner");
    let r = send_signed(&gw, "GET", "/signed/x?q=1", "", &h);
    assert_eq!(r.status, 401, "a nonce is taken once");
    assert_eq!(r.error_code(), "invalid_credentials");

    // A body is read whole, checked against its digest, and reaches the backend intact.
    let body = "{\"amount\": 100}";
    let h = signed("POST", "/signed/pay", body, "n2", &now);
    let r = send_signed(&gw, "POST", "/signed/pay", body, &h);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["body"], body);
    let hits = b.hits();
    let h = signed("POST", "/signed/pay", body, "n3", &now);
    let r = send_signed(&gw, "POST", "/signed/pay", "{\"amount\": 999}", &h);
    assert_eq!(r.status, 401, "a body that is not the signed one");
    // Another path, query or method than the signed ones.
    let h = signed("GET", "/signed/x?q=1", "", "n4", &now);
    assert_eq!(send_signed(&gw, "GET", "/signed/x?q=2", "", &h).status, 401);
    assert_eq!(
        send_signed(&gw, "DELETE", "/signed/x?q=1", "", &h).status,
        401
    );
    let old = httpdate::fmt_http_date(std::time::SystemTime::now() - Duration::from_secs(600));
    let h = signed("GET", "/signed/x", "", "n5", &old);
    assert_eq!(
        send_signed(&gw, "GET", "/signed/x", "", &h).status,
        401,
        "outside the clock skew"
    );
    assert_eq!(b.hits(), hits, "no refused request reached the backend");
    let r = get(&gw.url("/signed/x"));
    assert_eq!(r.error_code(), "unauthorized");
    assert_eq!(r.header("www-authenticate"), Some("HMAC-SHA256"));
    let big = "x".repeat(70_000);
    let h = signed("POST", "/signed/big", &big, "n6", &now);
    assert_eq!(
        send_signed(&gw, "POST", "/signed/big", &big, &h).status,
        413
    );
}

#[test]
fn hmac_nonces_in_redis_are_refused_by_every_instance() {
    let redis = common::redis::Redis::start();
    let b = Backend::start("b");
    let head = format!("redis: {{url: \"{}\"}}\n", redis.url());
    let one = Gateway::start(&hmac_config(&b, "redis", &head));
    let two = Gateway::start(&hmac_config(&b, "redis", &head));
    let now = httpdate::fmt_http_date(std::time::SystemTime::now());
    let h = signed("GET", "/signed/x", "", "shared-1", &now);
    assert_eq!(send_signed(&one, "GET", "/signed/x", "", &h).status, 200);
    let r = send_signed(&two, "GET", "/signed/x", "", &h);
    assert_eq!(
        r.status, 401,
        "the other instance saw the nonce: {}",
        r.body
    );
    let err = refused(&hmac_config(&b, "redis", ""));
    assert!(
        err.contains("routes[0].plugins[0].settings.nonce_store: needs a redis section"),
        "{err}"
    );
}
