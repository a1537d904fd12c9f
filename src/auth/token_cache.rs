//! Tokens already verified, by their full text, so a client sending the same token again costs
//! a hash lookup instead of a signature check and a JSON parse. Only accepted access tokens are
//! kept, until their `exp` plus the leeway (the verifier's own limit); revocation is still
//! checked on every request. Bounded (`auth.jwt.verified_cache` entries, 0 = off): a full shard
//! drops its expired entries, else empties.
//!
//! An entry is found by a keyed hash of the token's last [`TAIL`] bytes, the end of its
//! signature, and holds the full text, which a lookup compares. Hashing the tail instead of the
//! whole token (hundreds of bytes) is safe: only verified tokens are stored, whose signatures
//! no one but the issuer chooses, so a sent token that shares a stored one's tail only finds
//! that entry, fails the comparison and is verified like any other.

use super::claims::Caller;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;
/// Bytes of the token's end that are hashed: 32 base64url characters, 192 bits of signature.
const TAIL: usize = 32;
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
    /// Its `iat` when it is one of ours (it carries a user epoch), so that the removal of its
    /// user on another instance, learned through the shared revocations, ends it here too.
    pub user_issued_at: Option<u64>,
}

/// The hash of a token's tail → the token and what verifying it gave, for one shard.
type Shard = HashMap<u64, Entry>;

struct Entry {
    token: Box<str>,
    verified: Verified,
}

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

    /// The token's shard and its key there.
    fn place(&self, token: &str) -> (&Mutex<Shard>, u64) {
        let bytes = token.as_bytes();
        let hash = self
            .hasher
            .hash_one(&bytes[bytes.len().saturating_sub(TAIL)..]);
        (&self.shards[hash as usize % SHARDS], hash)
    }

    /// The verified identity of `token`, if it is cached and still valid at `now`.
    pub fn get(&self, token: &str, now: u64) -> Option<Verified> {
        if self.per_shard == 0 {
            return None;
        }
        let (shard, key) = self.place(token);
        let map = shard.lock().ok()?;
        let entry = map.get(&key)?;
        (*entry.token == *token && entry.verified.valid_until >= now)
            .then(|| entry.verified.clone())
    }

    pub fn insert(&self, token: &str, verified: Verified, now: u64) {
        if self.per_shard == 0 {
            return;
        }
        let (shard, key) = self.place(token);
        let Ok(mut map) = shard.lock() else {
            return;
        };
        if map.len() >= self.per_shard {
            map.retain(|_, e| e.verified.valid_until >= now);
            if map.len() >= self.per_shard {
                map.clear();
            }
        }
        map.insert(
            key,
            Entry {
                token: token.into(),
                verified,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verified(subject: &str, valid_until: u64) -> Verified {
        Verified {
            caller: Arc::new(Caller::new(subject.into(), vec![]).expect("valid")),
            jti: "j".into(),
            fam: "f".into(),
            valid_until,
            keys: 0,
            user_issued_at: None,
        }
    }

    #[test]
    fn entries_expire_and_shards_stay_bounded() {
        let cache = TokenCache::default();
        let v = |until| verified("s", until);
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
    fn a_token_with_a_stored_tokens_tail_is_not_taken_for_it() {
        let cache = TokenCache::default();
        let tail = "s".repeat(TAIL);
        let stored = format!("header.alice.{tail}");
        let forged = format!("header.mallory.{tail}");
        let v = verified("alice", 100);
        cache.insert(&stored, v, 50);
        assert!(cache.get(&forged, 50).is_none(), "same tail, other token");
        assert!(
            cache.get(&stored[1..], 50).is_none(),
            "a suffix of the token"
        );
        let hit = cache.get(&stored, 50).expect("the stored token");
        assert_eq!(hit.caller.subject, "alice");
        // Tokens shorter than the tail are hashed whole.
        cache.insert("short", hit, 50);
        assert!(cache.get("short", 50).is_some());
        assert!(cache.get("shor", 50).is_none());
    }

    #[test]
    fn a_cache_of_zero_entries_keeps_nothing() {
        let cache = TokenCache::new(0);
        let v = verified("s", 100);
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
