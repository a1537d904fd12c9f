//! Response caching on pingora-cache. The `cache` section builds a [`Cache`] (settings and a
//! [`Store`]: a bounded in-process tier, Redis shared by every instance, or both); each route
//! with `cache.enabled` compiles a [`RoutePolicy`]. The proxy asks the policy whether a request
//! may use the cache and under which key, asks [`freshness`] whether an answer may be kept, and
//! hands pingora the one static storage ([`FRONT`]), which finds the request's store in its key.

mod freshness;
mod invalidation;
mod key;
mod memory;
mod purge;
mod redis_tier;
mod storage;

pub use freshness::{decide, variance, Origin};
pub use invalidation::PurgeListener;
pub use key::{for_upstream, Admission, RoutePolicy};
pub use purge::Purge;
pub use storage::{Store, FRONT};

use crate::config::file::{CacheConfig, RouteCacheConfig, StoreKind};
use crate::config::ConfigErrors;
use crate::redis::RedisHandle;
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_MEMORY_SIZE: u64 = 128 << 20;
const DEFAULT_KEY_PREFIX: &str = "gw";
const DEFAULT_TTL: Duration = Duration::from_secs(60);
const DEFAULT_MAX_OBJECT_SIZE: u64 = 1 << 20;
const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(2);
/// Objects larger than this cannot be cached whatever `max_object_size` says.
const MAX_OBJECT_SIZE_LIMIT: u64 = 512 << 20;

/// A problem in the `cache` section or a route's `cache`.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    #[error("must be positive for the memory store (0 turns off only the redis store's in-process tier)")]
    EmptyMemoryStore,
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {0} bytes")]
    TooLarge(u64),
    #[error("must not contain whitespace, `*`, `?`, `[`, `]` or `#`")]
    KeyPrefixCharacters,
}

/// The `cache` section, built.
#[derive(Debug)]
pub struct Cache {
    pub key_prefix: String,
    /// Freshness when the origin says nothing (a route's `ttl` replaces it).
    pub default_ttl: Duration,
    pub max_object_size: usize,
    /// How long concurrent misses for one key wait for the first fetch.
    pub lock_timeout: Duration,
    pub stale_while_revalidate: u32,
    pub stale_if_error: u32,
    pub store: Arc<Store>,
}

/// Builds the section when it is present or a route enables caching (with the defaults then).
/// `previous` is the running section: its store, with its entries, is kept while the store
/// settings stay the same.
pub fn build(
    cfg: Option<&CacheConfig>,
    routes_enable: bool,
    previous: Option<&Cache>,
    redis: Option<&Arc<RedisHandle>>,
    errors: &mut ConfigErrors,
) -> Option<Arc<Cache>> {
    if cfg.is_none() && !routes_enable {
        return None;
    }
    let default = CacheConfig::default();
    let cfg = cfg.unwrap_or(&default);
    let before = errors.len();
    let key_prefix = cfg.key_prefix.as_deref().unwrap_or(DEFAULT_KEY_PREFIX);
    if key_prefix.is_empty() {
        errors.push("cache.key_prefix", CacheError::Empty);
    } else if key_prefix
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || "*?[]#\\".contains(c))
    {
        errors.push("cache.key_prefix", CacheError::KeyPrefixCharacters);
    }
    let memory_size = match (cfg.memory_size, cfg.store) {
        (Some(s), StoreKind::Memory) if s.0 == 0 => {
            errors.push("cache.memory_size", CacheError::EmptyMemoryStore);
            0
        }
        (Some(s), _) => s.0,
        (None, StoreKind::Memory) => DEFAULT_MEMORY_SIZE,
        (None, StoreKind::Redis) => 0,
    };
    let max_object_size = cfg.max_object_size.map_or(DEFAULT_MAX_OBJECT_SIZE, |s| s.0);
    if max_object_size > MAX_OBJECT_SIZE_LIMIT {
        errors.push(
            "cache.max_object_size",
            CacheError::TooLarge(MAX_OBJECT_SIZE_LIMIT),
        );
    }
    let default_ttl = cfg.default_ttl.map_or(DEFAULT_TTL, |d| d.0);
    let lock_timeout = cfg.lock_timeout.map_or(DEFAULT_LOCK_TIMEOUT, |d| d.0);
    let redis = match cfg.store {
        StoreKind::Memory => None,
        // `check_sections` reports a missing `redis` section.
        StoreKind::Redis => Some(redis?),
    };
    if errors.len() > before {
        return None;
    }
    let kept = previous
        .map(|p| &p.store)
        .filter(|s| s.same_settings(key_prefix, memory_size, redis));
    let store = match kept {
        Some(store) => Arc::clone(store),
        None => Arc::new(Store::new(key_prefix, memory_size, redis)),
    };
    Some(Arc::new(Cache {
        key_prefix: key_prefix.to_owned(),
        default_ttl,
        max_object_size: usize::try_from(max_object_size).unwrap_or(usize::MAX),
        lock_timeout,
        stale_while_revalidate: secs(cfg.stale_while_revalidate.map(|d| d.0)),
        stale_if_error: secs(cfg.stale_if_error.map(|d| d.0)),
        store,
    }))
}

/// A route's `cache`; `None` when caching is off for the route.
pub fn route_policy(cfg: Option<&RouteCacheConfig>) -> Option<RoutePolicy> {
    let cfg = cfg.filter(|c| c.enabled)?;
    let ttl = cfg.ttl.map(|t| t.0);
    Some(RoutePolicy {
        ttl,
        authenticated: cfg.authenticated,
    })
}

fn secs(d: Option<Duration>) -> u32 {
    d.map_or(0, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
}
