//! `least_conn`: the member with the fewest in-flight requests per unit of weight. Counts live
//! in `BackendStats` (outside the selector), so they survive rebuilds and reloads. Ties rotate.

use super::{members, stats_of, Members, SweepIter};
use crate::balance::stats::BackendStats;
use pingora::lb::selection::BackendSelection;
use pingora::lb::Backend;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct LeastConn {
    backends: Box<[Backend]>,
    stats: Box<[Arc<BackendStats>]>,
    weights: Box<[u64]>,
    rotate: AtomicUsize,
}

impl LeastConn {
    /// Index of the least loaded member, scanning from a rotating start so ties take turns.
    fn least_loaded(&self) -> usize {
        let n = self.backends.len();
        let start = self.rotate.fetch_add(1, Ordering::Relaxed) % n.max(1);
        let mut best = start;
        let mut best_load = self.stats.get(best).map_or(0, |s| s.in_flight() as u64);
        for k in 1..n {
            let i = (start + k) % n;
            let load = self.stats[i].in_flight() as u64;
            // load[i] / w[i] < load[best] / w[best], without division.
            if load.saturating_mul(self.weights[best]) < best_load.saturating_mul(self.weights[i]) {
                best = i;
                best_load = load;
            }
        }
        best
    }
}

impl Members for LeastConn {
    fn members(&self) -> &[Backend] {
        &self.backends
    }
}

impl BackendSelection for LeastConn {
    /// The least loaded member first, then the others in order.
    type Iter = SweepIter<LeastConn>;
    type Config = ();

    fn build(backends: &BTreeSet<Backend>) -> Self {
        let backends = members(backends);
        LeastConn {
            stats: backends
                .iter()
                .map(|b| {
                    stats_of(b).unwrap_or_else(|| {
                        let addr = b.as_inet().copied().unwrap_or(([0, 0, 0, 0], 0).into());
                        Arc::new(BackendStats::new(addr))
                    })
                })
                .collect(),
            weights: backends.iter().map(|b| b.weight.max(1) as u64).collect(),
            rotate: AtomicUsize::new(0),
            backends,
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> SweepIter<LeastConn> {
        let start = if self.backends.is_empty() {
            0
        } else {
            self.least_loaded()
        };
        SweepIter::new(self, start)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{members, port};
    use super::super::Selector;
    use crate::balance::stats::InFlight;
    use crate::config::file::Strategy;

    #[test]
    fn prefers_fewest_in_flight_per_weight() {
        let sel = Selector::build(&Strategy::LeastConn, &members(&[1, 1, 2]), None);
        let pick = |down: &[u16]| {
            sel.pick(b"", |b| {
                !down.contains(&b.as_inet().map_or(0, |a| a.port()))
            })
            .expect("pick")
        };
        // Idle: ties rotate over everyone.
        let mut seen: Vec<u16> = (0..3).map(|_| pick(&[]).addr.port()).collect();
        seen.sort();
        assert_eq!(seen, [1, 2, 3]);
        // Hold requests: 1 gets 2, 2 gets 1, 3 (weight 2) gets 2 → loads 2, 1, 1 per weight.
        let mut held = Vec::new();
        for (port_no, n) in [(1u16, 2), (2, 1), (3, 2)] {
            let others: Vec<u16> = [1, 2, 3].into_iter().filter(|p| *p != port_no).collect();
            for _ in 0..n {
                held.push(InFlight::start(pick(&others).stats));
            }
        }
        // 2 and 3 tie at 1 per weight; 1 (2 per weight) is never chosen.
        for _ in 0..10 {
            assert_ne!(port(&sel, b"", &[]), Some(1));
        }
        held.push(InFlight::start(pick(&[1, 3]).stats)); // 2 now has 2 → 2 per weight
        for _ in 0..10 {
            assert_eq!(port(&sel, b"", &[]), Some(3));
        }
        held.clear();
        // Released: ties rotate again, and a down member is skipped.
        assert!((0..10).all(|_| port(&sel, b"", &[3]) != Some(3)));
    }
}
