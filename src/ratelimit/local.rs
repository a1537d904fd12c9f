//! In-process limiter state: a sharded map (no global lock) of per-key states with a bound on
//! the number of keys. When a shard is full, states that have gone idle (a full bucket, an old
//! window: the same as no state at all) are dropped first; if that frees nothing, an eighth of
//! the shard goes, so a flood of distinct keys costs bounded memory and amortised O(1) time.

use std::collections::hash_map::RandomState;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 64;
/// Keys kept per limiter before eviction starts.
pub const MAX_KEYS: usize = 200_000;

/// What one decision tells the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    /// `RateLimit-Limit`: the bucket size, or the requests per window.
    pub limit: u64,
    pub remaining: u64,
    /// Seconds until the quota is whole again.
    pub reset: u64,
    /// Seconds until a request can pass (for `Retry-After`).
    pub retry_after: u64,
}

#[derive(Debug, Clone, Copy)]
pub enum Algorithm {
    /// `rate` tokens a second into a bucket of `burst`.
    TokenBucket { rate: f64, burst: f64 },
    /// `limit` requests per `window`, the previous window weighted by how much of it still
    /// overlaps the last `window`.
    SlidingWindow { limit: u64, window: Duration },
}

#[derive(Debug, Clone, Copy)]
enum State {
    Bucket { tokens: f64, last: Instant },
    Window { index: u64, prev: u64, curr: u64 },
}

/// Key bytes → state, for one shard.
/// Keys are kept as a 64-bit keyed hash, so a key costs the same memory however long the
/// path, header or user it was made of (the key of the hash is random per store, so clients
/// cannot aim for collisions).
type Shard = HashMap<u64, State>;

pub struct LocalStore {
    shards: Box<[Mutex<Shard>]>,
    hasher: RandomState,
    per_shard: usize,
    epoch: Instant,
}

impl LocalStore {
    pub fn new(max_keys: usize) -> LocalStore {
        LocalStore {
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
            hasher: RandomState::new(),
            per_shard: (max_keys / SHARDS).max(1),
            epoch: Instant::now(),
        }
    }

    /// Keys held now.
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().map_or(0, |m| m.len()))
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Counts one request for `key` and decides. Allocates only when a shard grows.
    pub fn check(&self, algorithm: Algorithm, key: &[u8], now: Instant) -> Decision {
        let key = self.hasher.hash_one(key);
        let shard = &self.shards[(key >> 58) as usize % SHARDS];
        let Ok(mut map) = shard.lock() else {
            // A poisoned shard means a panic elsewhere; do not turn it into an outage.
            return decide(algorithm, None, now, self.epoch).0;
        };
        if let Some(state) = map.get_mut(&key) {
            let (decision, next) = decide(algorithm, Some(*state), now, self.epoch);
            *state = next;
            return decision;
        }
        if map.len() >= self.per_shard {
            evict(&mut map, algorithm, now, self.epoch);
        }
        let (decision, state) = decide(algorithm, None, now, self.epoch);
        map.insert(key, state);
        decision
    }
}

fn evict(map: &mut Shard, algorithm: Algorithm, now: Instant, epoch: Instant) {
    let before = map.len();
    map.retain(|_, s| !idle(algorithm, *s, now, epoch));
    if map.len() == before {
        let drop: Vec<u64> = map.keys().take(before / 8 + 1).copied().collect();
        for k in drop {
            map.remove(&k);
        }
    }
}

/// True when the state carries no information any more (equal to a fresh key).
fn idle(algorithm: Algorithm, state: State, now: Instant, epoch: Instant) -> bool {
    match (algorithm, state) {
        (Algorithm::TokenBucket { rate, burst }, State::Bucket { tokens, last }) => {
            tokens + now.duration_since(last).as_secs_f64() * rate >= burst
        }
        (Algorithm::SlidingWindow { window, .. }, State::Window { index, .. }) => {
            window_index(now, epoch, window).0 > index + 1
        }
        _ => true,
    }
}

fn window_index(now: Instant, epoch: Instant, window: Duration) -> (u64, f64) {
    let elapsed = now.duration_since(epoch).as_nanos();
    let w = window.as_nanos().max(1);
    ((elapsed / w) as u64, (elapsed % w) as f64 / w as f64)
}

fn ceil_secs(secs: f64) -> u64 {
    secs.max(0.0).ceil() as u64
}

fn decide(
    algorithm: Algorithm,
    state: Option<State>,
    now: Instant,
    epoch: Instant,
) -> (Decision, State) {
    match algorithm {
        Algorithm::TokenBucket { rate, burst } => {
            let mut tokens = match state {
                Some(State::Bucket { tokens, last }) => {
                    (tokens + now.duration_since(last).as_secs_f64() * rate).min(burst)
                }
                _ => burst,
            };
            let allowed = tokens >= 1.0;
            if allowed {
                tokens -= 1.0;
            }
            let decision = Decision {
                allowed,
                limit: burst as u64,
                remaining: tokens.floor() as u64,
                reset: ceil_secs((burst - tokens) / rate),
                retry_after: if allowed {
                    0
                } else {
                    ceil_secs((1.0 - tokens) / rate).max(1)
                },
            };
            (decision, State::Bucket { tokens, last: now })
        }
        Algorithm::SlidingWindow { limit, window } => {
            let (index, frac) = window_index(now, epoch, window);
            let (prev, curr) = match state {
                Some(State::Window {
                    index: i,
                    prev,
                    curr,
                }) if i == index => (prev, curr),
                Some(State::Window { index: i, curr, .. }) if i + 1 == index => (curr, 0),
                _ => (0, 0),
            };
            let weighted = prev as f64 * (1.0 - frac);
            let allowed = weighted + curr as f64 + 1.0 <= limit as f64;
            let curr = curr + u64::from(allowed);
            let used = (weighted + curr as f64).ceil() as u64;
            let left_in_window = window.as_secs_f64() * (1.0 - frac);
            let decision = Decision {
                allowed,
                limit,
                remaining: limit.saturating_sub(used),
                reset: ceil_secs(left_in_window),
                retry_after: if allowed {
                    0
                } else {
                    ceil_secs(left_in_window).max(1)
                },
            };
            (decision, State::Window { index, prev, curr })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: Algorithm = Algorithm::TokenBucket {
        rate: 5.0,
        burst: 10.0,
    };

    #[test]
    fn token_bucket_burst_then_refill() {
        let store = LocalStore::new(1000);
        let t0 = Instant::now();
        let passed = (0..20)
            .filter(|_| store.check(BUCKET, b"k", t0).allowed)
            .count();
        assert_eq!(passed, 10);
        let d = store.check(BUCKET, b"k", t0);
        assert_eq!((d.allowed, d.remaining, d.retry_after), (false, 0, 1));
        // One second later five tokens are back.
        let t1 = t0 + Duration::from_secs(1);
        let passed = (0..20)
            .filter(|_| store.check(BUCKET, b"k", t1).allowed)
            .count();
        assert_eq!(passed, 5);
        // Other keys have their own bucket.
        assert!(store.check(BUCKET, b"other", t1).allowed);
    }

    #[test]
    fn sliding_window_weighs_the_previous_window() {
        let store = LocalStore::new(1000);
        let alg = Algorithm::SlidingWindow {
            limit: 10,
            window: Duration::from_secs(1),
        };
        let start = store.epoch + Duration::from_secs(5);
        assert_eq!(
            (0..30)
                .filter(|_| store.check(alg, b"k", start).allowed)
                .count(),
            10
        );
        // Three quarters into the next window, a quarter of the last window's 10 still counts.
        let later = start + Duration::from_millis(1750);
        let passed = (0..30)
            .filter(|_| store.check(alg, b"k", later).allowed)
            .count();
        assert_eq!(passed, 7);
    }

    #[test]
    fn a_flood_of_distinct_keys_stays_bounded() {
        let store = LocalStore::new(10_000);
        let now = Instant::now();
        for i in 0u32..1_000_000 {
            store.check(BUCKET, &i.to_le_bytes(), now);
        }
        assert!(store.len() <= 10_000, "{} keys held", store.len());
        assert!(
            store.len() > 5_000,
            "eviction is not wholesale: {}",
            store.len()
        );
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Request times in milliseconds after the start, in order.
        fn timeline() -> impl Strategy<Value = Vec<u64>> {
            prop::collection::vec(0u64..400, 1..200).prop_map(|gaps| {
                gaps.iter()
                    .scan(0, |t, g| {
                        *t += g;
                        Some(*t)
                    })
                    .collect()
            })
        }

        /// The times (ms after the store's epoch) at which one key's requests were let through.
        fn allowed_at(store: &LocalStore, alg: Algorithm, times: &[u64]) -> Vec<u64> {
            times
                .iter()
                .copied()
                .filter(|ms| {
                    let at = store.epoch + Duration::from_millis(*ms);
                    store.check(alg, b"k", at).allowed
                })
                .collect()
        }

        proptest! {
            #[test]
            fn a_token_bucket_never_allows_more_than_burst_plus_refill(
                times in timeline(),
                rate in 1u32..50,
                burst in 1u32..20,
            ) {
                let store = LocalStore::new(100);
                let alg = Algorithm::TokenBucket { rate: f64::from(rate), burst: f64::from(burst) };
                let t0 = store.epoch;
                let allowed = allowed_at(&store, alg, &times);
                // In any interval, at most the bucket plus what refilled during it.
                for (i, start) in allowed.iter().enumerate() {
                    for (j, end) in allowed.iter().enumerate().skip(i) {
                        let refill = (end - start) as f64 / 1000.0 * f64::from(rate);
                        prop_assert!(
                            (j - i + 1) as f64 <= f64::from(burst) + refill + 1e-6,
                            "{} allowed in {} ms (rate {}, burst {})", j - i + 1, end - start, rate, burst
                        );
                    }
                }
                // A request after the bucket had time to refill a token always passes.
                if let Some(last) = times.last() {
                    let later = t0 + Duration::from_millis(last + 1000 / u64::from(rate) + 1);
                    prop_assert!(store.check(alg, b"k", later).allowed);
                }
            }

            #[test]
            fn a_sliding_window_never_allows_more_than_the_limit_per_window(
                times in timeline(),
                limit in 1u64..15,
                window_ms in 100u64..3000,
            ) {
                let store = LocalStore::new(100);
                let window = Duration::from_millis(window_ms);
                let alg = Algorithm::SlidingWindow { limit, window };
                let allowed = allowed_at(&store, alg, &times);
                // Each fixed window takes at most `limit`...
                let mut per_window = std::collections::HashMap::new();
                for ms in &allowed {
                    *per_window.entry(ms / window_ms).or_insert(0u64) += 1;
                }
                prop_assert!(per_window.values().all(|n| *n <= limit), "{:?}", per_window);
                // ...and the weighted estimate keeps any window-long stretch under twice it.
                for (i, start) in allowed.iter().enumerate() {
                    let n = allowed[i..].iter().take_while(|t| **t < start + window_ms).count();
                    prop_assert!(n as u64 <= 2 * limit, "{} in one window", n);
                }
            }
        }
    }
}
