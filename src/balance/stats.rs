//! Per-backend counters that outlive selectors and reloads.

use async_trait::async_trait;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::Backend;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Live counters of one backend. Carried in `Backend::ext`, and handed from one build of an
/// upstream to the next for the same address, so a reload never resets them.
#[derive(Debug)]
pub struct BackendStats {
    addr: SocketAddr,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    last_check: Mutex<Option<CheckRecord>>,
    /// Outlier ejection: failures in a row, the end of the latest ejection (Unix ms), and how
    /// many ejections came in a row (the next lasts that many times the base).
    consecutive_errors: AtomicU32,
    ejected_until: AtomicU64,
    ejections: AtomicU32,
    label: Box<str>,
    /// Its `backend_requests_total` series, bound on first use.
    counters: crate::metrics::BackendCounters,
}

/// Milliseconds since the Unix epoch (the clock of ejections and breakers).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The outcome of the latest active health check of a backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    pub at: SystemTime,
    /// `None` when it passed, else why it failed.
    pub error: Option<String>,
}

impl BackendStats {
    pub fn new(addr: SocketAddr) -> BackendStats {
        BackendStats {
            addr,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            last_check: Mutex::new(None),
            consecutive_errors: AtomicU32::new(0),
            ejected_until: AtomicU64::new(0),
            ejections: AtomicU32::new(0),
            label: addr.to_string().into_boxed_str(),
            counters: Default::default(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as text, for metric labels (made once, not per request).
    pub fn label(&self) -> &str {
        &self.label
    }

    /// Counts a try of `upstream` (the one these stats belong to) in `backend_requests_total`.
    pub fn count_try(&self, upstream: &str, status: &str) {
        self.counters.count(upstream, &self.label, status);
    }

    /// Requests sent to the backend and not finished yet.
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests sent to the backend since it was first configured (retries count once each).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Requests the backend failed: refused or broken connections, timeouts and 5xx answers.
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The latest active health check, if one ran.
    pub fn last_check(&self) -> Option<CheckRecord> {
        self.last_check
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Whether the backend is ejected at `now` (Unix ms).
    pub fn ejected(&self, now: u64) -> bool {
        self.ejected_until.load(Ordering::Relaxed) > now
    }

    /// The end of the latest ejection (Unix ms; 0 if never ejected).
    pub fn ejected_until(&self) -> u64 {
        self.ejected_until.load(Ordering::Relaxed)
    }

    pub fn outlier_success(&self) {
        // Read first: most requests succeed, and a store would bounce the cache line.
        if self.consecutive_errors.load(Ordering::Relaxed) != 0 {
            self.consecutive_errors.store(0, Ordering::Relaxed);
        }
    }

    /// Counts a failure; returns how many came in a row.
    pub fn outlier_failure(&self) -> u32 {
        self.consecutive_errors.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Ejects from `now` (Unix ms) for `base` × ejections in a row, at most `max`. A backend
    /// that stayed in for `max` since its last ejection starts over at `base`.
    pub fn eject(&self, now: u64, base: Duration, max: Duration) -> Duration {
        let max_ms = u64::try_from(max.as_millis()).unwrap_or(u64::MAX);
        if now.saturating_sub(self.ejected_until()) > max_ms {
            self.ejections.store(0, Ordering::Relaxed);
        }
        let n = self.ejections.fetch_add(1, Ordering::Relaxed) + 1;
        let duration = base.saturating_mul(n).min(max);
        let ms = u64::try_from(duration.as_millis()).unwrap_or(u64::MAX);
        self.ejected_until
            .store(now.saturating_add(ms), Ordering::Relaxed);
        self.consecutive_errors.store(0, Ordering::Relaxed);
        duration
    }

    /// Ends an ejection early (an active health check passed).
    fn uneject(&self, now: u64) {
        if self.ejected(now) {
            self.ejected_until.store(now, Ordering::Relaxed);
            self.consecutive_errors.store(0, Ordering::Relaxed);
        }
    }

    fn record_check(&self, error: Option<String>) {
        let record = CheckRecord {
            at: SystemTime::now(),
            error,
        };
        *self.last_check.lock().unwrap_or_else(|p| p.into_inner()) = Some(record);
    }
}

/// A health check that notes each probe's outcome in the backend's [`BackendStats`].
pub struct Recorded(pub Box<dyn HealthCheck + Send + Sync>);

#[async_trait]
impl HealthCheck for Recorded {
    async fn check(&self, target: &Backend) -> pingora::Result<()> {
        let result = self.0.check(target).await;
        if let Some(stats) = target.ext.get::<Arc<BackendStats>>() {
            stats.record_check(result.as_ref().err().map(|e| e.to_string()));
            if result.is_ok() {
                stats.uneject(now_ms());
            }
        }
        result
    }

    async fn health_status_change(&self, target: &Backend, healthy: bool) {
        self.0.health_status_change(target, healthy).await;
    }

    fn health_threshold(&self, success: bool) -> usize {
        self.0.health_threshold(success)
    }
}

/// Counts one request as in flight on a backend until dropped. The request context holds it, so
/// every way a request ends (answer, error, retry elsewhere, client gone) releases it.
#[derive(Debug)]
pub struct InFlight(Arc<BackendStats>);

impl InFlight {
    pub fn start(stats: Arc<BackendStats>) -> InFlight {
        stats.requests.fetch_add(1, Ordering::Relaxed);
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(stats)
    }

    pub fn stats(&self) -> &Arc<BackendStats> {
        &self.0
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guard_counts_and_releases() {
        let stats = Arc::new(BackendStats::new(([127, 0, 0, 1], 1).into()));
        let a = InFlight::start(stats.clone());
        let b = InFlight::start(stats.clone());
        assert_eq!((stats.in_flight(), stats.requests()), (2, 2));
        drop(a);
        assert_eq!(stats.in_flight(), 1);
        drop(b);
        assert_eq!((stats.in_flight(), stats.requests()), (0, 2));
    }
}
