//! Checks of the sections that have no feature module of their own yet: `server`, `listen`,
//! and which stores need the `redis` section.

use super::file::{FileConfig, StoreKind};
use super::ConfigErrors;
use std::net::SocketAddr;

/// A problem in one of these sections.
#[derive(Debug, thiserror::Error)]
pub enum SectionError {
    #[error("must be at least 1")]
    AtLeastOne,
    #[error("must be at most {0}")]
    AtMost(usize),
    #[error("invalid address {0:?}: expected ip:port")]
    Address(String),
    #[error("{addr} is already used by {other}")]
    SameAddress {
        addr: SocketAddr,
        other: &'static str,
    },
    #[error("required: a store is set to redis")]
    RedisRequired,
}

/// Accept tasks per listening socket at most.
const MAX_LISTENER_TASKS: usize = 64;
/// Pooled upstream connections at most (pingora sizes its pool's map up front).
const MAX_KEEPALIVE_POOL: usize = 1_000_000;

/// Checks `server`, `listen`, and that a `redis` store has its section.
pub fn check_sections(file: &FileConfig, errors: &mut ConfigErrors) {
    if file.server.threads == 0 {
        errors.push("server.threads", SectionError::AtLeastOne);
    }
    if file.server.listener_tasks_per_fd == 0 {
        errors.push("server.listener_tasks_per_fd", SectionError::AtLeastOne);
    }
    // Both are allocated or spawned up front: a slip of the keyboard must not exhaust memory.
    if file.server.listener_tasks_per_fd > MAX_LISTENER_TASKS {
        let e = SectionError::AtMost(MAX_LISTENER_TASKS);
        errors.push("server.listener_tasks_per_fd", e);
    }
    if file.server.upstream_keepalive_pool_size > MAX_KEEPALIVE_POOL {
        let e = SectionError::AtMost(MAX_KEEPALIVE_POOL);
        errors.push("server.upstream_keepalive_pool_size", e);
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
    if let Some(url) = file
        .admin
        .as_ref()
        .and_then(|a| a.prometheus_url.as_deref())
        .filter(|u| !u.is_empty())
    {
        if let Err(e) = crate::http_client::check_url(url) {
            errors.push("admin.prometheus_url", e);
        }
    }
    let needs_redis = file.auth.as_ref().map(|a| a.revocation_store) == Some(StoreKind::Redis)
        || file.cache.as_ref().map(|c| c.store) == Some(StoreKind::Redis);
    if needs_redis && file.redis.is_none() {
        errors.push("redis", SectionError::RedisRequired);
    }
}
