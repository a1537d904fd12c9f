//! Revocation shared by two gateways through a real `redis-server`, behaviour with Redis gone,
//! asymmetric keys from PEM files, and verify-only mode from a JWKS URL.

mod common;

use common::redis::Redis;
use common::{get, request, wait_for, Backend, Gateway, Resp};
use jsonwebtoken::jwk::{Jwk, JwkSet};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::auth::{auth_section, login, openssl, routes, rsa_pem, tokens, with_token};

fn shared(redis: &Redis, backend: &Backend) -> String {
    format!(
        "redis: {{url: \"{}\", timeout: 300ms}}\n{}{}",
        redis.url(),
        auth_section("redis"),
        routes(backend)
    )
}

fn post(gw: &Gateway, path: &str, headers: &[(&str, &str)], body: serde_json::Value) -> Resp {
    request("POST", &gw.url(path), headers, Some(&body.to_string()))
}

#[test]
fn two_gateways_share_revocations_through_redis() {
    let redis = Redis::start();
    let b = Backend::start("b");
    let a = Gateway::start(&shared(&redis, &b));
    let c = Gateway::start(&shared(&redis, &b));
    let (access, refresh) = tokens(&a, "alice", "alice-pass");
    assert_eq!(with_token(&c, "/me", &access).status, 200);

    // Rotation is shared: a refresh token used on one instance is spent on the other.
    let r = post(&a, "/auth/refresh", &[], json!({"refresh_token": refresh}));
    assert_eq!(r.status, 200, "{}", r.body);
    let access2 = r.json()["access_token"]
        .as_str()
        .expect("access")
        .to_owned();
    let r = post(&c, "/auth/refresh", &[], json!({"refresh_token": refresh}));
    assert_eq!(r.status, 401, "reuse on the other instance: {}", r.body);
    // ...and the reuse revoked the family everywhere.
    wait_for(
        "the family revocation to reach the first instance",
        Duration::from_secs(5),
        || (with_token(&a, "/me", &access2).status == 401).then_some(()),
    );

    let (access3, _) = tokens(&c, "admin", "admin-pass");
    assert_eq!(with_token(&a, "/me", &access3).status, 200);
    let auth = format!("Bearer {access3}");
    assert_eq!(
        post(&c, "/auth/logout", &[("authorization", &auth)], json!({})).status,
        204
    );
    wait_for(
        "the logout to reach the other instance",
        Duration::from_secs(5),
        || (with_token(&a, "/me", &access3).status == 401).then_some(()),
    );
}

#[test]
fn without_redis_checks_go_on_and_refresh_and_logout_say_503() {
    let mut redis = Redis::start();
    let b = Backend::start("b");
    let gw = Gateway::start(&shared(&redis, &b));
    let (revoked, _) = tokens(&gw, "admin", "admin-pass");
    let auth = format!("Bearer {revoked}");
    assert_eq!(
        post(&gw, "/auth/logout", &[("authorization", &auth)], json!({})).status,
        204
    );
    let (access, refresh) = tokens(&gw, "alice", "alice-pass");

    redis.kill();
    assert!(!redis.ping());
    // Access tokens are still checked, with the revocations known so far.
    assert_eq!(with_token(&gw, "/me", &access).status, 200);
    assert_eq!(with_token(&gw, "/me", &revoked).status, 401);
    // Refresh and logout need the shared store: a clear 503, quickly.
    let started = std::time::Instant::now();
    let r = post(&gw, "/auth/refresh", &[], json!({"refresh_token": refresh}));
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.error_code(), "store_unavailable");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "a dead Redis must not hang the request"
    );
    let auth = format!("Bearer {access}");
    assert_eq!(
        post(&gw, "/auth/logout", &[("authorization", &auth)], json!({})).status,
        503
    );
    // Login needs no store.
    assert_eq!(login(&gw, "alice", "alice-pass").status, 200);
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs() as i64
}

#[test]
fn es256_keys_from_pem_files() {
    let b = Backend::start("b");
    let keys = tempfile::tempdir().expect("dir");
    let private = keys.path().join("es256.pem");
    let public = keys.path().join("es256.pub.pem");
    let (private, public) = (
        private.to_str().expect("path"),
        public.to_str().expect("path"),
    );
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        private,
    ]);
    openssl(&["pkey", "-in", private, "-pubout", "-out", public]);
    let section = auth_section("memory").replace(
        "{algorithm: HS256, secret: \"test-secret-0123456789-abcdefghijklmnop\",",
        &format!(
            "{{algorithm: ES256, private_key_file: \"{private}\", public_key_file: \"{public}\","
        ),
    );
    assert!(section.contains("ES256"));
    let gw = Gateway::start(&format!("{section}{}", routes(&b)));
    let (access, _) = tokens(&gw, "alice", "alice-pass");
    let header = jsonwebtoken::decode_header(&access).expect("header");
    assert_eq!(header.alg, Algorithm::ES256);
    assert_eq!(with_token(&gw, "/me", &access).status, 200);
    // The HS secret of the other tests means nothing here.
    let forged = encode(
        &Header::new(Algorithm::HS256),
        &json!({"sub": "x", "exp": now() + 60, "iss": "gw-test", "aud": "api"}),
        &EncodingKey::from_secret(b"test-secret-0123456789-abcdefghijklmnop"),
    )
    .expect("encode");
    assert_eq!(with_token(&gw, "/me", &forged).status, 401);
}

#[test]
fn verify_only_mode_from_a_jwks_url() {
    let key = EncodingKey::from_rsa_pem(&rsa_pem()).expect("rsa");
    let mut jwk = Jwk::from_encoding_key(&key, Algorithm::RS256).expect("jwk");
    jwk.common.key_id = Some("k1".into());
    let set = serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("json");
    let idp = Backend::serving("idp", set);
    let b = Backend::start("b");
    let yaml = format!(
        "auth:\n  jwt: {{algorithm: RS256, jwks_url: \"http://{}/.well-known/jwks.json\", issuer: idp, audience: api}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: me, path: /me, upstream: u, auth: {{required: true}}}}\n",
        idp.addr, b.addr
    );
    let gw = Gateway::start(&yaml);
    let token = |kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let claims = json!({"sub": "carol", "roles": ["user"], "iss": "idp", "aud": "api", "exp": now() + 300});
        encode(&header, &claims, &key).expect("encode")
    };
    let good = token("k1");
    wait_for("the key set to load", Duration::from_secs(10), || {
        (with_token(&gw, "/me", &good).status == 200).then_some(())
    });
    assert_eq!(
        with_token(&gw, "/me", &good).json()["headers"]["x-user-id"],
        "carol"
    );
    assert_eq!(with_token(&gw, "/me", &token("unknown-kid")).status, 401);
    // A correctly signed subject that would split the X-User-Id line: 401, not a 500.
    let mut header = Header::new(Algorithm::RS256);
    header.kid = Some("k1".into());
    let claims =
        json!({"sub": "carol\r\nX-Injected: 1", "iss": "idp", "aud": "api", "exp": now() + 300});
    let split = encode(&header, &claims, &key).expect("encode");
    let r = with_token(&gw, "/me", &split);
    assert_eq!(r.status, 401, "{}", r.body);
    assert_eq!(r.error_code(), "invalid_token");
    // Verify-only: the gateway issues no tokens, so /auth/login is an ordinary (unknown) path.
    assert_eq!(
        request("POST", &gw.url("/auth/login"), &[], Some("{}")).status,
        404
    );
}

#[test]
fn a_reload_that_removes_redis_and_a_jwks_url_stops_using_them() {
    let b = Backend::start("b");
    let idp = Backend::start("idp");
    let dead = common::dead_addr();
    let with = format!(
        "redis: {{url: \"redis://{dead}/0\", timeout: 100ms}}\nauth:\n  jwt: {{algorithm: RS256, jwks_url: \"http://{}/jwks?status=500\"}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u, rate_limit: {{store: redis, rate: 100/s}}}}\n",
        idp.addr, b.addr
    );
    let gw = Gateway::start(&with);
    let health = |gw: &Gateway| -> serde_json::Value {
        serde_json::from_str(&get(&gw.url("/health")).body).expect("health JSON")
    };
    // The limiter's call to the unreachable Redis fails (and lets the request through).
    assert_eq!(get(&gw.url("/x")).status, 200);
    wait_for("redis down in /health", Duration::from_secs(10), || {
        (health(&gw)["checks"]["redis"] == "down").then_some(())
    });
    // Every request meanwhile gets the policy, but the log says so once, not once each.
    for _ in 0..20 {
        assert_eq!(get(&gw.url("/x")).status, 200);
    }
    let said = gw.log().matches("rate limit store: ").count();
    assert_eq!(said, 1, "{}", gw.log());
    // A key set that cannot be fetched is retried every 2 s.
    wait_for("two JWKS fetches", Duration::from_secs(10), || {
        (idp.received() >= 2).then_some(())
    });

    gw.reconfigure(&format!(
        "upstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: r, path: /, upstream: u}}\n",
        b.addr
    ));
    gw.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        gw.log().contains("config reloaded").then_some(())
    });
    let h = health(&gw);
    assert_eq!(h["checks"]["redis"], "disabled", "{h}");
    assert_eq!(h["status"], "ok", "{h}");
    // Proving an absence takes a wait: two retry periods, allowing one fetch already under way.
    let fetched = idp.received();
    std::thread::sleep(Duration::from_millis(4500));
    assert!(
        idp.received() <= fetched + 1,
        "the removed key set is still fetched: {} then {}",
        fetched,
        idp.received()
    );
}

#[test]
fn a_user_removed_by_a_reload_is_revoked_on_the_other_instances() {
    let redis = Redis::start();
    let b = Backend::start("b");
    let a = Gateway::start(&shared(&redis, &b));
    let c = Gateway::start(&shared(&redis, &b));
    let (access, _) = tokens(&c, "alice", "alice-pass");
    assert_eq!(with_token(&a, "/me", &access).status, 200);
    // Only `a` is told that alice is gone; `c` learns it through Redis.
    let without_alice: String = shared(&redis, &b)
        .lines()
        .filter(|l| !l.contains("username: alice"))
        .map(|l| format!("{l}\n"))
        .collect();
    a.reconfigure(&without_alice);
    a.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        a.log().contains("config reloaded").then_some(())
    });
    assert_eq!(with_token(&a, "/me", &access).status, 401);
    wait_for(
        "the removal to reach the other instance",
        Duration::from_secs(10),
        || (with_token(&c, "/me", &access).status == 401).then_some(()),
    );
}

#[test]
fn revocations_survive_a_redis_restart_and_a_change_of_store() {
    let mut redis = Redis::start();
    let b = Backend::start("b");
    let a = Gateway::start(&shared(&redis, &b));
    let c = Gateway::start(&shared(&redis, &b));
    let logout = |gw: &Gateway, token: &str| {
        let auth = format!("Bearer {token}");
        post(gw, "/auth/logout", &[("authorization", &auth)], json!({})).status
    };
    // Push the shared counter up, and let the second instance see it.
    for _ in 0..3 {
        let (t, _) = tokens(&a, "alice", "alice-pass");
        assert_eq!(logout(&a, &t), 204);
        wait_for("the logout to reach c", Duration::from_secs(5), || {
            (with_token(&c, "/me", &t).status == 401).then_some(())
        });
    }
    // Redis comes back empty: its counter starts again from 1.
    let (after, _) = tokens(&a, "admin", "admin-pass");
    redis.restart();
    wait_for(
        "the logout after the restart",
        Duration::from_secs(10),
        || (logout(&a, &after) == 204).then_some(()),
    );
    wait_for(
        "the logout made after the restart to reach c",
        Duration::from_secs(10),
        || (with_token(&c, "/me", &after).status == 401).then_some(()),
    );
    assert!(c.log().contains("went back"), "the reset is logged");

    // A reload from the Redis store to the memory store keeps what was revoked.
    let (kept, _) = tokens(&a, "alice", "alice-pass");
    assert_eq!(logout(&a, &kept), 204);
    a.reconfigure(&format!("{}{}", auth_section("memory"), routes(&b)));
    a.signal("HUP");
    wait_for("the reload", Duration::from_secs(10), || {
        a.log().contains("config reloaded").then_some(())
    });
    assert_eq!(
        with_token(&a, "/me", &kept).status,
        401,
        "forgotten on reload"
    );
}

#[test]
fn a_rotated_jwks_applies_without_waiting_for_the_schedule() {
    let jwk_set = |key: &EncodingKey, kid: &str| {
        let mut jwk = Jwk::from_encoding_key(key, Algorithm::RS256).expect("jwk");
        jwk.common.key_id = Some(kid.into());
        serde_json::to_string(&JwkSet { keys: vec![jwk] }).expect("json")
    };
    let old = EncodingKey::from_rsa_pem(&rsa_pem()).expect("rsa");
    let new = EncodingKey::from_rsa_pem(&rsa_pem()).expect("rsa");
    let idp = Backend::serving("idp", jwk_set(&old, "k1"));
    let b = Backend::start("b");
    let gw = Gateway::start(&format!(
        "auth:\n  jwt: {{algorithm: RS256, jwks_url: \"http://{}/jwks\", issuer: idp, audience: api}}\nupstreams:\n  u: {{backends: [{{addr: \"{}\"}}]}}\nroutes:\n  - {{name: me, path: /me, upstream: u, auth: {{required: true}}}}\n",
        idp.addr, b.addr
    ));
    let token = |key: &EncodingKey, kid: &str| {
        let mut header = Header::new(Algorithm::RS256);
        header.kid = Some(kid.into());
        let claims = json!({"sub": "carol", "iss": "idp", "aud": "api", "exp": now() + 300});
        encode(&header, &claims, key).expect("encode")
    };
    let before = token(&old, "k1");
    wait_for("the key set to load", Duration::from_secs(10), || {
        (with_token(&gw, "/me", &before).status == 200).then_some(())
    });
    // The provider replaces k1 by k2. The schedule would fetch again in 5 minutes; a token
    // naming the new kid makes the gateway fetch at once (at most every 5 s).
    idp.set_body(jwk_set(&new, "k2"));
    let after = token(&new, "k2");
    wait_for("the new key to be fetched", Duration::from_secs(15), || {
        (with_token(&gw, "/me", &after).status == 200).then_some(())
    });
    assert_eq!(
        with_token(&gw, "/me", &before).status,
        401,
        "a token verified under the old set was verified again, and its key is gone"
    );
}

/// The claims of a token, unchecked.
fn claims(token: &str) -> serde_json::Value {
    use base64::Engine;
    let payload = token.split('.').nth(1).expect("payload");
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(payload)
        .expect("base64url");
    serde_json::from_slice(&bytes).expect("json")
}

#[test]
fn revocations_stored_under_the_untagged_names_are_taken_over() {
    let redis = Redis::start();
    let b = Backend::start("b");
    let first = Gateway::start(&shared(&redis, &b));
    let (access, _) = tokens(&first, "alice", "alice-pass");
    drop(first);
    // What an earlier version wrote for a logout: the token under the untagged key names.
    let c = claims(&access);
    let (jti, exp) = (
        c["jti"].as_str().expect("jti"),
        c["exp"].as_i64().expect("exp"),
    );
    let member = format!("j:{jti}:{exp}");
    let port = redis.addr.port().to_string();
    for args in [
        vec!["ZADD", "gw:auth:revoked", "1", &member],
        vec!["ZADD", "gw:auth:revoked:exp", &exp.to_string(), &member],
        vec!["SET", "gw:auth:revoked:seq", "1"],
    ] {
        let out = std::process::Command::new("redis-cli")
            .args(["-p", &port])
            .args(&args)
            .output()
            .expect("redis-cli");
        assert!(out.status.success());
    }
    let gw = Gateway::start(&shared(&redis, &b));
    wait_for(
        "the old revocation to be read",
        Duration::from_secs(5),
        || (with_token(&gw, "/me", &access).status == 401).then_some(()),
    );
    assert!(
        gw.log()
            .contains("gw:auth:revoked renamed to {gw:auth}:revoked"),
        "{}",
        gw.log()
    );
}
