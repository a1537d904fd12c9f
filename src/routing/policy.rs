//! Checks of the sections that do not build routes, and the merging of per-level policies.

use crate::config::file::{
    AuthConfig, AuthPolicyConfig, CacheConfig, FileConfig, RateLimitConfig, SecurityConfig,
    StoreKind,
};
use crate::config::ConfigErrors;
use crate::routing::method::MethodSet;
use crate::routing::route::AuthPolicy;
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Checks `server`, `listen`, `redis`, `auth`, `rate_limit`, `cache` and `security`.
pub fn check_sections(file: &FileConfig, errors: &mut ConfigErrors) {
    if file.server.threads == 0 {
        errors.push("server.threads", "must be at least 1");
    }
    let listeners = [
        ("listen.proxy", &file.listen.proxy),
        ("listen.metrics", &file.listen.metrics),
        ("listen.admin", &file.listen.admin),
    ];
    let mut bound: Vec<(&str, SocketAddr)> = Vec::new();
    for (path, addr) in listeners {
        match addr.parse::<SocketAddr>() {
            Ok(a) => {
                if let Some((other, _)) = bound.iter().find(|(_, b)| *b == a && a.port() != 0) {
                    errors.push(path, format!("{a} is already used by {other}"));
                }
                bound.push((path, a));
            }
            Err(_) => errors.push(path, format!("invalid address {addr:?}: expected ip:port")),
        }
    }
    if let Some(redis) = &file.redis {
        match (&redis.url, redis.cluster.is_empty()) {
            (None, true) => errors.push("redis", "set url or cluster"),
            (Some(_), false) => errors.push("redis", "set url or cluster, not both"),
            _ => {}
        }
        let urls = redis.url.iter().map(|u| ("redis.url".to_owned(), u));
        let nodes = redis.cluster.iter().enumerate();
        for (path, url) in urls.chain(nodes.map(|(i, u)| (format!("redis.cluster[{i}]"), u))) {
            if !url.starts_with("redis://") && !url.starts_with("rediss://") {
                errors.push(
                    path,
                    format!("invalid URL {url:?}: expected redis:// or rediss://"),
                );
            }
        }
    }
    let needs_redis = file.auth.as_ref().map(|a| a.revocation_store) == Some(StoreKind::Redis)
        || file.cache.as_ref().map(|c| c.store) == Some(StoreKind::Redis);
    if needs_redis && file.redis.is_none() {
        errors.push("redis", "required: a store is set to redis");
    }
    if let Some(auth) = &file.auth {
        check_auth(auth, errors);
    }
    if let Some(rl) = &file.rate_limit {
        check_rate_limit("rate_limit", rl, file, errors);
    }
    if let Some(cache) = &file.cache {
        check_cache(cache, errors);
    }
    check_security(&file.security, errors);
}

fn check_auth(auth: &AuthConfig, errors: &mut ConfigErrors) {
    if let Some(jwt) = &auth.jwt {
        let alg = jwt.algorithm;
        if alg.is_hmac() {
            if jwt.secret.as_deref().unwrap_or("").is_empty() {
                errors.push("auth.jwt.secret", format!("required for {alg:?}"));
            }
        } else {
            if jwt.secret.is_some() {
                errors.push(
                    "auth.jwt.secret",
                    format!("not used with {alg:?}: use key files"),
                );
            }
            if jwt.public_key_file.is_none() && jwt.jwks_url.is_none() {
                errors.push(
                    "auth.jwt",
                    format!("{alg:?} needs public_key_file or jwks_url"),
                );
            }
        }
        for (field, value) in [
            ("access_ttl", jwt.access_ttl),
            ("refresh_ttl", jwt.refresh_ttl),
        ] {
            if value.is_some_and(|d| d.0.is_zero()) {
                errors.push(format!("auth.jwt.{field}"), "must be positive");
            }
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, user) in auth.users.iter().enumerate() {
        if !names.insert(user.username.as_str()) {
            errors.push(
                format!("auth.users[{i}].username"),
                format!("duplicate user {:?}", user.username),
            );
        }
        if !user.password_hash.starts_with("$argon2id$") {
            errors.push(
                format!("auth.users[{i}].password_hash"),
                "expected an argon2id hash ($argon2id$...), never a plain password",
            );
        }
    }
    let mut names = std::collections::HashSet::new();
    for (i, key) in auth.api_keys.iter().enumerate() {
        if !names.insert(key.name.as_str()) {
            errors.push(
                format!("auth.api_keys[{i}].name"),
                format!("duplicate key name {:?}", key.name),
            );
        }
        let hex = key.key_hash.strip_prefix("sha256:").unwrap_or("");
        if hex.len() != 64
            || !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        {
            errors.push(
                format!("auth.api_keys[{i}].key_hash"),
                "expected sha256:<64 lowercase hex digits>",
            );
        }
    }
}

/// Checks one `rate_limit` block (global, group or route).
pub fn check_rate_limit(
    path: &str,
    rl: &RateLimitConfig,
    file: &FileConfig,
    errors: &mut ConfigErrors,
) {
    if rl.burst == Some(0) {
        errors.push(format!("{path}.burst"), "must be at least 1");
    }
    if rl.store == Some(StoreKind::Redis) && file.redis.is_none() {
        errors.push(
            format!("{path}.store"),
            "redis store needs the redis section",
        );
    }
    for (i, key) in rl.key.iter().flatten().enumerate() {
        let ok = match key.strip_prefix("header:") {
            Some(name) => http::HeaderName::from_bytes(name.as_bytes()).is_ok(),
            None => matches!(key.as_str(), "client_ip" | "user" | "path" | "route"),
        };
        if !ok {
            errors.push(
                format!("{path}.key[{i}]"),
                format!("unknown key part {key:?}: expected client_ip, user, path, route or header:<Name>"),
            );
        }
    }
}

fn check_cache(cache: &CacheConfig, errors: &mut ConfigErrors) {
    if cache.key_prefix.as_deref() == Some("") {
        errors.push("cache.key_prefix", "must not be empty");
    }
    if cache.memory_size.is_some_and(|s| s.0 == 0) {
        errors.push("cache.memory_size", "must be positive");
    }
    if cache.max_object_size.is_some_and(|s| s.0 == 0) {
        errors.push("cache.max_object_size", "must be positive");
    }
}

fn check_security(sec: &SecurityConfig, errors: &mut ConfigErrors) {
    for (field, list) in [
        ("trusted_proxies", &sec.trusted_proxies),
        ("ip_allow", &sec.ip_allow),
        ("ip_deny", &sec.ip_deny),
    ] {
        for (i, text) in list.iter().enumerate() {
            if let Err(e) = parse_cidr(text) {
                errors.push(format!("security.{field}[{i}]"), e);
            }
        }
    }
    if let Some(cors) = &sec.cors {
        if cors.allow_credentials && cors.allow_origins.iter().any(|o| o == "*") {
            errors.push(
                "security.cors.allow_origins",
                "\"*\" is not allowed with allow_credentials",
            );
        }
        for (i, m) in cors.allow_methods.iter().enumerate() {
            if MethodSet::bit(m).is_none() {
                errors.push(
                    format!("security.cors.allow_methods[{i}]"),
                    format!("unknown method {m:?}"),
                );
            }
        }
    }
    if sec.max_body_size.is_some_and(|s| s.0 == 0) {
        errors.push("security.max_body_size", "must be positive");
    }
}

/// Parses a CIDR (`10.0.0.0/8`) or a single address (`127.0.0.1`).
pub fn parse_cidr(text: &str) -> Result<IpNet, String> {
    text.parse::<IpNet>()
        .or_else(|_| text.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("invalid CIDR or address {text:?}"))
}

/// Route settings over group settings, field by field.
pub fn merge_auth(
    group: Option<&AuthPolicyConfig>,
    route: Option<&AuthPolicyConfig>,
) -> AuthPolicy {
    let levels = [route, group];
    AuthPolicy {
        required: levels
            .iter()
            .flatten()
            .find_map(|a| a.required)
            .unwrap_or(false),
        roles: levels
            .iter()
            .flatten()
            .find_map(|a| a.roles.clone())
            .unwrap_or_default(),
    }
}

/// Global, then group, then route: each level overrides the fields it sets. `None` when no
/// level has a block or the result is disabled.
pub fn merge_rate_limit(levels: [Option<&RateLimitConfig>; 3]) -> Option<RateLimitConfig> {
    if levels.iter().all(Option::is_none) {
        return None;
    }
    let mut out = RateLimitConfig::default();
    for l in levels.into_iter().flatten() {
        let l = l.clone();
        out.enabled = l.enabled.or(out.enabled);
        out.store = l.store.or(out.store);
        out.algorithm = l.algorithm.or(out.algorithm);
        out.rate = l.rate.or(out.rate);
        out.burst = l.burst.or(out.burst);
        out.key = l.key.or(out.key);
        out.on_store_error = l.on_store_error.or(out.on_store_error);
    }
    (out.enabled != Some(false)).then_some(out)
}
