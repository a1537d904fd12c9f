//! Login attempts per username and client IP: at most `MAX_ATTEMPTS` a minute. Bounded memory:
//! past `MAX_KEYS` entries, expired windows are dropped, then the table is cleared.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub const MAX_ATTEMPTS: u32 = 5;
pub const WINDOW: Duration = Duration::from_secs(60);
const MAX_KEYS: usize = 100_000;

/// `(username, client IP)` → start of the current window and attempts in it.
type Attempts = HashMap<(String, Option<IpAddr>), (Instant, u32)>;

#[derive(Default)]
pub struct LoginLimiter(Mutex<Attempts>);

impl LoginLimiter {
    /// Counts an attempt; `Err(retry_after_secs)` when over the limit.
    pub fn attempt(&self, username: &str, ip: Option<IpAddr>) -> Result<(), u64> {
        let Ok(mut map) = self.0.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        if map.len() >= MAX_KEYS {
            map.retain(|_, (start, _)| now.duration_since(*start) < WINDOW);
            if map.len() >= MAX_KEYS {
                map.clear();
            }
        }
        let entry = map.entry((username.to_owned(), ip)).or_insert((now, 0));
        if now.duration_since(entry.0) >= WINDOW {
            *entry = (now, 0);
        }
        entry.1 += 1;
        if entry.1 > MAX_ATTEMPTS {
            let left = WINDOW.saturating_sub(now.duration_since(entry.0));
            return Err(left.as_secs().max(1));
        }
        Ok(())
    }
}
