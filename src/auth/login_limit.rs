//! Limits on the token endpoints, so guessing passwords is slow and cannot exhaust the process:
//!
//! - failed logins per (username, client IP): at most `per_user` per window; a success clears the
//!   count. Exact counts in a bounded table keyed by a keyed hash (fixed size whatever the
//!   username's length); when full, the oldest entries go first, never the whole table;
//! - failed logins per client IP (`per_ip`), and refreshes per client IP, in pingora-limits' fixed
//!   memory estimators (no per-key state at all);
//! - password checks running at once: at most one per CPU, 8 at most (argon2 takes ~19 MiB
//!   each); a login that cannot start one within a second gets 503 `store_unavailable`.

use crate::config::units::Rate as RateSetting;
use pingora_limits::rate::Rate;
use std::collections::hash_map::RandomState;
use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Failed logins per (username, client IP) in one window, by default.
pub const DEFAULT_PER_USER: RateSetting = RateSetting {
    count: 5,
    per: Duration::from_secs(60),
};
/// Failed logins per client IP in one window, by default.
pub const DEFAULT_PER_IP: RateSetting = RateSetting {
    count: 30,
    per: Duration::from_secs(60),
};
/// Refreshes per client IP in one window, by default.
pub const DEFAULT_REFRESH_PER_IP: RateSetting = RateSetting {
    count: 60,
    per: Duration::from_secs(60),
};
/// (username, client IP) pairs remembered at most.
const MAX_KEYS: usize = 100_000;
/// How long a login waits for a free password check before giving up.
const HASH_WAIT: Duration = Duration::from_secs(1);

/// The configured limits (`auth.login_limit`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginLimits {
    pub per_user: RateSetting,
    pub per_ip: RateSetting,
    pub refresh_per_ip: RateSetting,
}

impl Default for LoginLimits {
    fn default() -> Self {
        LoginLimits {
            per_user: DEFAULT_PER_USER,
            per_ip: DEFAULT_PER_IP,
            refresh_per_ip: DEFAULT_REFRESH_PER_IP,
        }
    }
}

/// Why a call was not let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// Over a limit; retry after this many seconds.
    Limited(u64),
    /// Every password check slot stayed busy.
    Busy,
}

struct Failures {
    /// Keyed hash of (username, IP) → start of its window and failures in it.
    counts: HashMap<u64, (Instant, u32)>,
    /// Keys in the order their windows started, for eviction (stale entries are skipped).
    order: VecDeque<(u64, Instant)>,
}

pub struct LoginLimiter {
    limits: LoginLimits,
    failures: Mutex<Failures>,
    hasher: RandomState,
    ip_failures: Rate,
    ip_refreshes: Rate,
    hashing: Arc<Semaphore>,
}

impl LoginLimiter {
    pub fn new(limits: LoginLimits) -> LoginLimiter {
        // About one check per CPU, and never more than 8 (152 MiB of argon2 memory).
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get().min(8));
        LoginLimiter {
            limits,
            failures: Mutex::new(Failures {
                counts: HashMap::new(),
                order: VecDeque::new(),
            }),
            hasher: RandomState::new(),
            ip_failures: Rate::new(limits.per_ip.per),
            ip_refreshes: Rate::new(limits.refresh_per_ip.per),
            hashing: Arc::new(Semaphore::new(cpus)),
        }
    }

    pub fn limits(&self) -> LoginLimits {
        self.limits
    }

    /// Counts a login for `username` from `ip` before its password is checked, so logins
    /// that run at once are all counted: `Err` when over a limit (and then nothing is counted).
    /// A success gives the count back ([`LoginLimiter::succeeded`]), so only failures stay.
    pub fn begin(&self, username: &str, ip: Option<IpAddr>) -> Result<(), Refused> {
        let per_ip = self.limits.per_ip;
        if let Some(ip) = ip {
            if self.ip_failures.observe(&ip, 1) > per_ip.count as isize {
                self.ip_failures.observe(&ip, -1);
                return Err(Refused::Limited(per_ip.per.as_secs().max(1)));
            }
        }
        let key = self.hasher.hash_one((username, ip));
        let Ok(mut table) = self.failures.lock() else {
            return Ok(());
        };
        let now = Instant::now();
        let per_user = self.limits.per_user;
        let (start, n) = match table.counts.get(&key).copied() {
            Some((start, n)) if now.duration_since(start) < per_user.per => (start, n),
            _ => (now, 0),
        };
        if n >= per_user.count as u32 {
            drop(table);
            if let Some(ip) = ip {
                self.ip_failures.observe(&ip, -1);
            }
            let left = per_user.per.saturating_sub(now.duration_since(start));
            return Err(Refused::Limited(left.as_secs().max(1)));
        }
        if start == now {
            table.make_room(now, per_user.per);
            table.order.push_back((key, now));
        }
        table.counts.insert(key, (start, n + 1));
        Ok(())
    }

    /// Waits (up to a second) for a password check slot; the check holds it until it ends.
    pub async fn hashing_slot(&self) -> Result<OwnedSemaphorePermit, Refused> {
        let acquire = Arc::clone(&self.hashing).acquire_owned();
        match tokio::time::timeout(HASH_WAIT, acquire).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(Refused::Busy),
        }
    }

    /// A successful login: its count is given back, and the count of its (username, IP)
    /// cleared.
    pub fn succeeded(&self, username: &str, ip: Option<IpAddr>) {
        self.give_back(username, ip, true);
    }

    /// A login that never got its password checked (no free slot): its count is given back.
    pub fn abandoned(&self, username: &str, ip: Option<IpAddr>) {
        self.give_back(username, ip, false);
    }

    fn give_back(&self, username: &str, ip: Option<IpAddr>, clear: bool) {
        if let Some(ip) = ip {
            self.ip_failures.observe(&ip, -1);
        }
        let key = self.hasher.hash_one((username, ip));
        if let Ok(mut table) = self.failures.lock() {
            match table.counts.get_mut(&key) {
                Some(_) if clear => {
                    table.counts.remove(&key);
                }
                Some((_, n)) => *n = n.saturating_sub(1),
                None => {}
            }
        }
    }

    /// Counts a refresh from `ip`; `Err` when over the limit.
    pub fn refresh(&self, ip: Option<IpAddr>) -> Result<(), Refused> {
        let limit = self.limits.refresh_per_ip;
        match ip {
            Some(ip) if self.ip_refreshes.observe(&ip, 1) > limit.count as isize => {
                Err(Refused::Limited(limit.per.as_secs().max(1)))
            }
            _ => Ok(()),
        }
    }
}

impl Failures {
    /// Drops entries from the front of the order until there is room: stale order entries and
    /// expired windows first, and when the table is full of live windows the oldest of them.
    fn make_room(&mut self, now: Instant, window: Duration) {
        while let Some(&(key, start)) = self.order.front() {
            let current = self.counts.get(&key).map(|(s, _)| *s) == Some(start);
            let expired = now.duration_since(start) >= window;
            if current && !expired && self.counts.len() < MAX_KEYS {
                break;
            }
            self.order.pop_front();
            if current {
                self.counts.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_user: u64, per_ip: u64) -> LoginLimiter {
        LoginLimiter::new(LoginLimits {
            per_user: RateSetting {
                count: per_user,
                per: Duration::from_secs(60),
            },
            per_ip: RateSetting {
                count: per_ip,
                per: Duration::from_secs(60),
            },
            refresh_per_ip: RateSetting {
                count: 2,
                per: Duration::from_secs(60),
            },
        })
    }

    #[test]
    fn only_failures_count_and_a_success_clears_them() {
        let l = limiter(3, 100);
        let ip = "192.0.2.1".parse().ok();
        for _ in 0..10 {
            assert_eq!(l.begin("ann", ip), Ok(()), "successes never limit");
            l.succeeded("ann", ip);
        }
        // Counted when they begin: three at once use the whole allowance.
        for _ in 0..3 {
            assert_eq!(l.begin("ann", ip), Ok(()));
        }
        assert!(matches!(l.begin("ann", ip), Err(Refused::Limited(_))));
        assert_eq!(l.begin("bob", ip), Ok(()), "per user");
        l.succeeded("ann", ip);
        assert_eq!(l.begin("ann", ip), Ok(()));
        // One that never got its check is given back.
        assert_eq!(l.begin("ann", ip), Ok(()));
        assert_eq!(l.begin("ann", ip), Ok(()));
        assert!(l.begin("ann", ip).is_err());
        l.abandoned("ann", ip);
        assert_eq!(l.begin("ann", ip), Ok(()));
    }

    #[test]
    fn failures_per_ip_add_up_across_usernames() {
        let l = limiter(100, 5);
        let ip = "192.0.2.9".parse().ok();
        for i in 0..5 {
            assert_eq!(l.begin(&format!("user{i}"), ip), Ok(()));
        }
        assert!(matches!(l.begin("someone", ip), Err(Refused::Limited(_))));
        assert_eq!(l.begin("someone", "192.0.2.10".parse().ok()), Ok(()));
    }

    #[test]
    fn a_flood_of_usernames_does_not_reset_the_one_under_attack() {
        let l = limiter(3, u64::MAX / 2);
        let victim = "192.0.2.1".parse().ok();
        for _ in 0..3 {
            let _ = l.begin("victim", victim);
        }
        for i in 0..MAX_KEYS / 2 {
            let _ = l.begin(&format!("spray{i}"), "198.51.100.1".parse().ok());
        }
        assert!(matches!(
            l.begin("victim", victim),
            Err(Refused::Limited(_))
        ));
        for i in 0..MAX_KEYS {
            let _ = l.begin(&format!("more{i}"), "198.51.100.2".parse().ok());
        }
        let table = l.failures.lock().expect("lock");
        assert!(table.counts.len() <= MAX_KEYS, "{}", table.counts.len());
        assert!(table.order.len() <= MAX_KEYS + 1, "{}", table.order.len());
    }

    #[test]
    fn refreshes_per_ip_are_limited() {
        let l = limiter(5, 5);
        let ip = "192.0.2.3".parse().ok();
        assert_eq!(l.refresh(ip), Ok(()));
        assert_eq!(l.refresh(ip), Ok(()));
        assert!(matches!(l.refresh(ip), Err(Refused::Limited(_))));
    }
}
