//! The storage pingora sees: one static [`Front`] for every snapshot. A request's key carries
//! its snapshot's [`Cache`] (in the key's extensions), so entries live in that section's
//! [`Store`] and a reload that changes the store settings starts a new one while requests
//! under way finish on the old.
//!
//! Errors follow pingora's asymmetry: a failed lookup is a miss; `get_miss_handler` and
//! `write_body` never fail (a body past `max_object_size` is dropped, not stored); a failed
//! write is counted and the client still gets the origin's answer.

use super::memory::{MemoryTier, Stored};
use super::purge::Purge;
use super::redis_tier::{Found, RedisTier};
use super::Cache;
use crate::redis::{RedisError, RedisHandle};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use pingora::cache::key::{CacheHashKey, CompactCacheKey, HashBinary};
use pingora::cache::storage::{
    HandleHit, HandleMiss, HitHandler, MissFinishType, MissHandler, PurgeOutcome, PurgeTarget,
    PurgeType, Storage,
};
use pingora::cache::trace::SpanHandle;
use pingora::cache::{CacheKey, CacheMeta};
use pingora::prelude::*;
use std::any::Any;
use std::sync::Arc;

/// Where a section keeps its entries: an in-process tier, Redis, or Redis behind an
/// in-process tier.
pub struct Store {
    key_prefix: String,
    memory: Option<MemoryTier>,
    redis: Option<RedisTier>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("memory", &self.memory.as_ref().map(MemoryTier::limit))
            .field("redis", &self.redis.is_some())
            .finish()
    }
}

impl Store {
    pub fn new(key_prefix: &str, memory_size: u64, redis: Option<&Arc<RedisHandle>>) -> Store {
        let memory_size = usize::try_from(memory_size).unwrap_or(usize::MAX);
        Store {
            key_prefix: key_prefix.to_owned(),
            memory: (memory_size > 0).then(|| MemoryTier::new(memory_size)),
            redis: redis.map(|r| RedisTier::new(Arc::clone(r), key_prefix)),
        }
    }

    /// True when a section with these settings can keep this store (and its entries).
    pub fn same_settings(
        &self,
        key_prefix: &str,
        memory_size: u64,
        redis: Option<&Arc<RedisHandle>>,
    ) -> bool {
        let memory = self.memory.as_ref().map_or(0, |m| m.limit() as u64);
        let same_redis = match (&self.redis, redis) {
            (None, None) => true,
            (Some(tier), Some(r)) => Arc::ptr_eq(&tier.redis, r),
            _ => false,
        };
        self.key_prefix == key_prefix && memory == memory_size && same_redis
    }

    pub fn key_prefix(&self) -> &str {
        &self.key_prefix
    }

    /// `(weight, limit)` of the in-process tier.
    pub fn memory_usage(&self) -> Option<(usize, usize)> {
        self.memory.as_ref().map(|m| (m.weight(), m.limit()))
    }

    /// The Redis handle of a Redis store.
    pub fn redis(&self) -> Option<&Arc<RedisHandle>> {
        self.redis.as_ref().map(|r| &r.redis)
    }

    /// The channel purges are announced on, for a Redis store with an in-process tier.
    pub fn purge_channel(&self) -> Option<&str> {
        self.memory.as_ref()?;
        self.redis.as_ref().map(|r| r.channel.as_str())
    }

    /// Removes what the purge matches, everywhere: here, in Redis, and (through pub/sub) in
    /// the in-process tier of every other instance. Returns how many entries went.
    pub async fn purge(&self, purge: &Purge) -> Result<usize, RedisError> {
        let local = self.drop_local(purge);
        match &self.redis {
            Some(r) => r.purge(purge).await.map(|n| n.max(local)),
            None => Ok(local),
        }
    }

    /// Removes what the purge matches from the in-process tier only.
    pub fn drop_local(&self, purge: &Purge) -> usize {
        self.memory.as_ref().map_or(0, |m| m.purge(purge))
    }

    /// Ends a fill that stored nothing: lets other instances stop waiting for it.
    pub async fn release(&self, key: &CacheKey) {
        if let Some(r) = &self.redis {
            r.release(&key.combined_bin()).await;
        }
    }
}

/// The storage handed to pingora.
pub struct Front;

pub static FRONT: Front = Front;

fn section(key: &CacheKey) -> Result<&Arc<Cache>> {
    key.extensions
        .get::<Arc<Cache>>()
        .ok_or_else(|| Error::explain(InternalError, "cache key without its section"))
}

fn primary(key: &CacheKey) -> &str {
    std::str::from_utf8(key.primary_key()).unwrap_or("")
}

fn hit(body: Bytes) -> HitHandler {
    Box::new(BodyHit {
        body,
        start: 0,
        end: None,
        done: false,
    })
}

#[async_trait]
impl Storage for Front {
    async fn lookup(
        &'static self,
        key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<Option<(CacheMeta, HitHandler)>> {
        let cache = section(key)?;
        let store = &cache.store;
        let hash = key.combined_bin();
        if let Some(found) = store.memory.as_ref().and_then(|m| m.get(&hash)) {
            return Ok(Some((found.meta(), hit(found.body.clone()))));
        }
        let Some(redis) = &store.redis else {
            return Ok(None);
        };
        let primary = primary(key);
        match redis.lookup(primary, &hash, cache.lock_timeout).await {
            Found::Hit(meta, body) => {
                if let Some(memory) = &store.memory {
                    memory.insert(Stored::new(primary, key.to_compact(), &meta, body.clone()));
                }
                Ok(Some((meta, hit(body))))
            }
            Found::Miss => Ok(None),
        }
    }

    async fn get_miss_handler(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<MissHandler> {
        let cache = section(key)?;
        // An error here would fail the client's request: a meta that cannot be encoded is
        // not stored instead.
        let meta = meta
            .serialize()
            .map_err(|e| log::warn!("cache: answer not stored, its meta does not encode: {e}"))
            .ok();
        Ok(Box::new(Fill {
            cache: Arc::clone(cache),
            primary: primary(key).into(),
            compact: key.to_compact(),
            hash: key.combined_bin(),
            over: meta.is_none(),
            meta: meta.unwrap_or_default(),
            chunks: Vec::new(),
            len: 0,
        }))
    }

    /// Pingora purges only what an eviction manager hands it, and this storage gives it none
    /// (the in-process tier evicts by itself; Redis expires entries): purges go through
    /// [`Store::purge`], by path.
    async fn purge(
        &'static self,
        _target: PurgeTarget<'_>,
        _purge_type: PurgeType,
        _trace: &SpanHandle,
    ) -> Result<PurgeOutcome> {
        Ok(PurgeOutcome::NotFound)
    }

    async fn update_meta(
        &'static self,
        key: &CacheKey,
        meta: &CacheMeta,
        _trace: &SpanHandle,
    ) -> Result<bool> {
        let cache = section(key)?;
        let hash = key.combined_bin();
        let mut updated = false;
        if let Some(memory) = &cache.store.memory {
            updated |= memory.update_meta(&hash, meta);
        }
        if let Some(redis) = &cache.store.redis {
            updated |= redis.update_meta(primary(key), &hash, meta).await;
        }
        Ok(updated)
    }

    fn support_streaming_partial_write(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync + 'static) {
        self
    }
}

/// Serves a stored body, whole or one range of it.
struct BodyHit {
    body: Bytes,
    start: usize,
    end: Option<usize>,
    done: bool,
}

#[async_trait]
impl HandleHit for BodyHit {
    async fn read_body(&mut self) -> Result<Option<Bytes>> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        let end = self.end.unwrap_or(self.body.len());
        Ok(Some(self.body.slice(self.start..end)))
    }

    async fn finish(
        self: Box<Self>,
        _storage: &'static (dyn Storage + Sync),
        _key: &CacheKey,
        _trace: &SpanHandle,
    ) -> Result<()> {
        Ok(())
    }

    fn can_seek(&self) -> bool {
        true
    }

    fn seek(&mut self, start: usize, end: Option<usize>) -> Result<()> {
        if start >= self.body.len() {
            return Error::e_explain(InternalError, "seek past the end of the body");
        }
        self.start = start;
        self.end = end.map(|e| e.min(self.body.len()).max(start));
        self.done = false;
        Ok(())
    }

    /// The in-process tier counts accesses itself.
    fn should_count_access(&self) -> bool {
        false
    }

    fn as_any(&self) -> &(dyn Any + Send + Sync) {
        self
    }

    fn as_any_mut(&mut self) -> &mut (dyn Any + Send + Sync) {
        self
    }
}

/// Collects an origin answer's body while it streams to the client; stores it at the end.
struct Fill {
    cache: Arc<Cache>,
    primary: Box<str>,
    compact: CompactCacheKey,
    hash: HashBinary,
    /// The meta as pingora serializes it.
    meta: (Vec<u8>, Vec<u8>),
    /// The body as it came, and its length.
    chunks: Vec<Bytes>,
    len: usize,
    /// The body grew past `max_object_size` (or the meta did not encode): nothing is stored.
    over: bool,
}

#[async_trait]
impl HandleMiss for Fill {
    async fn write_body(&mut self, data: Bytes, _eof: bool) -> Result<()> {
        if self.over {
            return Ok(());
        }
        if self.len + data.len() > self.cache.max_object_size {
            self.over = true;
            self.chunks = Vec::new();
            return Ok(());
        }
        self.len += data.len();
        self.chunks.push(data);
        Ok(())
    }

    async fn finish(self: Box<Self>) -> Result<MissFinishType> {
        let store = &self.cache.store;
        if self.over {
            if let Some(redis) = &store.redis {
                redis.release(&self.hash).await;
            }
            return Error::e_explain(InternalError, "body over max_object_size, not stored");
        }
        let meta = CacheMeta::deserialize(&self.meta.0, &self.meta.1)?;
        // One exact allocation: read buffers may be larger than what they hold.
        let mut body = BytesMut::with_capacity(self.len);
        for chunk in &self.chunks {
            body.extend_from_slice(chunk);
        }
        let body = body.freeze();
        let stored = Stored::new(&self.primary, self.compact, &meta, body.clone());
        let weight = stored.weight;
        if let Some(memory) = &store.memory {
            memory.insert(stored);
        }
        if let Some(redis) = &store.redis {
            redis.put(&self.primary, &self.hash, &meta, &body).await;
        }
        Ok(MissFinishType::Created(weight))
    }
}
