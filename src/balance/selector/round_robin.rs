//! `round_robin`: even rotation over the healthy members, weights ignored.

use super::{members, Sweep};
use pingora::lb::selection::{BackendIter, BackendSelection};
use pingora::lb::Backend;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct RoundRobin {
    backends: Box<[Backend]>,
    next: AtomicUsize,
}

/// Every `next()` takes the next slot of the shared rotation, so a member that is down passes
/// its turn on and the healthy ones still share the traffic exactly evenly.
pub struct RoundRobinIter {
    sel: Arc<RoundRobin>,
    turns: Sweep,
}

impl BackendSelection for RoundRobin {
    type Iter = RoundRobinIter;
    type Config = ();

    fn build(backends: &BTreeSet<Backend>) -> Self {
        RoundRobin {
            backends: members(backends),
            next: AtomicUsize::new(0),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> RoundRobinIter {
        RoundRobinIter {
            sel: Arc::clone(self),
            turns: Sweep::new(0, self.backends.len()),
        }
    }
}

impl BackendIter for RoundRobinIter {
    fn next(&mut self) -> Option<&Backend> {
        self.turns.step()?;
        let n = self.sel.backends.len();
        let i = self.sel.next.fetch_add(1, Ordering::Relaxed) % n;
        self.sel.backends.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{members, port};
    use super::super::Selector;
    use crate::config::file::Strategy;

    #[test]
    fn rotates_evenly_over_healthy_members() {
        let sel = Selector::build(&Strategy::RoundRobin, &members(&[1, 5, 1]), None);
        let picks: Vec<_> = (0..6)
            .map(|_| port(&sel, b"", &[]).expect("pick"))
            .collect();
        assert_eq!(picks, [1, 2, 3, 1, 2, 3]);
        let mut counts = [0; 4];
        for _ in 0..300 {
            counts[port(&sel, b"", &[2]).expect("pick") as usize] += 1;
        }
        assert_eq!(counts, [0, 150, 0, 150]);
        assert_eq!(port(&sel, b"", &[1, 2, 3]), None);
    }
}
