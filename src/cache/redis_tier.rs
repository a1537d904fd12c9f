//! The Redis tier: every instance on one Redis shares one cache. An entry is a hash (`i`, `h`:
//! pingora's serialized meta; `b`: the body) under `<primary>#<hash>`, expiring when it is no
//! longer fresh, servable stale or worth revalidating. A cold key is fetched by one instance: the
//! first miss takes `<key_prefix>:lock:<hash>` (`SET NX PX lock_timeout`); the others poll for
//! the entry until it appears, the lock goes, or `lock_timeout` passes. Redis errors are misses
//! and dropped writes (counted); the handle's back-off keeps a dead Redis from costing each
//! request its timeout.

use super::purge::Purge;
use crate::redis::{RedisError, RedisHandle};
use bytes::Bytes;
use pingora::cache::key::HashBinary;
use pingora::cache::CacheMeta;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

/// How long past its stale windows an entry stays for revalidation (`ETag`, `Last-Modified`).
const REVALIDATION_WINDOW: Duration = Duration::from_secs(60);
/// How often a request waiting for another instance's fetch looks again.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Keys deleted per `DEL` and scanned per `SCAN` call while purging.
const PURGE_BATCH: usize = 500;

pub struct RedisTier {
    pub redis: Arc<RedisHandle>,
    lock_prefix: String,
    /// The pub/sub channel purges are announced on.
    pub channel: String,
    /// Fill locks this instance holds, released when the fill ends.
    held: Mutex<HashSet<HashBinary>>,
}

/// What a lookup found.
pub enum Found {
    Hit(CacheMeta, Bytes),
    /// Nothing stored; this request fetches it (it may hold the fill lock).
    Miss,
}

impl RedisTier {
    pub fn new(redis: Arc<RedisHandle>, key_prefix: &str) -> RedisTier {
        RedisTier {
            redis,
            lock_prefix: format!("{key_prefix}:lock:"),
            channel: format!("{key_prefix}:purge"),
            held: Mutex::new(HashSet::new()),
        }
    }

    fn lock_key(&self, hash: &HashBinary) -> String {
        let mut k = self.lock_prefix.clone();
        push_hex(&mut k, hash);
        k
    }

    async fn get(&self, key: &str) -> Result<Option<(CacheMeta, Bytes)>, RedisError> {
        let mut conn = self.redis.connection().await?;
        let mut cmd = redis::cmd("HMGET");
        cmd.arg(key).arg("i").arg("h").arg("b");
        type Blobs = (Option<Vec<u8>>, Option<Vec<u8>>, Option<Vec<u8>>);
        let (i, h, b): Blobs = self.redis.run(cmd.query_async(&mut conn)).await?;
        let (Some(i), Some(h), Some(b)) = (i, h, b) else {
            return Ok(None);
        };
        // An entry this version cannot read is a miss, and the fill replaces it.
        Ok(CacheMeta::deserialize(&i, &h)
            .ok()
            .map(|meta| (meta, Bytes::from(b))))
    }

    /// Looks `primary` up; on a miss, takes the fill lock or waits for whoever holds it.
    pub async fn lookup(&self, primary: &str, hash: &HashBinary, wait: Duration) -> Found {
        let key = data_key(primary, hash);
        match self.get(&key).await {
            Ok(Some((meta, body))) => return Found::Hit(meta, body),
            Ok(None) => {}
            Err(e) => {
                count_error("lookup", &e);
                return Found::Miss;
            }
        }
        let lock = self.lock_key(hash);
        match self.try_lock(&lock, wait).await {
            Ok(true) => {
                self.held_set().insert(*hash);
                // The previous holder may have stored the entry and let go between the first
                // look and the lock: look once more before fetching it again.
                if let Ok(Some((meta, body))) = self.get(&key).await {
                    self.release(hash).await;
                    return Found::Hit(meta, body);
                }
                return Found::Miss;
            }
            Ok(false) => {}
            Err(e) => {
                count_error("lock", &e);
                return Found::Miss;
            }
        }
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            tokio::time::sleep(POLL_INTERVAL).await;
            match self.get(&key).await {
                Ok(Some((meta, body))) => return Found::Hit(meta, body),
                Ok(None) => {}
                Err(_) => return Found::Miss,
            }
            if !self.locked(&lock).await {
                break;
            }
        }
        Found::Miss
    }

    async fn try_lock(&self, lock: &str, wait: Duration) -> Result<bool, RedisError> {
        let mut conn = self.redis.connection().await?;
        let mut cmd = redis::cmd("SET");
        let ms = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX).max(1);
        cmd.arg(lock).arg(1).arg("NX").arg("PX").arg(ms);
        let set: Option<String> = self.redis.run(cmd.query_async(&mut conn)).await?;
        Ok(set.is_some())
    }

    async fn locked(&self, lock: &str) -> bool {
        let Ok(mut conn) = self.redis.connection().await else {
            return false;
        };
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(lock);
        let exists: Result<u32, _> = self.redis.run(cmd.query_async(&mut conn)).await;
        exists.is_ok_and(|n| n > 0)
    }

    fn held_set(&self) -> std::sync::MutexGuard<'_, HashSet<HashBinary>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores an entry and lets go of its fill lock.
    pub async fn put(&self, primary: &str, hash: &HashBinary, meta: &CacheMeta, body: &[u8]) {
        let result = self.write(primary, hash, meta, Some(body)).await;
        if let Err(e) = result {
            count_error("write", &e);
        }
        self.release(hash).await;
    }

    /// Rewrites an entry's meta after a revalidation; false when it is gone or Redis failed.
    pub async fn update_meta(&self, primary: &str, hash: &HashBinary, meta: &CacheMeta) -> bool {
        match self.write(primary, hash, meta, None).await {
            Ok(updated) => updated,
            Err(e) => {
                count_error("write", &e);
                false
            }
        }
    }

    async fn write(
        &self,
        primary: &str,
        hash: &HashBinary,
        meta: &CacheMeta,
        body: Option<&[u8]>,
    ) -> Result<bool, RedisError> {
        let (internal, header) = meta
            .serialize()
            .map_err(|e| RedisError::Encode(e.to_string()))?;
        let key = data_key(primary, hash);
        let ttl = keep_for(meta);
        let mut conn = self.redis.connection().await?;
        let mut pipe = redis::pipe();
        pipe.atomic();
        let mut hset = redis::cmd("HSET");
        hset.arg(&key).arg("i").arg(internal).arg("h").arg(header);
        if let Some(body) = body {
            // A new fill replaces the entry whole; a revalidation rewrites the meta only.
            pipe.del(&key).ignore();
            hset.arg("b").arg(body);
        }
        pipe.add_command(hset).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl);
        pipe.cmd("HEXISTS").arg(&key).arg("b");
        let (_, has_body): (u32, u32) = self.redis.run(pipe.query_async(&mut conn)).await?;
        if has_body == 0 {
            // A revalidation raced a purge: drop the body-less remains.
            let mut del = redis::cmd("DEL");
            del.arg(&key);
            let _: Result<u32, _> = self.redis.run(del.query_async(&mut conn)).await;
        }
        Ok(has_body == 1)
    }

    /// Lets go of the fill lock for `hash` if this instance holds it (the fill ended without
    /// storing anything, or stored it).
    pub async fn release(&self, hash: &HashBinary) {
        if !self.held_set().remove(hash) {
            return;
        }
        let lock = self.lock_key(hash);
        if let Ok(mut conn) = self.redis.connection().await {
            let mut cmd = redis::cmd("DEL");
            cmd.arg(lock);
            let _: Result<u32, _> = self.redis.run(cmd.query_async(&mut conn)).await;
        }
    }

    /// Deletes every entry the purge matches and tells the other instances; returns how many.
    pub async fn purge(&self, purge: &Purge) -> Result<usize, RedisError> {
        let mut conn = self.redis.connection().await?;
        let pattern = purge.scan_pattern();
        let mut removed = 0;
        // Every primary of a cluster holds some of the keys.
        for node in self.redis.scan_nodes(&mut conn).await? {
            let mut cursor = 0u64;
            loop {
                let (next, keys) = self
                    .redis
                    .scan_page(&mut conn, &node, cursor, &pattern, PURGE_BATCH)
                    .await?;
                let doomed: Vec<&String> = keys
                    .iter()
                    .filter(|k| primary_of(k).is_some_and(|p| purge.matches(p)))
                    .collect();
                for batch in doomed.chunks(PURGE_BATCH) {
                    // In a cluster the keys of one DEL are split by slot.
                    let mut del = redis::cmd("DEL");
                    del.arg(batch);
                    let n: usize = self.redis.run(del.query_async(&mut conn)).await?;
                    removed += n;
                }
                if next == 0 {
                    break;
                }
                cursor = next;
            }
        }
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(&self.channel).arg(purge.to_message());
        let _: u64 = self.redis.run(publish.query_async(&mut conn)).await?;
        Ok(removed)
    }
}

/// Counts a Redis failure of the cache (`cache_store_errors_total`).
fn count_error(op: &'static str, e: &RedisError) {
    log::debug!("cache {op}: {e}");
    crate::metrics::cache_store_error(op);
}

/// `<primary>#<hash in hex>`.
fn data_key(primary: &str, hash: &HashBinary) -> String {
    let mut k = String::with_capacity(primary.len() + 33);
    k.push_str(primary);
    k.push('#');
    push_hex(&mut k, hash);
    k
}

/// The primary key of a stored key (what precedes the last `#`).
fn primary_of(key: &str) -> Option<&str> {
    key.rsplit_once('#').map(|(p, _)| p)
}

fn push_hex(out: &mut String, bytes: &[u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for b in bytes {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 15)]));
    }
}

/// Milliseconds an entry stays in Redis: while fresh, servable stale, then a while for
/// revalidation. At least one second.
fn keep_for(meta: &CacheMeta) -> u64 {
    let fresh = meta
        .fresh_until()
        .duration_since(SystemTime::now())
        .unwrap_or_default();
    let stale = meta
        .stale_while_revalidate_sec()
        .max(meta.stale_if_error_sec());
    let total = fresh + Duration::from_secs(u64::from(stale)) + REVALIDATION_WINDOW;
    u64::try_from(total.as_millis())
        .unwrap_or(u64::MAX)
        .max(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_keys_name_their_primary() {
        let hash = [0xab; 16];
        let key = data_key("gw:GET:/a#b:q=1#u=x;c=1", &hash);
        assert_eq!(key, format!("gw:GET:/a#b:q=1#u=x;c=1#{}", "ab".repeat(16)));
        assert_eq!(primary_of(&key), Some("gw:GET:/a#b:q=1#u=x;c=1"));
    }
}
