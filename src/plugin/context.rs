//! What a middleware is built with: the gateway's shared stores.

use crate::redis::RedisHandle;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Handed to [`Middleware::build`](super::Middleware::build).
#[derive(Debug, Clone, Default)]
pub struct BuildContext {
    redis: Option<Arc<RedisHandle>>,
    upstreams: BTreeSet<String>,
}

impl BuildContext {
    pub(crate) fn new(
        redis: Option<&Arc<RedisHandle>>,
        upstreams: impl Iterator<Item = String>,
    ) -> BuildContext {
        BuildContext {
            redis: redis.cloned(),
            upstreams: upstreams.collect(),
        }
    }

    /// Whether both hold the same connection (or none) and name the same upstreams.
    pub(crate) fn same(&self, other: &BuildContext) -> bool {
        let redis = match (&self.redis, &other.redis) {
            (None, None) => true,
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        };
        redis && self.upstreams == other.upstreams
    }

    /// Whether the config has an upstream of this name (its backends are picked per request,
    /// [`RequestView::backend`](super::RequestView::backend)). A reload that adds or removes an
    /// upstream builds every middleware again.
    pub fn has_upstream(&self, name: &str) -> bool {
        self.upstreams.contains(name)
    }

    /// The `redis` section's connection, when the config has one: state kept there is shared
    /// by every instance on that Redis. A reload that changes the section builds every
    /// middleware again.
    pub fn redis(&self) -> Option<SharedRedis> {
        self.redis.clone().map(SharedRedis)
    }
}

/// The gateway's Redis connection: every call is bounded by `redis.timeout`, and a Redis that
/// failed is skipped until a background probe finds it back, as for the gateway's own features.
#[derive(Debug, Clone)]
pub struct SharedRedis(Arc<RedisHandle>);

/// Redis did not answer (in time), or refused the command.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(String);

impl SharedRedis {
    /// Runs one command.
    pub async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self
            .0
            .connection()
            .await
            .map_err(|e| StoreError(e.to_string()))?;
        self.0
            .run(cmd.query_async(&mut conn))
            .await
            .map_err(|e| StoreError(e.to_string()))
    }
}
