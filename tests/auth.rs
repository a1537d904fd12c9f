//! Authentication end to end: login, bearer tokens (and every way one can be bad), roles,
//! refresh rotation with reuse detection, logout, API keys, the login limit, `hash-password`.

mod common;

use common::auth::{auth_section, login, routes, tokens, with_token, API_KEY, SECRET};
use common::{request, Backend, Gateway, Resp};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

fn start(backend: &Backend) -> Gateway {
    Gateway::start(&format!("{}{}", auth_section("memory"), routes(backend)))
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

fn mint(claims: Value, alg: Algorithm, key: &EncodingKey) -> String {
    encode(&Header::new(alg), &claims, key).expect("encode")
}

fn claims() -> Value {
    json!({"sub": "mallory", "roles": ["user", "admin"], "iss": "gw-test", "aud": "api", "exp": now() + 300, "iat": now(), "typ": "access"})
}

fn hs(claims: Value) -> String {
    mint(
        claims,
        Algorithm::HS256,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
}

fn assert_401(r: &Resp, code: &str) {
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.error_code(), code, "{}", r.body);
    let challenge = r.header("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    if code == "invalid_token" || code == "token_expired" {
        assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
    }
}

#[test]
fn login_success_wrong_password_and_unknown_user() {
    let b = Backend::start("b");
    let gw = start(&b);
    let r = login(&gw, "alice", "alice-pass");
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    assert!(v["access_token"]
        .as_str()
        .is_some_and(|t| t.split('.').count() == 3));
    assert!(v["refresh_token"].as_str().is_some());

    // The fastest of three each, so a stall of the machine does not decide.
    let timed = |user: &str| {
        let mut best = None::<(std::time::Duration, Resp)>;
        for _ in 0..3 {
            let t = Instant::now();
            let r = login(&gw, user, "nope");
            let took = t.elapsed();
            if best.as_ref().is_none_or(|(b, _)| took < *b) {
                best = Some((took, r));
            }
        }
        best.expect("three attempts")
    };
    let (wrong_time, wrong) = timed("alice");
    let (unknown_time, unknown) = timed("nobody");
    for r in [&wrong, &unknown] {
        assert_401(r, "invalid_credentials");
    }
    assert_eq!(
        wrong.json()["error"]["message"],
        unknown.json()["error"]["message"]
    );
    // Unknown users are hashed too: no shortcut that would tell them apart by time.
    assert!(
        unknown_time * 4 > wrong_time,
        "unknown {unknown_time:?} vs wrong {wrong_time:?}"
    );

    assert_eq!(
        request("POST", &gw.url("/auth/login"), &[], Some("not json")).status,
        400
    );
    assert_eq!(
        request("GET", &gw.url("/auth/login"), &[], None).status,
        405
    );
    assert_eq!(b.hits(), 0);
}

#[test]
fn bearer_token_on_protected_routes() {
    let b = Backend::start("b");
    let gw = start(&b);
    assert_eq!(request("GET", &gw.url("/open"), &[], None).status, 200);
    assert_401(&request("GET", &gw.url("/me"), &[], None), "unauthorized");

    let (access, _) = tokens(&gw, "alice", "alice-pass");
    let r = request(
        "GET",
        &gw.url("/me"),
        &[
            ("authorization", &format!("Bearer {access}")),
            ("x-user-id", "admin"),
            ("x-user-roles", "admin"),
        ],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let h = &r.json()["headers"];
    assert_eq!(h["x-user-id"], "alice");
    assert_eq!(h["x-user-roles"], "user");
    let r = with_token(&gw, "/admin", &access);
    assert_eq!(r.status, 403);
    assert_eq!(r.error_code(), "forbidden");
    let (admin, _) = tokens(&gw, "admin", "admin-pass");
    assert_eq!(with_token(&gw, "/admin", &admin).status, 200);
    // Access lines are written in batches (at most 100 ms late).
    common::wait_for(
        "alice in the access log",
        std::time::Duration::from_secs(5),
        || {
            gw.access_lines()
                .iter()
                .any(|l| l["user"] == "alice")
                .then_some(())
        },
    );
    assert!(!gw.log().contains(&access), "a token reached the log");
}

#[test]
fn every_kind_of_bad_token_is_refused() {
    let b = Backend::start("b");
    let gw = start(&b);
    let hs_with = |f: &dyn Fn(&mut Value)| {
        let mut c = claims();
        f(&mut c);
        hs(c)
    };
    // Sanity: the minted claims are accepted when nothing is wrong with them.
    assert_eq!(with_token(&gw, "/me", &hs(claims())).status, 200);
    // Within the 30 s leeway an expired token still passes.
    assert_eq!(
        with_token(&gw, "/me", &hs_with(&|c| c["exp"] = json!(now() - 10))).status,
        200
    );

    let header = r#"{"alg":"none","typ":"JWT"}"#;
    let b64 = |s: &str| {
        use std::fmt::Write;
        let table = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = s.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                let _ = write!(
                    out,
                    "{}",
                    table[((n >> (18 - 6 * i)) & 63) as usize] as char
                );
            }
        }
        out
    };
    let alg_none = format!("{}.{}.", b64(header), b64(&claims().to_string()));
    let rsa = rsa_key();
    let cases: Vec<(&str, String, &str)> = vec![
        ("alg none", alg_none, "invalid_token"),
        (
            "wrong secret",
            mint(
                claims(),
                Algorithm::HS256,
                &EncodingKey::from_secret(b"another-secret-entirely-0123456789"),
            ),
            "invalid_token",
        ),
        (
            "RS256 token",
            mint(claims(), Algorithm::RS256, &rsa),
            "invalid_token",
        ),
        (
            "expired beyond leeway",
            hs_with(&|c| c["exp"] = json!(now() - 120)),
            "token_expired",
        ),
        (
            "nbf in the future",
            hs_with(&|c| c["nbf"] = json!(now() + 600)),
            "invalid_token",
        ),
        (
            "wrong issuer",
            hs_with(&|c| c["iss"] = json!("someone-else")),
            "invalid_token",
        ),
        (
            "wrong audience",
            hs_with(&|c| c["aud"] = json!("other-api")),
            "invalid_token",
        ),
        (
            "no exp",
            hs_with(&|c| {
                c.as_object_mut().expect("object").remove("exp");
            }),
            "invalid_token",
        ),
        ("malformed", "not.a.jwt".to_owned(), "invalid_token"),
        ("garbage", "%%%".to_owned(), "invalid_token"),
        (
            "20 KB",
            hs_with(&|c| c["pad"] = json!("x".repeat(20_000))),
            "invalid_token",
        ),
        (
            "refresh as access",
            hs_with(&|c| c["typ"] = json!("refresh")),
            "invalid_token",
        ),
    ];
    for (what, token, code) in cases {
        let r = with_token(&gw, "/me", &token);
        assert_eq!(r.status, 401, "{what}: {}", r.body);
        assert_401(&r, code);
    }
    let (_, refresh) = tokens(&gw, "alice", "alice-pass");
    assert_401(&with_token(&gw, "/me", &refresh), "invalid_token");
    assert_eq!(b.hits(), 2, "only the two good tokens reached the backend");
}

fn rsa_key() -> EncodingKey {
    EncodingKey::from_rsa_pem(&common::auth::rsa_pem()).expect("rsa key")
}

#[test]
fn refresh_rotates_and_reuse_revokes_the_family() {
    let b = Backend::start("b");
    let gw = start(&b);
    let (access1, refresh1) = tokens(&gw, "alice", "alice-pass");
    let refresh = |token: &str| {
        let body = json!({"refresh_token": token}).to_string();
        request("POST", &gw.url("/auth/refresh"), &[], Some(&body))
    };
    let r = refresh(&refresh1);
    assert_eq!(r.status, 200, "{}", r.body);
    let access2 = r.json()["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let refresh2 = r.json()["refresh_token"]
        .as_str()
        .expect("refresh")
        .to_owned();
    assert_ne!(refresh1, refresh2);
    assert_eq!(with_token(&gw, "/me", &access2).status, 200);
    // An access token is no refresh token.
    assert_401(&refresh(&access2), "invalid_token");
    // The rotated token comes back: the whole family is revoked.
    assert_401(&refresh(&refresh1), "invalid_token");
    assert_401(&refresh(&refresh2), "invalid_token");
    assert_401(&with_token(&gw, "/me", &access2), "invalid_token");
    assert_401(&with_token(&gw, "/me", &access1), "invalid_token");
    // A new login is a new family.
    let (access3, _) = tokens(&gw, "alice", "alice-pass");
    assert_eq!(with_token(&gw, "/me", &access3).status, 200);
}

#[test]
fn logout_ends_both_tokens_at_once() {
    let b = Backend::start("b");
    let gw = start(&b);
    let (access, refresh) = tokens(&gw, "alice", "alice-pass");
    let (other, _) = tokens(&gw, "admin", "admin-pass");
    assert_401(
        &request("POST", &gw.url("/auth/logout"), &[], None),
        "unauthorized",
    );
    let body = json!({"refresh_token": refresh}).to_string();
    let r = request(
        "POST",
        &gw.url("/auth/logout"),
        &[("authorization", &format!("Bearer {access}"))],
        Some(&body),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_401(&with_token(&gw, "/me", &access), "invalid_token");
    let again = json!({"refresh_token": refresh}).to_string();
    assert_401(
        &request("POST", &gw.url("/auth/refresh"), &[], Some(&again)),
        "invalid_token",
    );
    assert_eq!(
        with_token(&gw, "/me", &other).status,
        200,
        "other sessions are untouched"
    );
}

#[test]
fn api_keys() {
    let b = Backend::start("b");
    let gw = start(&b);
    let r = request("GET", &gw.url("/me"), &[("x-api-key", API_KEY)], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["headers"]["x-user-id"], "ci-bot");
    assert_eq!(r.json()["headers"]["x-user-roles"], "user");
    assert_401(
        &request(
            "GET",
            &gw.url("/me"),
            &[("x-api-key", "k-ci-0123456788")],
            None,
        ),
        "invalid_credentials",
    );
    assert_eq!(
        request("GET", &gw.url("/admin"), &[("x-api-key", API_KEY)], None).status,
        403
    );
}

#[test]
fn login_attempts_are_limited_per_user_and_address() {
    let b = Backend::start("b");
    let gw = start(&b);
    for _ in 0..5 {
        assert_401(&login(&gw, "alice", "guess"), "invalid_credentials");
    }
    let r = login(&gw, "alice", "alice-pass");
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.error_code(), "rate_limited");
    assert!(r
        .header("retry-after")
        .is_some_and(|s| s.parse::<u64>().is_ok_and(|n| (1..=60).contains(&n))));
    assert_eq!(
        login(&gw, "admin", "admin-pass").status,
        200,
        "other usernames are not affected"
    );
}

#[test]
fn auth_metrics_are_counted() {
    let b = Backend::start("b");
    let gw = start(&b);
    tokens(&gw, "alice", "alice-pass");
    login(&gw, "alice", "bad");
    request("GET", &gw.url("/me"), &[], None);
    common::wait_for("auth counters", std::time::Duration::from_secs(5), || {
        let text = gw.scrape();
        (text.contains(r#"auth_requests_total{reason="login",result="success"} 1"#)
            && text.contains(
                r#"auth_requests_total{reason="invalid_credentials",result="failure"} 1"#,
            )
            && text.contains(r#"auth_requests_total{reason="missing",result="failure"} 1"#))
        .then_some(())
    });
}
