//! Passive health (outlier ejection): a backend whose requests fail `consecutive_errors` times in
//! a row is left out of picks for `base_ejection` × (how many times it was ejected in a row), at
//! most `max_ejection`, and never so that more than `max_ejection_percent` of the upstream (or its
//! last backend) is out. It comes back when the time is up, or when an active health check
//! passes. State lives in each backend's [`BackendStats`], so a reload keeps it.

use super::stats::BackendStats;
use crate::config::file::OutlierConfig;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

pub const DEFAULT_CONSECUTIVE_ERRORS: u32 = 5;
pub const DEFAULT_BASE_EJECTION: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_EJECTION: Duration = Duration::from_secs(300);
pub const DEFAULT_MAX_PERCENT: u8 = 50;

/// The compiled `outlier` settings of one upstream.
#[derive(Debug)]
pub struct OutlierPolicy {
    pub consecutive_errors: u32,
    pub base_ejection: Duration,
    pub max_ejection: Duration,
    pub max_percent: u8,
    /// One ejection decision at a time, so the percentage holds under concurrent failures.
    deciding: Mutex<()>,
}

/// A backend was just ejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ejection {
    pub addr: SocketAddr,
    pub duration: Duration,
}

impl OutlierPolicy {
    pub fn new(cfg: &OutlierConfig) -> OutlierPolicy {
        OutlierPolicy {
            consecutive_errors: cfg.consecutive_errors.unwrap_or(DEFAULT_CONSECUTIVE_ERRORS),
            base_ejection: cfg.base_ejection.map_or(DEFAULT_BASE_EJECTION, |d| d.0),
            max_ejection: cfg.max_ejection.map_or(DEFAULT_MAX_EJECTION, |d| d.0),
            max_percent: cfg.max_ejection_percent.unwrap_or(DEFAULT_MAX_PERCENT),
            deciding: Mutex::new(()),
        }
    }

    /// Records the outcome of one request to `backend` (one of `members`, which is only walked
    /// when an ejection is considered); returns the ejection it caused, if any.
    pub fn record<'a>(
        &self,
        backend: &BackendStats,
        failed: bool,
        members: impl Iterator<Item = &'a BackendStats>,
        now: u64,
    ) -> Option<Ejection> {
        if !failed {
            backend.outlier_success();
            return None;
        }
        if backend.ejected(now) || backend.outlier_failure() < self.consecutive_errors {
            return None;
        }
        let _one = self.deciding.lock().unwrap_or_else(|p| p.into_inner());
        if backend.ejected(now) {
            return None;
        }
        let (mut out, mut total) = (1, 0);
        for m in members {
            total += 1;
            out += usize::from(m.ejected(now));
        }
        if out >= total || out * 100 > usize::from(self.max_percent) * total {
            // Too many out already: it stays in, and the next failure asks again.
            return None;
        }
        let duration = backend.eject(now, self.base_ejection, self.max_ejection);
        Some(Ejection {
            addr: backend.addr(),
            duration,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(errors: u32, percent: u8) -> OutlierPolicy {
        OutlierPolicy::new(&OutlierConfig {
            consecutive_errors: Some(errors),
            base_ejection: Some(crate::config::units::PositiveDuration(Duration::from_secs(
                10,
            ))),
            max_ejection: Some(crate::config::units::PositiveDuration(Duration::from_secs(
                25,
            ))),
            max_ejection_percent: Some(percent),
        })
    }

    fn backends(n: u16) -> Vec<BackendStats> {
        (1..=n)
            .map(|p| BackendStats::new(([127, 0, 0, 1], p).into()))
            .collect()
    }

    #[test]
    fn consecutive_failures_eject_for_growing_times_and_a_success_resets_the_count() {
        let p = policy(3, 50);
        let all = backends(4);
        let members: Vec<&BackendStats> = all.iter().collect();
        let b = &all[0];
        let t = 1_000_000;
        assert_eq!(p.record(b, true, members.iter().copied(), t), None);
        assert_eq!(p.record(b, true, members.iter().copied(), t), None);
        assert_eq!(
            p.record(b, false, members.iter().copied(), t),
            None,
            "a success resets"
        );
        assert_eq!(p.record(b, true, members.iter().copied(), t), None);
        assert_eq!(p.record(b, true, members.iter().copied(), t), None);
        let first = p
            .record(b, true, members.iter().copied(), t)
            .expect("ejected");
        assert_eq!(first.duration, Duration::from_secs(10));
        assert!(b.ejected(t + 9_999) && !b.ejected(t + 10_000));
        // Back, fails again right away: twice as long; then capped at max_ejection.
        let t2 = t + 10_000;
        for _ in 0..3 {
            p.record(b, true, members.iter().copied(), t2);
        }
        assert_eq!(b.ejected_until(), t2 + 20_000);
        let t3 = t2 + 20_000;
        for _ in 0..3 {
            p.record(b, true, members.iter().copied(), t3);
        }
        assert_eq!(b.ejected_until(), t3 + 25_000);
        // A backend healthy for longer than max_ejection starts over at base_ejection.
        let t4 = t3 + 25_000 + 25_001;
        for _ in 0..3 {
            p.record(b, true, members.iter().copied(), t4);
        }
        assert_eq!(b.ejected_until(), t4 + 10_000);
    }

    #[test]
    fn never_more_than_the_percentage_nor_the_last_backend() {
        for (percent, why) in [(50, "2 of 2 is over 50%"), (100, "the last one stays")] {
            let p = policy(1, percent);
            let all = backends(2);
            let members = || all.iter();
            assert!(p.record(&all[0], true, members(), 1).is_some());
            assert!(p.record(&all[1], true, members(), 1).is_none(), "{why}");
        }
    }
}
