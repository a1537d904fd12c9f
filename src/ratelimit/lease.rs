//! Leases on shared token buckets: an instance takes a few tokens from Redis at once and spends
//! them locally, so a busy key costs one Redis round trip per lease instead of one per request.
//! Unused tokens go back to Redis with the next lease of that key once the lease has expired.
//! A refused lease is remembered until Redis said a token would be back, so a key over its
//! limit is refused locally meanwhile. One request at a time asks Redis for a key: requests of
//! that key arriving meanwhile wait for its lease (at most the Redis timeout) instead of each
//! making a round trip of its own, so a busy key costs one round trip per lease at any
//! concurrency. A stored lease wakes as many of the key's waiting requests as it has tokens,
//! and one more to ask for the next lease; the rest sleep on, so a lease of 20 tokens costs 21
//! wake-ups however many requests wait.
//!
//! Tokens are always taken from the shared bucket before they are spent, so the instances
//! together never admit more than the limit; what a lease holds and nobody spends (at most one
//! lease per key and instance) is admitted late or, for a key that goes quiet, not at all.

use super::local::Decision;
use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::Notify;

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

struct Lease {
    /// Tokens left to spend locally (0 with a refusal).
    tokens: u64,
    /// Until when they may be spent, or the refusal holds.
    until: Instant,
    /// What the shared bucket said with the lease, for the `RateLimit-*` headers.
    shared: Decision,
    /// The request of this instance asking Redis for this key's next lease, if one is (its
    /// number, see [`Asking`]).
    asker: Option<u64>,
    /// Where the key's requests wait while one asks; made by the first to wait.
    waiters: Option<Arc<Notify>>,
}

impl Lease {
    /// Nothing held yet, a request asking for it.
    fn asked(now: Instant, asker: u64) -> Lease {
        Lease {
            tokens: 0,
            until: now,
            shared: Decision {
                allowed: true,
                limit: 0,
                remaining: 0,
                reset: 0,
                retry_after: 0,
            },
            asker: Some(asker),
            waiters: None,
        }
    }

    /// Wakes `n` of the key's waiting requests, the longest waiting first.
    fn wake(&self, n: u64) {
        if let Some(waiters) = &self.waiters {
            for _ in 0..n {
                waiters.notify_one();
            }
        }
    }

    /// Wakes every waiting request of the key.
    fn wake_all(&self) {
        if let Some(waiters) = &self.waiters {
            waiters.notify_waiters();
        }
    }
}

/// What [`Leases::take`] decided.
pub enum Take<'a> {
    /// Decided locally.
    Local(Decision),
    /// Ask Redis for a lease, handing back `give_back` unused tokens. Until `asking` is dropped
    /// (or the lease stored), other requests of the key wait.
    Ask { give_back: u64, asking: Asking<'a> },
    /// Another request is asking Redis for this key: [`Leases::wait`] on these waiters, then
    /// take again.
    Wait(Arc<Notify>),
}

/// Key digest → lease, for one shard.
type Map = HashMap<[u8; 16], Lease>;

struct Shard {
    map: Mutex<Map>,
}

pub struct Leases {
    shards: Box<[Shard]>,
    per_shard: usize,
    hasher: RandomState,
    /// Numbers the requests that ask, so a request ends only its own asking.
    asks: AtomicU64,
}

/// A request asking Redis for a key's lease; dropping it without a stored lease (an error, a
/// timeout) lets the key's waiting requests go on.
pub struct Asking<'a> {
    leases: &'a Leases,
    key: [u8; 16],
    id: u64,
}

impl Drop for Asking<'_> {
    fn drop(&mut self) {
        let Ok(mut map) = self.leases.shard(&self.key).map.lock() else {
            return;
        };
        // The key's entry may have been dropped to make room and made again by another asker.
        if let Some(lease) = map.get_mut(&self.key).filter(|l| l.asker == Some(self.id)) {
            // Gave up without a lease: the longest waiting request asks next.
            lease.asker = None;
            lease.wake(1);
        }
    }
}

impl Leases {
    /// Room for about `keys` keys (a full shard drops its expired leases, else all of them).
    pub fn new(keys: usize) -> Leases {
        Leases {
            shards: (0..SHARDS)
                .map(|_| Shard {
                    map: Mutex::new(HashMap::new()),
                })
                .collect(),
            per_shard: keys.div_ceil(SHARDS).max(1),
            hasher: RandomState::new(),
            asks: AtomicU64::new(0),
        }
    }

    fn shard(&self, key: &[u8; 16]) -> &Shard {
        &self.shards[self.hasher.hash_one(key) as usize % SHARDS]
    }

    /// Spends a leased token of `key`, or repeats a refusal still in force; otherwise says to
    /// ask Redis (with what an expired lease left unspent), or to wait while another request
    /// of this instance asks.
    pub fn take(&self, key: &[u8; 16], now: Instant) -> Take<'_> {
        // Made only on the way out with `Ask`: dropping it ends the asking.
        let asking = |id| Asking {
            leases: self,
            key: *key,
            id,
        };
        let Ok(mut map) = self.shard(key).map.lock() else {
            return Take::Ask {
                give_back: 0,
                asking: asking(self.next_asker()),
            };
        };
        let Some(lease) = map.get_mut(key) else {
            self.make_room(&mut map, key, now);
            let id = self.next_asker();
            map.insert(*key, Lease::asked(now, id));
            drop(map);
            return Take::Ask {
                give_back: 0,
                asking: asking(id),
            };
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
        if lease.asker.is_some() {
            let waiters = lease.waiters.get_or_insert_with(Default::default);
            return Take::Wait(Arc::clone(waiters));
        }
        let give_back = std::mem::take(&mut lease.tokens);
        let id = self.next_asker();
        lease.asker = Some(id);
        drop(map);
        Take::Ask {
            give_back,
            asking: asking(id),
        }
    }

    fn next_asker(&self) -> u64 {
        self.asks.fetch_add(1, Ordering::Relaxed)
    }

    /// Waits on `waiters` (from [`Take::Wait`]) until this request is woken by a stored lease
    /// or an asker giving up, at most `limit`; at once when nobody is asking for `key` any more.
    pub async fn wait(&self, key: &[u8; 16], waiters: &Notify, limit: Duration) {
        let woken = waiters.notified();
        tokio::pin!(woken);
        // Registered before looking, so a lease stored in between is not missed.
        woken.as_mut().enable();
        // (The key's entry may have been dropped to make room and made again since: these
        // waiters are then not its waiters any more.)
        let asking = self.shard(key).map.lock().is_ok_and(|map| {
            map.get(key).is_some_and(|l| {
                l.asker.is_some()
                    && l.waiters
                        .as_ref()
                        .is_some_and(|w| std::ptr::eq(&**w, waiters))
            })
        });
        if asking {
            let _ = tokio::time::timeout(limit, woken).await;
        }
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
        let Ok(mut map) = self.shard(&key).map.lock() else {
            return;
        };
        self.make_room(&mut map, &key, now);
        // Tokens another request of this key leased meanwhile are kept, also through a refusal.
        let held = map
            .get(&key)
            .filter(|l| now < l.until)
            .map_or(0, |l| l.tokens);
        if granted == 0 && held > 0 {
            if let Some(kept) = map.get_mut(&key) {
                kept.asker = None;
                kept.wake(held + 1);
            }
            return;
        }
        let waiters = map.get_mut(&key).and_then(|l| l.waiters.take());
        let lease = if granted == 0 {
            Lease {
                tokens: 0,
                until: now + retry.max(Duration::from_millis(1)),
                shared,
                asker: None,
                waiters,
            }
        } else {
            Lease {
                tokens: held + granted - 1,
                until: now + LEASE_TTL,
                shared,
                asker: None,
                waiters,
            }
        };
        if granted == 0 {
            // Refused: every waiting request is refused locally.
            lease.wake_all();
        } else {
            // One waiting request per token, and one to ask for the next lease.
            lease.wake(lease.tokens + 1);
        }
        map.insert(key, lease);
    }

    /// Before a new key goes in: a full shard drops its expired leases, else all of them.
    fn make_room(&self, map: &mut Map, key: &[u8; 16], now: Instant) {
        if map.len() >= self.per_shard && !map.contains_key(key) {
            map.retain(|_, l| {
                let keep = now < l.until || l.asker.is_some();
                if !keep {
                    l.wake_all();
                }
                keep
            });
            if map.len() >= self.per_shard {
                // Waiting requests of the dropped keys take again (and ask).
                map.drain().for_each(|(_, l)| l.wake_all());
            }
        }
    }
}

#[cfg(test)]
mod tests;
