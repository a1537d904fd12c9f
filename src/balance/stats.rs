//! Per-backend counters that outlive selectors and reloads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Live counters of one backend. Carried in `Backend::ext`, and handed from one build of an
/// upstream to the next for the same address, so a reload never resets them.
#[derive(Debug)]
pub struct BackendStats {
    addr: SocketAddr,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    label: Box<str>,
}

impl BackendStats {
    pub fn new(addr: SocketAddr) -> BackendStats {
        BackendStats {
            addr,
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
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
