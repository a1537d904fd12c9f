//! Leases on shared token buckets: an instance takes a few tokens from Redis at once and spends
//! them locally, so a busy key costs one Redis round trip per lease instead of one per request.
//! Unused tokens go back to Redis with the next lease of that key once the lease has expired.
//! A refused lease is remembered until Redis said a token would be back, so a key over its
//! limit is refused locally meanwhile.
//!
//! Tokens are always taken from the shared bucket before they are spent, so the instances
//! together never admit more than the limit; what a lease holds and nobody spends (at most one
//! lease per key and instance) is admitted late or, for a key that goes quiet, not at all.

use super::local::Decision;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long leased tokens may be spent before they go back.
pub const LEASE_TTL: Duration = Duration::from_millis(250);
/// Most tokens one lease takes.
pub const MAX_LEASE: u64 = 20;
const SHARDS: usize = 16;

/// Tokens one lease asks for: up to [`MAX_LEASE`], but at most a 50th of a second's rate and a
/// 20th of the burst, so that instances holding leases keep a shared limit within a few percent
/// and no instance drains a small bucket alone. Small limits get 1 (a round trip a request).
pub fn lease_size(rate_per_sec: f64, burst: f64) -> u64 {
    let size = (rate_per_sec / 50.0).min(burst / 20.0).floor();
    if size.is_finite() && size >= 1.0 {
        (size as u64).min(MAX_LEASE)
    } else {
        1
    }
}

#[derive(Clone, Copy)]
struct Lease {
    /// Tokens left to spend locally (0 with a refusal).
    tokens: u64,
    /// Until when they may be spent, or the refusal holds.
    until: Instant,
    /// What the shared bucket said with the lease, for the `RateLimit-*` headers.
    shared: Decision,
}

/// What [`Leases::take`] decided.
pub enum Take {
    /// Decided locally.
    Local(Decision),
    /// Ask Redis for a lease, handing back `give_back` unused tokens.
    Ask { give_back: u64 },
}

/// Key digest → lease, for one shard.
type Shard = HashMap<[u8; 16], Lease>;

pub struct Leases {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    hasher: RandomState,
}

impl Leases {
    /// Room for about `keys` keys (a full shard drops its expired leases, else all of them).
    pub fn new(keys: usize) -> Leases {
        Leases {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            per_shard: keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, key: &[u8; 16]) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Spends a leased token of `key`, or repeats a refusal still in force; otherwise says to
    /// ask Redis, with what an expired lease left unspent.
    pub fn take(&self, key: &[u8; 16], now: Instant) -> Take {
        let Ok(mut map) = self.shard(key).lock() else {
            return Take::Ask { give_back: 0 };
        };
        let Some(lease) = map.get_mut(key) else {
            return Take::Ask { give_back: 0 };
        };
        if now < lease.until {
            if lease.tokens > 0 {
                lease.tokens -= 1;
                let remaining = lease.shared.remaining + lease.tokens;
                return Take::Local(Decision {
                    remaining: remaining.min(lease.shared.limit),
                    ..lease.shared
                });
            }
            if !lease.shared.allowed {
                let retry = lease.until.saturating_duration_since(now);
                return Take::Local(Decision {
                    retry_after: retry.as_secs().max(1),
                    ..lease.shared
                });
            }
        }
        let give_back = lease.tokens;
        map.remove(key);
        Take::Ask { give_back }
    }

    /// Keeps what Redis granted: `granted` tokens of which the caller spends one, or a refusal
    /// until `retry`.
    pub fn store(
        &self,
        key: [u8; 16],
        granted: u64,
        shared: Decision,
        retry: Duration,
        now: Instant,
    ) {
        let Ok(mut map) = self.shard(&key).lock() else {
            return;
        };
        if map.len() >= self.per_shard && !map.contains_key(&key) {
            map.retain(|_, l| now < l.until);
            if map.len() >= self.per_shard {
                map.clear();
            }
        }
        // Tokens another request of this key leased meanwhile are kept, also through a refusal.
        let held = map
            .get(&key)
            .filter(|l| now < l.until)
            .map_or(0, |l| l.tokens);
        let lease = match granted {
            0 if held > 0 => return,
            0 => Lease {
                tokens: 0,
                until: now + retry.max(Duration::from_millis(1)),
                shared,
            },
            _ => Lease {
                tokens: held + granted - 1,
                until: now + LEASE_TTL,
                shared,
            },
        };
        map.insert(key, lease);
    }
}

#[cfg(test)]
mod tests;
