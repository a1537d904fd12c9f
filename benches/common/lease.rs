//! One request of a busy key with a Redis limit, without Redis: a token spent from the
//! instance's lease, or, once the lease is spent, a new lease of 20 stored as Redis would
//! grant it. Shared by the lease bench and `tests/allocations.rs`.

use api_gateway::internals::{Decision, Leases, Take};
use std::time::{Duration, Instant};

/// Whether the request passed; `false` also when it would have waited for another asker.
pub fn spend_leased(leases: &Leases, key: &[u8; 16], now: Instant) -> bool {
    match leases.take(key, now) {
        Take::Local(decision) => decision.allowed,
        Take::Ask { asking, .. } => {
            let shared = Decision {
                allowed: true,
                limit: 1_000_000,
                remaining: 500_000,
                reset: 1,
                retry_after: 0,
            };
            leases.store(*key, 20, shared, Duration::ZERO, now);
            drop(asking);
            true
        }
        Take::Wait(_) => false,
    }
}
