//! Per-backend counters that outlive selectors and reloads.

use async_trait::async_trait;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::Backend;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Live counters of one backend. Carried in `Backend::ext`, and handed from one build of an
/// upstream to the next for the same address, so a reload never resets them.
#[derive(Debug)]
pub struct BackendStats {
    addr: SocketAddr,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    failures: AtomicU64,
    last_check: Mutex<Option<CheckRecord>>,
    label: Box<str>,
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
            label: addr.to_string().into_boxed_str(),
        }
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address as text, for metric labels (made once, not per request).
    pub fn label(&self) -> &str {
        &self.label
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
