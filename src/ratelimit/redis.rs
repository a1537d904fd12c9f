//! Shared limits: Lua scripts run atomically by Redis with Redis' own clock, so every instance on
//! the same Redis draws from the same bucket or window. A token bucket is leased a few tokens at
//! a time (`lease.rs`); a sliding window costs one script per decision. Keys expire once their
//! state is idle.

use super::lease::{lease_size, Leases, Take};
use super::local::{Algorithm, Decision};
use crate::redis::{RedisError, RedisHandle};
use redis::Script;
use sha2::Digest;
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

static TOKEN_BUCKET: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local back = tonumber(ARGV[4])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(s[1])
local ts = tonumber(s[2])
if tokens == nil or ts == nil then
  tokens = burst
  ts = now
end
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate + back)
local granted = math.max(0, math.min(want, math.floor(tokens)))
tokens = tokens - granted
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
local full_ms = math.ceil((burst - tokens) / rate)
redis.call('PEXPIRE', KEYS[1], full_ms + 1000)
return {granted, math.floor(tokens), full_ms, math.ceil(math.max(0, 1 - tokens) / rate)}
",
    )
});

static SLIDING_WINDOW: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local index = math.floor(now / window)
local frac = (now % window) / window
local c = redis.call('HMGET', KEYS[1], tostring(index - 1), tostring(index))
local prev = tonumber(c[1]) or 0
local curr = tonumber(c[2]) or 0
local weighted = prev * (1 - frac)
local allowed = 0
if weighted + curr + 1 <= limit then
  curr = redis.call('HINCRBY', KEYS[1], tostring(index), 1)
  allowed = 1
end
redis.call('HDEL', KEYS[1], tostring(index - 2))
redis.call('PEXPIRE', KEYS[1], window * 2)
local left = math.ceil(window * (1 - frac))
return {allowed, math.max(0, limit - math.ceil(weighted + curr)), left, left}
",
    )
});

fn hex_byte(b: u8) -> [u8; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    [HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]
}

pub struct RedisLimiter {
    pub redis: Arc<RedisHandle>,
    /// `gw:rl:<route>:`
    pub prefix: String,
    /// Tokens of shared buckets held by this instance.
    pub leases: Leases,
    /// The last call failed (its policy applies); logged once per run of failures.
    pub failing: std::sync::atomic::AtomicBool,
}

impl RedisLimiter {
    /// Notes a failed call; true for the first of a run (the one worth a log line).
    pub fn failed(&self) -> bool {
        use std::sync::atomic::Ordering;
        !self.failing.load(Ordering::Relaxed) && !self.failing.swap(true, Ordering::Relaxed)
    }

    /// Notes an answer; true when it ends a run of failures.
    pub fn answered(&self) -> bool {
        use std::sync::atomic::Ordering;
        // Read first: a healthy store costs no shared write per request.
        self.failing.load(Ordering::Relaxed) && self.failing.swap(false, Ordering::Relaxed)
    }

    pub async fn check(&self, algorithm: Algorithm, key: &[u8]) -> Result<Decision, RedisError> {
        // A fixed-size key however long the inputs: the first 128 bits of SHA-256, the same on
        // every instance.
        let digest = sha2::Sha256::digest(key);
        let mut id = [0u8; 16];
        id.copy_from_slice(&digest[..16]);
        let mut now = Instant::now();
        // Held until this request's lease is stored: the key's other requests wait for it.
        let mut asking = None;
        let (script, a, b, want, give_back, limit) = match algorithm {
            Algorithm::TokenBucket { rate, burst } => {
                // Waiting for other requests' leases lasts at most the Redis timeout in all.
                let deadline = now + self.redis.timeout();
                let give_back = loop {
                    match self.leases.take(&id, now) {
                        Take::Local(decision) => return Ok(decision),
                        Take::Ask {
                            give_back,
                            asking: guard,
                        } => {
                            asking = Some(guard);
                            break give_back;
                        }
                        // Another request is asking for this key: its lease is shared.
                        Take::Wait(waiters) => {
                            let left = deadline.saturating_duration_since(now);
                            if left.is_zero() {
                                // Still asking after the Redis timeout: ask too.
                                break 0;
                            }
                            self.leases.wait(&id, &waiters, left).await;
                            now = Instant::now();
                        }
                    }
                };
                let want = lease_size(rate, burst);
                (
                    &*TOKEN_BUCKET,
                    rate / 1000.0,
                    burst,
                    want,
                    give_back,
                    burst as u64,
                )
            }
            Algorithm::SlidingWindow { limit, window } => (
                &*SLIDING_WINDOW,
                window.as_millis() as f64,
                limit as f64,
                1,
                0,
                limit,
            ),
        };
        let mut full = Vec::with_capacity(self.prefix.len() + 32);
        full.extend_from_slice(self.prefix.as_bytes());
        for b in id {
            full.extend_from_slice(&hex_byte(b));
        }
        let mut conn = self.redis.connection().await?;
        let mut call = script.prepare_invoke();
        call.key(full).arg(a).arg(b).arg(want).arg(give_back);
        let r: Vec<i64> = self.redis.run(call.invoke_async(&mut conn)).await?;
        let at = |i: usize| r.get(i).copied().unwrap_or(0).max(0) as u64;
        let secs = |ms: u64| ms.div_ceil(1000);
        let granted = at(0);
        let decision = Decision {
            allowed: granted > 0,
            limit,
            remaining: at(1),
            reset: secs(at(2)),
            retry_after: if granted > 0 { 0 } else { secs(at(3)).max(1) },
        };
        if let Algorithm::TokenBucket { .. } = algorithm {
            let retry = Duration::from_millis(at(3));
            self.leases.store(id, granted, decision, retry, now);
        }
        drop(asking);
        Ok(decision)
    }
}
