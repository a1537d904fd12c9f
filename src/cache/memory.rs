//! The in-process tier: entries in a sharded map, bounded by weight with pingora's sharded LRU
//! eviction manager. An entry weighs its body, its header and a fixed overhead, so the bound
//! holds for the memory the entries really use.

use super::purge::Purge;
use bytes::Bytes;
use pingora::cache::eviction::{lru, EvictionManager};
use pingora::cache::key::{CacheHashKey, CompactCacheKey, HashBinary};
use pingora::cache::{CacheEntryKey, CacheEntryKeyRef, CacheMeta};
use pingora::http::ResponseHeader;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

const SHARDS: usize = 16;
/// Map slot, `Arc`, keys, meta fields, LRU node and allocator rounding: measured from the
/// resident size of a filled store, rounded up.
const ENTRY_OVERHEAD: usize = 1024;
/// One slot of a `HeaderMap` (name, value, hash, links), rounded up.
const HEADER_SLOT: usize = 104;

/// One stored answer.
pub struct Stored {
    /// The readable primary key, for purges by path.
    pub primary: Box<str>,
    /// The key as the LRU knows it.
    entry: CacheEntryKey,
    meta: MetaParts,
    pub body: Bytes,
    pub weight: usize,
}

/// What a [`CacheMeta`] holds, kept so a hit rebuilds it without decoding anything.
struct MetaParts {
    fresh_until: SystemTime,
    created: SystemTime,
    epoch: SystemTime,
    swr: u32,
    sie: u32,
    variance: Option<HashBinary>,
    header: ResponseHeader,
}

impl MetaParts {
    fn new(meta: &CacheMeta) -> MetaParts {
        MetaParts {
            fresh_until: meta.fresh_until(),
            created: meta.created(),
            epoch: meta.epoch(),
            swr: meta.stale_while_revalidate_sec(),
            sie: meta.stale_if_error_sec(),
            variance: meta.variance(),
            header: meta.response_header_copy(),
        }
    }

    /// What the header costs: its map's slots and the names and values it holds, twice
    /// (pingora keeps a second map with the names' original case).
    fn header_weight(&self) -> usize {
        let headers = &self.header.headers;
        let held: usize = headers
            .iter()
            .map(|(k, v)| k.as_str().len() + v.len() + 48)
            .sum();
        2 * (headers.capacity() * HEADER_SLOT + held)
    }
}

impl Stored {
    pub fn new(primary: &str, compact: CompactCacheKey, meta: &CacheMeta, body: Bytes) -> Stored {
        let meta = MetaParts::new(meta);
        let weight = ENTRY_OVERHEAD + primary.len() * 2 + meta.header_weight() + body.len();
        Stored {
            primary: primary.into(),
            entry: CacheEntryKey::KeyOnly(compact),
            meta,
            body,
            weight,
        }
    }

    /// The meta to answer with.
    pub fn meta(&self) -> CacheMeta {
        let m = &self.meta;
        let mut meta = CacheMeta::new(m.fresh_until, m.created, m.swr, m.sie, m.header.clone());
        if m.epoch != m.created {
            meta.set_epoch_override(m.epoch);
        }
        if let Some(v) = m.variance {
            meta.set_variance_key(v);
        }
        meta
    }

    fn entry_key(&self) -> CacheEntryKeyRef<'_> {
        CacheEntryKeyRef::from(&self.entry)
    }
}

type Shard = HashMap<HashBinary, Arc<Stored>>;

pub struct MemoryTier {
    shards: Box<[Mutex<Shard>]>,
    lru: lru::Manager<SHARDS>,
    limit: usize,
}

impl MemoryTier {
    pub fn new(limit: usize) -> MemoryTier {
        MemoryTier {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            // Per shard; the LRU grows as entries come.
            lru: lru::Manager::with_capacity(limit, 64),
            limit,
        }
    }

    pub fn limit(&self) -> usize {
        self.limit
    }

    /// Bytes the entries weigh now.
    pub fn weight(&self) -> usize {
        self.lru.total_size()
    }

    fn shard(&self, hash: &HashBinary) -> MutexGuard<'_, Shard> {
        let shard = &self.shards[usize::from(hash[0]) % SHARDS];
        shard
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn get(&self, hash: &HashBinary) -> Option<Arc<Stored>> {
        let found = self.shard(hash).get(hash).cloned()?;
        self.lru
            .access(&found.entry, found.weight, found.meta.fresh_until);
        Some(found)
    }

    /// Stores an entry, evicting the least recently used ones past the limit. An entry
    /// heavier than the whole limit is not stored.
    pub fn insert(&self, stored: Stored) {
        if stored.weight > self.limit {
            return;
        }
        let hash = stored.entry.key().combined_bin();
        let key = stored.entry.clone();
        let (weight, fresh_until) = (stored.weight, stored.meta.fresh_until);
        let old = self.shard(&hash).insert(hash, Arc::new(stored));
        drop(old);
        for evicted in self.lru.admit(key, weight, fresh_until) {
            let hash = evicted.key().combined_bin();
            let gone = self.shard(&hash).remove(&hash);
            drop(gone);
        }
    }

    /// Replaces an entry's meta after a revalidation; false when it is gone.
    pub fn update_meta(&self, hash: &HashBinary, meta: &CacheMeta) -> bool {
        let Some(old) = self.shard(hash).get(hash).cloned() else {
            return false;
        };
        let compact = old.entry.key().clone();
        let fresh = Stored::new(&old.primary, compact, meta, old.body.clone());
        self.insert(fresh);
        true
    }

    /// Removes every entry the purge matches; returns how many.
    pub fn purge(&self, purge: &Purge) -> usize {
        let mut removed = Vec::new();
        for shard in self.shards.iter() {
            let mut map = shard.lock().unwrap_or_else(|p| p.into_inner());
            map.retain(|_, entry| {
                let keep = !purge.matches(&entry.primary);
                if !keep {
                    removed.push(Arc::clone(entry));
                }
                keep
            });
        }
        for entry in &removed {
            self.lru.remove(entry.entry_key());
        }
        removed.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::cache::CacheKey;
    use std::time::Duration;

    fn entry(primary: &str, body: usize) -> (HashBinary, Stored) {
        let key = CacheKey::new(primary, "");
        let header = ResponseHeader::build(200, None).expect("header");
        let now = SystemTime::now();
        let meta = CacheMeta::new(now + Duration::from_secs(60), now, 0, 0, header);
        let compact = key.to_compact();
        let stored = Stored::new(primary, compact, &meta, Bytes::from(vec![b'x'; body]));
        (key.combined_bin(), stored)
    }

    #[test]
    fn the_weight_stays_under_the_limit_and_recent_entries_stay() {
        // Eviction is least-recently-used per shard: enough entries that every shard has some.
        let tier = MemoryTier::new(4 << 20);
        let (first, e) = entry("gw:GET:/0:", 4096);
        tier.insert(e);
        for i in 1..3000 {
            assert!(tier.get(&first).is_some(), "recently used, kept ({i})");
            let (_, e) = entry(&format!("gw:GET:/{i}:"), 4096);
            tier.insert(e);
            assert!(
                tier.weight() <= tier.limit(),
                "{} > {}",
                tier.weight(),
                tier.limit()
            );
        }
        let (oldest, _) = entry("gw:GET:/1:", 0);
        assert!(tier.get(&oldest).is_none(), "least recently used, evicted");
        let (big, e) = entry("gw:GET:/big:", 5 << 20);
        tier.insert(e);
        assert!(tier.get(&big).is_none(), "heavier than the limit");
    }

    #[test]
    fn purge_removes_matches_and_their_weight() {
        let tier = MemoryTier::new(1 << 20);
        for p in ["gw:GET:/a:", "gw:GET:/a/1:", "gw:GET:/b:", "gw:GET:/a:#c=1"] {
            tier.insert(entry(p, 100).1);
        }
        let before = tier.weight();
        assert_eq!(tier.purge(&Purge::url("gw", "/a", None)), 2);
        assert_eq!(tier.purge(&Purge::prefix("gw", "/a")), 1);
        assert!(tier.weight() < before);
        let (b, _) = entry("gw:GET:/b:", 0);
        assert!(tier.get(&b).is_some());
        assert_eq!(tier.purge(&Purge::prefix("gw", "/")), 1);
        assert!(tier.get(&b).is_none());
        assert_eq!(tier.weight(), 0);
    }
}
