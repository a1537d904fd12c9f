//! Checks of the sections that have no feature module of their own yet: `server`, `listen`,
//! `cache` (parsed, not enforced by this version), and which stores need the `redis` section.

use super::file::{CacheConfig, FileConfig, StoreKind};
use super::ConfigErrors;
use std::net::SocketAddr;

/// A problem in one of these sections.
#[derive(Debug, thiserror::Error)]
pub enum SectionError {
    #[error("must be at least 1")]
    AtLeastOne,
    #[error("invalid address {0:?}: expected ip:port")]
    Address(String),
    #[error("{addr} is already used by {other}")]
    SameAddress {
        addr: SocketAddr,
        other: &'static str,
    },
    #[error("required: a store is set to redis")]
    RedisRequired,
    #[error("must not be empty")]
    Empty,
    #[error("must be positive")]
    NotPositive,
}

/// Checks `server`, `listen`, `cache`, and that a `redis` store has its section.
pub fn check_sections(file: &FileConfig, errors: &mut ConfigErrors) {
    if file.server.threads == 0 {
        errors.push("server.threads", SectionError::AtLeastOne);
    }
    let listeners = [
        ("listen.proxy", &file.listen.proxy),
        ("listen.metrics", &file.listen.metrics),
        ("listen.admin", &file.listen.admin),
    ];
    let mut bound: Vec<(&'static str, SocketAddr)> = Vec::new();
    for (path, addr) in listeners {
        match addr.parse::<SocketAddr>() {
            Ok(a) => {
                if let Some((other, _)) = bound.iter().find(|(_, b)| *b == a && a.port() != 0) {
                    errors.push(path, SectionError::SameAddress { addr: a, other });
                }
                bound.push((path, a));
            }
            Err(_) => errors.push(path, SectionError::Address(addr.clone())),
        }
    }
    let needs_redis = file.auth.as_ref().map(|a| a.revocation_store) == Some(StoreKind::Redis)
        || file.cache.as_ref().map(|c| c.store) == Some(StoreKind::Redis);
    if needs_redis && file.redis.is_none() {
        errors.push("redis", SectionError::RedisRequired);
    }
    if let Some(cache) = &file.cache {
        check_cache(cache, errors);
    }
}

fn check_cache(cache: &CacheConfig, errors: &mut ConfigErrors) {
    if cache.key_prefix.as_deref() == Some("") {
        errors.push("cache.key_prefix", SectionError::Empty);
    }
    if cache.memory_size.is_some_and(|s| s.0 == 0) {
        errors.push("cache.memory_size", SectionError::NotPositive);
    }
    if cache.max_object_size.is_some_and(|s| s.0 == 0) {
        errors.push("cache.max_object_size", SectionError::NotPositive);
    }
}

/// Names the settings that parse and validate but have no effect in this build yet, so start-up
/// can say so in the log.
pub fn inactive_settings(file: &FileConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if file.cache.is_some()
        || file
            .routes
            .iter()
            .any(|r| r.cache.as_ref().is_some_and(|c| c.enabled))
    {
        out.push("cache");
    }
    if file.admin.is_some() {
        out.push("admin (the admin listener and dashboard)");
    }
    out
}
