//! Rate limits per route: token bucket or sliding window, per key, in this process or shared
//! through Redis. The effective policy of a route is the global `rate_limit` overridden field by
//! field by its group's, then its own. Each route has its own buckets.

mod lease;
mod local;
mod policy;
mod redis;

pub use lease::{Leases, Take, LEASE_TTL};
pub use local::{Algorithm, Decision, LocalStore, MAX_KEYS};
pub use policy::{KeyPart, Level};

use crate::config::file::{OnStoreError, RateLimitAlgorithm, StoreKind};
use crate::config::units::Rate;
use crate::ip_text::IpText;
use crate::outcome::{Denial, ErrorCode};
use crate::redis::RedisHandle;
use redis::RedisLimiter;
use std::cell::RefCell;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The defaults of the contract for fields no level sets.
const DEFAULT_RATE: Rate = Rate {
    count: 100,
    per: Duration::from_secs(1),
};
const DEFAULT_BURST: u64 = 200;

/// What a key can be made of, for one request.
pub struct KeyInputs<'a> {
    pub client_ip: Option<IpAddr>,
    pub user: Option<&'a str>,
    pub path: &'a str,
    pub route: &'a str,
    pub headers: &'a http::HeaderMap,
}

/// What the limiter decided about one request.
pub struct Admission {
    /// For the `RateLimit-*` headers; `None` when the store failed (or never limits).
    pub headers: Option<Decision>,
    /// The 429, when the request is over the limit.
    pub denial: Option<Denial>,
}

enum Store {
    Local(LocalStore),
    Redis(RedisLimiter),
}

pub struct Limiter {
    /// The merged policy it was built from; an unchanged policy keeps the limiter on reload.
    pub policy: Level,
    algorithm: Algorithm,
    key: Vec<KeyPart>,
    store: Store,
    deny_on_error: bool,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limiter")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

thread_local! {
    static KEY: RefCell<Vec<u8>> = RefCell::new(Vec::with_capacity(128));
}

impl Limiter {
    /// What this limiter enforces, every default filled in (for the admin API).
    pub fn effective(&self) -> serde_json::Value {
        let (algorithm, rate, burst) = match self.algorithm {
            Algorithm::TokenBucket { burst, .. } => (
                "token_bucket",
                self.policy.rate.unwrap_or(DEFAULT_RATE),
                Some(burst as u64),
            ),
            Algorithm::SlidingWindow { .. } => (
                "sliding_window",
                self.policy.rate.unwrap_or(DEFAULT_RATE),
                None,
            ),
        };
        serde_json::json!({
            "algorithm": algorithm,
            "rate": rate,
            "burst": burst,
            "key": self.key.iter().map(KeyPart::name).collect::<Vec<_>>(),
            "store": match self.store {
                Store::Local(_) => "memory",
                Store::Redis(_) => "redis",
            },
            "on_store_error": if self.deny_on_error { "deny" } else { "allow" },
        })
    }

    /// Builds the limiter of `route` from its merged policy. `None` when the policy names the
    /// redis store and the file has no `redis` section (reported by [`Level::parse`]).
    pub fn build(route: &str, policy: &Level, redis: Option<&Arc<RedisHandle>>) -> Option<Limiter> {
        let rate = policy.rate.unwrap_or(DEFAULT_RATE);
        let per_sec = rate.count as f64 / rate.per.as_secs_f64();
        let algorithm = match policy.algorithm.unwrap_or(RateLimitAlgorithm::TokenBucket) {
            RateLimitAlgorithm::TokenBucket => Algorithm::TokenBucket {
                rate: per_sec,
                burst: policy.burst.unwrap_or(DEFAULT_BURST) as f64,
            },
            RateLimitAlgorithm::SlidingWindow => Algorithm::SlidingWindow {
                limit: rate.count,
                window: rate.per,
            },
        };
        let key = policy
            .key
            .clone()
            .unwrap_or_else(|| vec![KeyPart::ClientIp, KeyPart::User, KeyPart::Path]);
        let store = match policy.store.unwrap_or_default() {
            StoreKind::Memory => Store::Local(LocalStore::new(MAX_KEYS)),
            StoreKind::Redis => Store::Redis(RedisLimiter {
                redis: Arc::clone(redis?),
                prefix: format!("gw:rl:{route}:"),
                leases: lease::Leases::new(MAX_KEYS),
                failing: std::sync::atomic::AtomicBool::new(false),
            }),
        };
        Some(Limiter {
            policy: policy.clone(),
            algorithm,
            key,
            store,
            deny_on_error: policy.on_store_error == Some(OnStoreError::Deny),
        })
    }

    /// True when this limiter was built from `policy` on the same store.
    pub fn same(&self, policy: &Level, redis: Option<&Arc<RedisHandle>>) -> bool {
        self.policy == *policy
            && match (&self.store, redis) {
                (Store::Local(_), _) => true,
                (Store::Redis(r), Some(h)) => Arc::ptr_eq(&r.redis, h),
                (Store::Redis(_), None) => false,
            }
    }

    /// Counts the request and decides.
    pub async fn admit(&self, inputs: &KeyInputs<'_>) -> Admission {
        let decision = self.check(inputs).await;
        let denial = (!decision.is_none_or(|d| d.allowed)).then(|| {
            let retry_after = decision.map_or(1, |d| d.retry_after);
            Denial::retry_after(ErrorCode::RateLimited, retry_after)
        });
        Admission {
            headers: decision.filter(|d| d.limit > 0),
            denial,
        }
    }

    /// Counts the request and decides. `None` when the shared store failed and the policy is
    /// `allow` (no headers then); a failed store with `deny` refuses.
    async fn check(&self, inputs: &KeyInputs<'_>) -> Option<Decision> {
        match &self.store {
            Store::Local(store) => KEY.with(|buf| {
                let mut buf = buf.borrow_mut();
                self.write_key(inputs, &mut buf);
                Some(store.check(self.algorithm, &buf, Instant::now()))
            }),
            Store::Redis(store) => {
                let mut key = Vec::with_capacity(64);
                self.write_key(inputs, &mut key);
                match store.check(self.algorithm, &key).await {
                    Ok(d) => {
                        if store.answered() {
                            log::info!("rate limit store: answering again");
                        }
                        Some(d)
                    }
                    Err(e) => {
                        // Once per run of failures, not once per request.
                        if store.failed() {
                            log::warn!(
                                "rate limit store: {e}; {} until it answers",
                                if self.deny_on_error {
                                    "denying"
                                } else {
                                    "allowing"
                                }
                            );
                        }
                        self.deny_on_error.then_some(Decision {
                            allowed: false,
                            limit: 0,
                            remaining: 0,
                            reset: 1,
                            retry_after: 1,
                        })
                    }
                }
            }
        }
    }

    fn write_key(&self, inputs: &KeyInputs<'_>, out: &mut Vec<u8>) {
        write_key(&self.key, inputs, out);
    }
}

/// The key: each part prefixed with its length, so no two different inputs give one key
/// (`("ab", "c")` and `("a", "bc")` differ, whatever bytes the parts hold).
pub fn write_key(parts: &[KeyPart], inputs: &KeyInputs<'_>, out: &mut Vec<u8>) {
    out.clear();
    for part in parts {
        let start = out.len();
        out.extend_from_slice(&[0; 4]);
        match part {
            KeyPart::ClientIp => {
                if let Some(ip) = inputs.client_ip {
                    out.extend_from_slice(IpText::new(ip).as_str().as_bytes());
                }
            }
            KeyPart::User => out.extend_from_slice(inputs.user.unwrap_or("").as_bytes()),
            KeyPart::Path => out.extend_from_slice(inputs.path.as_bytes()),
            KeyPart::Route => out.extend_from_slice(inputs.route.as_bytes()),
            KeyPart::Header(name) => {
                for v in inputs.headers.get_all(name) {
                    out.extend_from_slice(v.as_bytes());
                    out.push(b',');
                }
            }
        }
        let len = (out.len() - start - 4) as u32;
        out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    }
}
