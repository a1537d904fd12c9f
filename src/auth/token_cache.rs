//! Tokens already verified, by their full text, so a client sending the same token again costs
//! a hash lookup instead of a signature check and a JSON parse. Only accepted access tokens are
//! kept, until their `exp` plus the leeway (the verifier's own limit); revocation is still
//! checked on every request. Bounded (`auth.jwt.verified_cache` entries, 0 = off): a full shard
//! drops its expired entries, else empties.

use super::claims::Caller;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;
/// Entries kept by default: 16 shards of 4096.
pub const DEFAULT_ENTRIES: usize = SHARDS * 4096;

#[derive(Clone)]
pub struct Verified {
    pub caller: Arc<Caller>,
    pub jti: Arc<str>,
    pub fam: Arc<str>,
    /// Unix seconds after which the token no longer verifies.
    pub valid_until: u64,
    /// The JWKS generation that verified it (0 with static keys): another set verifies again.
    pub keys: u64,
}

/// Token text → what verifying it gave, for one shard.
type Shard = HashMap<Box<str>, Verified>;

pub struct TokenCache {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl Default for TokenCache {
    fn default() -> Self {
        TokenCache::new(DEFAULT_ENTRIES)
    }
}

impl TokenCache {
    /// A cache of about `entries` tokens; 0 keeps none (every request verifies its token).
    pub fn new(entries: usize) -> Self {
        TokenCache {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: entries.div_ceil(SHARDS),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, token: &str) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(token) as usize % SHARDS]
    }

    /// The verified identity of `token`, if it is cached and still valid at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<Verified> {
        if self.per_shard == 0 {
            return None;
        }
        let map = self.shard(token).lock().ok()?;
        map.get(token).filter(|v| v.valid_until >= now).cloned()
    }

    pub fn insert(&self, token: &str, verified: Verified, now: u64) {
        if self.per_shard == 0 {
            return;
        }
        let Ok(mut map) = self.shard(token).lock() else {
            return;
        };
        if map.len() >= self.per_shard {
            map.retain(|_, v| v.valid_until >= now);
            if map.len() >= self.per_shard {
                map.clear();
            }
        }
        map.insert(token.into(), verified);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_shards_stay_bounded() {
        let cache = TokenCache::default();
        let v = |until| Verified {
            caller: Arc::new(Caller::new("s".into(), vec![]).expect("valid")),
            jti: "j".into(),
            fam: "f".into(),
            valid_until: until,
            keys: 0,
        };
        cache.insert("tok", v(100), 50);
        assert!(cache.get("tok", 100).is_some());
        assert!(cache.get("tok", 101).is_none(), "past exp + leeway");
        assert!(cache.get("other", 50).is_none());
        for i in 0..(DEFAULT_ENTRIES * 2) {
            cache.insert(&format!("t{i}"), v(1000), 50);
        }
        assert!(cache.held() <= DEFAULT_ENTRIES, "{}", cache.held());

        let small = TokenCache::new(100);
        for i in 0..1000 {
            small.insert(&format!("t{i}"), v(1000), 50);
        }
        assert!(small.held() <= 112, "{}", small.held());
    }

    #[test]
    fn a_cache_of_zero_entries_keeps_nothing() {
        let cache = TokenCache::new(0);
        let v = Verified {
            caller: Arc::new(Caller::new("s".into(), vec![]).expect("valid")),
            jti: "j".into(),
            fam: "f".into(),
            valid_until: 100,
            keys: 0,
        };
        cache.insert("tok", v, 50);
        assert!(cache.get("tok", 50).is_none());
        assert_eq!(cache.held(), 0);
    }

    impl TokenCache {
        fn held(&self) -> usize {
            self.shards
                .iter()
                .map(|s| s.lock().map_or(0, |m| m.len()))
                .sum()
        }
    }
}
