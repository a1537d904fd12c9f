//! The token endpoints called as plain functions: no socket, no proxy.

use super::*;
use crate::config::file::AuthConfig;
use crate::config::ConfigErrors;
use crate::outcome::Denial;
use std::sync::LazyLock;

static HASH: LazyLock<String> =
    LazyLock::new(|| crate::auth::users::hash_password(b"s3cret").expect("hash"));

fn auth() -> Arc<Auth> {
    let yaml = format!(
        "jwt: {{algorithm: HS256, secret: test-secret-0123456789abcdef0123, issuer: gw, audience: api}}\nusers: [{{username: ann, password_hash: \"{}\", roles: [user]}}]\n",
        *HASH
    );
    let cfg: AuthConfig = serde_yaml::from_str(&yaml).expect("auth section");
    let mut errors = ConfigErrors::default();
    let auth = crate::auth::build(Some(&cfg), None, None, false, &mut errors);
    assert!(errors.is_empty(), "{errors}");
    auth.expect("auth builds")
}

async fn call(
    auth: &Arc<Auth>,
    endpoint: Endpoint,
    body: Option<&str>,
    bearer: Option<&str>,
) -> Handled {
    let call = Call {
        method: &http::Method::POST,
        body: body.map(str::as_bytes),
        client_ip: "192.0.2.1".parse().ok(),
        bearer,
    };
    handle(auth, endpoint, call).await
}

fn tokens(h: &Handled) -> (String, String) {
    let Flow::Reply(reply) = &h.flow else {
        panic!("expected tokens, got {:?}", h.flow);
    };
    assert_eq!(reply.status, 200);
    let v: serde_json::Value = serde_json::from_slice(&reply.body).expect("json");
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["expires_in"], 900);
    let field = |k: &str| v[k].as_str().expect("token").to_owned();
    (field("access_token"), field("refresh_token"))
}

fn code(h: &Handled) -> ErrorCode {
    match &h.flow {
        Flow::Deny(Denial { code, .. }) => *code,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

fn login_body(password: &str) -> String {
    format!(r#"{{"username":"ann","password":"{password}"}}"#)
}

#[tokio::test]
async fn login_issues_tokens_and_refuses_bad_credentials_alike() {
    let auth = auth();
    let ok = call(&auth, Endpoint::Login, Some(&login_body("s3cret")), None).await;
    let (access, _) = tokens(&ok);
    assert_eq!(ok.event, Some(AuthEvent::success("login")));
    let claims = auth.verify(&access).expect("a valid access token");
    assert_eq!(
        (claims.sub.as_str(), claims.roles.as_slice()),
        ("ann", &["user".to_owned()][..])
    );

    let wrong = call(&auth, Endpoint::Login, Some(&login_body("nope")), None).await;
    let unknown = call(
        &auth,
        Endpoint::Login,
        Some(r#"{"username":"bob","password":"s3cret"}"#),
        None,
    )
    .await;
    for refused in [&wrong, &unknown] {
        assert_eq!(code(refused), ErrorCode::InvalidCredentials);
        assert_eq!(
            refused.event,
            Some(AuthEvent::failure("invalid_credentials"))
        );
    }
}

#[tokio::test]
async fn malformed_calls_get_their_own_errors() {
    let auth = auth();
    let get = handle(
        &auth,
        Endpoint::Login,
        Call {
            method: &http::Method::GET,
            body: Some(b""),
            client_ip: None,
            bearer: None,
        },
    )
    .await;
    assert_eq!(code(&get), ErrorCode::MethodNotAllowed);
    let Flow::Deny(d) = &get.flow else {
        unreachable!()
    };
    assert_eq!(
        d.headers,
        [(http::header::ALLOW, http::HeaderValue::from_static("POST"))]
    );

    assert_eq!(
        code(&call(&auth, Endpoint::Login, None, None).await),
        ErrorCode::PayloadTooLarge
    );
    let bad = call(&auth, Endpoint::Login, Some("{\"username\":1}"), None).await;
    assert_eq!(code(&bad), ErrorCode::BadRequest);
    assert_eq!(bad.event, Some(AuthEvent::failure("bad_request")));
    let bad = call(&auth, Endpoint::Refresh, Some("[]"), None).await;
    assert_eq!(code(&bad), ErrorCode::BadRequest);
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let auth = auth();
    let (access, refresh) =
        tokens(&call(&auth, Endpoint::Login, Some(&login_body("s3cret")), None).await);
    let body = |t: &str| format!(r#"{{"refresh_token":"{t}"}}"#);

    let rotated = call(&auth, Endpoint::Refresh, Some(&body(&refresh)), None).await;
    let (_, next) = tokens(&rotated);
    assert_eq!(rotated.event, Some(AuthEvent::success("refresh")));

    let reuse = call(&auth, Endpoint::Refresh, Some(&body(&refresh)), None).await;
    assert_eq!(code(&reuse), ErrorCode::InvalidToken);
    assert_eq!(reuse.event, Some(AuthEvent::failure("reuse_detected")));
    let after = call(&auth, Endpoint::Refresh, Some(&body(&next)), None).await;
    assert_eq!(
        code(&after),
        ErrorCode::InvalidToken,
        "the whole family is revoked"
    );
    assert!(auth.verify(&access).is_err(), "and its access tokens too");

    let as_refresh = call(&auth, Endpoint::Refresh, Some(&body(&access)), None).await;
    assert_eq!(code(&as_refresh), ErrorCode::InvalidToken);
}

#[tokio::test]
async fn logout_needs_an_access_token_and_revokes_it() {
    let auth = auth();
    let (access, refresh) =
        tokens(&call(&auth, Endpoint::Login, Some(&login_body("s3cret")), None).await);

    let missing = call(&auth, Endpoint::Logout, Some(""), None).await;
    assert_eq!(code(&missing), ErrorCode::Unauthorized);
    assert_eq!(missing.event, Some(AuthEvent::failure("missing")));
    let with_refresh = call(&auth, Endpoint::Logout, Some(""), Some(&refresh)).await;
    assert_eq!(code(&with_refresh), ErrorCode::InvalidToken);

    let out = call(&auth, Endpoint::Logout, Some(""), Some(&access)).await;
    let Flow::Reply(reply) = &out.flow else {
        panic!("expected 204, got {:?}", out.flow);
    };
    assert_eq!((reply.status, reply.body.len()), (204, 0));
    assert_eq!(out.event, Some(AuthEvent::success("logout")));
    assert!(auth.verify(&access).is_err(), "the access token is revoked");
    let again = call(&auth, Endpoint::Logout, Some(""), Some(&access)).await;
    assert_eq!(code(&again), ErrorCode::InvalidToken);
}

#[tokio::test]
async fn repeated_failed_logins_are_limited() {
    let auth = auth();
    for _ in 0..super::super::login_limit::DEFAULT_PER_USER.count {
        let r = call(&auth, Endpoint::Login, Some(&login_body("nope")), None).await;
        assert_eq!(code(&r), ErrorCode::InvalidCredentials);
    }
    let limited = call(&auth, Endpoint::Login, Some(&login_body("nope")), None).await;
    assert_eq!(code(&limited), ErrorCode::RateLimited);
    let Flow::Deny(d) = &limited.flow else {
        unreachable!()
    };
    assert_eq!(d.headers[0].0, http::header::RETRY_AFTER);
}
