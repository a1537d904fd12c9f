//! Checks the `auth` section and builds [`Auth`] from it. Start-up, `gateway -t` and every
//! reload go through [`build`].

use super::api_keys::ApiKeys;
use super::claims::Caller;
use super::error::AuthError;
use super::jwks::Jwks;
use super::jwt::{JwtSigner, JwtVerifier};
use super::login_limit::{LoginLimiter, LoginLimits};
use super::revocation::Revocations;
use super::token_cache::{self, TokenCache};
use super::users::Users;
use super::Auth;
use crate::config::file::{AuthConfig, JwtConfig, StoreKind, UserConfig};
use crate::config::ConfigErrors;
use crate::redis::RedisHandle;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_ACCESS_TTL: Duration = Duration::from_secs(15 * 60);
const DEFAULT_REFRESH_TTL: Duration = Duration::from_secs(7 * 86_400);
const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(30 * 86_400);
const DEFAULT_LEEWAY: Duration = Duration::from_secs(30);
/// The secret `conf/gateway.yaml` falls back to: published, so anyone can sign tokens with it.
pub const DEMO_SECRET: &str = "demo-secret-change-me-0123456789abcdef";
/// Shorter HMAC secrets are warned about (RFC 7518 §3.2: at least the hash's size).
const MIN_SECRET_BYTES: usize = 32;

/// What is accepted but weak in the `auth` section, for `gateway -t` and the log.
pub fn warnings(cfg: Option<&AuthConfig>) -> Vec<String> {
    let Some(secret) = cfg
        .and_then(|a| a.jwt.as_ref())
        .filter(|j| j.algorithm.is_hmac())
        .and_then(|j| j.secret.as_deref())
    else {
        return Vec::new();
    };
    if secret == DEMO_SECRET {
        vec!["auth.jwt.secret: the published demo secret is in use (--demo): anyone can sign tokens; set GATEWAY_JWT_SECRET".into()]
    } else if secret.len() < MIN_SECRET_BYTES {
        vec![format!(
            "auth.jwt.secret: {} bytes; use at least {MIN_SECRET_BYTES} random bytes (openssl rand -base64 48)",
            secret.len()
        )]
    } else {
        Vec::new()
    }
}

/// The compiled section, or `None` when the file has none. `previous` is the running section:
/// its revocations, login counters and fetched JWKS keys carry over when their settings stay.
/// `redis` is the snapshot's Redis handle, when the file has a `redis` section.
pub fn build(
    cfg: Option<&AuthConfig>,
    previous: Option<&Auth>,
    redis: Option<&Arc<RedisHandle>>,
    demo: bool,
    errors: &mut ConfigErrors,
) -> Option<Arc<Auth>> {
    let cfg = cfg?;
    let before = errors.len();
    let jwt = cfg.jwt.as_ref();
    if let Some(jwt) = jwt {
        check_jwt(jwt, errors);
        if jwt.secret.as_deref() == Some(DEMO_SECRET) && !demo {
            errors.push("auth.jwt.secret", AuthError::DemoSecret);
        }
    }
    let users = check_users("auth.users", &cfg.users, errors);
    let api_keys = check_api_keys(cfg, errors);

    let jwks = jwt.and_then(|j| j.jwks_url.as_deref()).and_then(|url| {
        if let Err(e) = crate::http_client::check_url(url) {
            errors.push("auth.jwt.jwks_url", AuthError::BadJwksUrl(e.to_string()));
            return None;
        }
        let kept = previous.and_then(Auth::jwks).filter(|j| j.url == url);
        Some(kept.map_or_else(|| Arc::new(Jwks::new(url)), Arc::clone))
    });
    let verifier = jwt.and_then(|j| {
        JwtVerifier::build(j, jwks)
            .map_err(|e| errors.push("auth.jwt", e))
            .ok()
    });
    let signer = jwt.and_then(|j| {
        JwtSigner::build(j)
            .map_err(|e| errors.push("auth.jwt.private_key_file", e))
            .ok()
            .flatten()
    });
    if !cfg.users.is_empty() && signer.is_none() && errors.len() == before {
        errors.push("auth.users", AuthError::LoginWithoutSigner);
    }
    // `redis` is `None` only when the file has no redis section, which is reported there.
    let running = previous.map(|p| &p.revocations);
    let revocations = match (cfg.revocation_store, redis, running) {
        (StoreKind::Redis, Some(h), Some(r)) if r.uses(h) => Arc::clone(r),
        (StoreKind::Memory, _, Some(r)) if !r.is_shared() => Arc::clone(r),
        (store, redis, running) => {
            let fresh = match (store, redis) {
                (StoreKind::Redis, Some(h)) => Revocations::redis(Arc::clone(h)),
                _ => Revocations::memory(),
            };
            // A new store starts with every revocation the running one knows.
            Arc::new(match running {
                Some(r) => fresh.carry_over(r),
                None => fresh,
            })
        }
    };
    let login_limits = login_limits(cfg, errors);
    if errors.len() > before {
        return None;
    }
    Some(Arc::new(Auth {
        verifier,
        signer,
        issuer: jwt.and_then(|j| j.issuer.clone()),
        audience: jwt.and_then(|j| j.audience.clone()),
        access_ttl: jwt
            .and_then(|j| j.access_ttl)
            .map_or(DEFAULT_ACCESS_TTL, |d| d.0),
        refresh_ttl: jwt
            .and_then(|j| j.refresh_ttl)
            .map_or(DEFAULT_REFRESH_TTL, |d| d.0),
        session_ttl: jwt
            .and_then(|j| j.session_ttl)
            .map_or(DEFAULT_SESSION_TTL, |d| d.0),
        users,
        api_keys,
        revocations,
        login_limiter: match previous {
            Some(p) if p.login_limiter.limits() == login_limits => Arc::clone(&p.login_limiter),
            _ => Arc::new(LoginLimiter::new(login_limits)),
        },
        verified: TokenCache::new(
            jwt.and_then(|j| j.verified_cache)
                .unwrap_or(token_cache::DEFAULT_ENTRIES),
        ),
        leeway: jwt
            .and_then(|j| j.leeway)
            .map_or(DEFAULT_LEEWAY, |d| d.0)
            .as_secs(),
    }))
}

fn login_limits(cfg: &AuthConfig, errors: &mut ConfigErrors) -> LoginLimits {
    let mut limits = LoginLimits::default();
    if let Some(l) = &cfg.login_limit {
        for (field, set, slot) in [
            ("per_user", l.per_user, &mut limits.per_user),
            ("per_ip", l.per_ip, &mut limits.per_ip),
            (
                "refresh_per_ip",
                l.refresh_per_ip,
                &mut limits.refresh_per_ip,
            ),
        ] {
            if let Some(rate) = set {
                if rate.per < Duration::from_secs(1) {
                    errors.push(format!("auth.login_limit.{field}"), AuthError::ShortWindow);
                }
                *slot = rate;
            }
        }
    }
    limits
}

fn check_jwt(jwt: &JwtConfig, errors: &mut ConfigErrors) {
    let alg = jwt.algorithm;
    if alg.is_hmac() {
        if jwt.secret.as_deref().unwrap_or("").is_empty() {
            errors.push("auth.jwt.secret", AuthError::SecretRequired(alg));
        }
    } else {
        if jwt.secret.is_some() {
            errors.push("auth.jwt.secret", AuthError::SecretWithKeyFiles(alg));
        }
        if jwt.public_key_file.is_none() && jwt.jwks_url.is_none() {
            errors.push("auth.jwt", AuthError::NoPublicKey(alg));
        }
    }
}

/// Users as `auth.users` and `basic_auth` take them, at `prefix` (`auth.users`): unique names,
/// safe to send in headers, argon2id hashes. The valid ones make the returned table.
pub fn check_users(prefix: &str, list: &[UserConfig], errors: &mut ConfigErrors) -> Users {
    let mut names = HashSet::new();
    let mut valid = Vec::with_capacity(list.len());
    for (i, user) in list.iter().enumerate() {
        let path = format!("{prefix}[{i}]");
        if !names.insert(user.username.as_str()) {
            errors.push(
                format!("{path}.username"),
                AuthError::DuplicateUser(user.username.clone()),
            );
        }
        if Caller::new(user.username.clone(), user.roles.clone()).is_none() {
            errors.push(format!("{path}.username"), AuthError::NotHeaderSafe);
        }
        if !user.password_hash.starts_with("$argon2id$") {
            errors.push(format!("{path}.password_hash"), AuthError::NotArgon2id);
        } else if let Err(e) = argon2::PasswordHash::new(&user.password_hash) {
            errors.push(
                format!("{path}.password_hash"),
                AuthError::BadPasswordHash(e.to_string()),
            );
        } else {
            valid.push(user);
        }
    }
    Users::new(valid)
}

fn check_api_keys(cfg: &AuthConfig, errors: &mut ConfigErrors) -> ApiKeys {
    let mut names = HashSet::new();
    let mut keys = Vec::with_capacity(cfg.api_keys.len());
    for (i, key) in cfg.api_keys.iter().enumerate() {
        let path = format!("auth.api_keys[{i}]");
        if !names.insert(key.name.as_str()) {
            errors.push(
                format!("{path}.name"),
                AuthError::DuplicateKey(key.name.clone()),
            );
        }
        let caller = Caller::new(key.name.clone(), key.roles.clone());
        if caller.is_none() {
            errors.push(format!("{path}.name"), AuthError::NotHeaderSafe);
        }
        match key.key_hash.strip_prefix("sha256:").and_then(unhex) {
            Some(hash) => keys.extend(caller.map(|c| (hash, c))),
            None => errors.push(format!("{path}.key_hash"), AuthError::BadKeyHash),
        }
    }
    ApiKeys::new(keys)
}

/// 64 lowercase hex digits as 32 bytes.
fn unhex(s: &str) -> Option<[u8; 32]> {
    let digit = |b: u8| match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        _ => None,
    };
    let bytes = s.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, b) in out.iter_mut().enumerate() {
        *b = digit(bytes[2 * i])? << 4 | digit(bytes[2 * i + 1])?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_hashes_are_lowercase_hex_only() {
        let good = "ab".repeat(32);
        assert_eq!(unhex(&good), Some([0xab; 32]));
        assert_eq!(unhex(&good.to_uppercase()), None);
        assert_eq!(unhex(&good[..62]), None);
        assert_eq!(unhex(&format!("{}zz", &good[..62])), None);
    }
}
