//! `weighted_round`: nginx's smooth weighted round robin. Each step adds every member's weight
//! to its current value, picks the largest, and takes the total off the winner, so picks are
//! interleaved (5:1:1 gives a a b a c a a, never a a a a a b c).

use super::{members, Sweep};
use pingora::lb::selection::{BackendIter, BackendSelection};
use pingora::lb::Backend;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

pub struct SmoothWeighted {
    backends: Box<[Backend]>,
    weights: Box<[i64]>,
    total: i64,
    current: Mutex<Box<[i64]>>,
}

impl SmoothWeighted {
    /// One SWRR step; the index of the winner.
    fn step(&self) -> usize {
        let Ok(mut current) = self.current.lock() else {
            return 0;
        };
        let mut best = 0;
        for (i, w) in self.weights.iter().enumerate() {
            current[i] += w;
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= self.total;
        best
    }
}

/// Each `next()` is one SWRR step, so a member that is down leaves the weights of the others in
/// charge; after as many steps as members, a plain sweep guarantees everyone is offered once.
pub struct SmoothWeightedIter {
    sel: Arc<SmoothWeighted>,
    steps: usize,
    sweep: Sweep,
}

impl BackendSelection for SmoothWeighted {
    type Iter = SmoothWeightedIter;
    type Config = ();

    fn build(backends: &BTreeSet<Backend>) -> Self {
        let backends = members(backends);
        let weights: Box<[i64]> = backends
            .iter()
            .map(|b| i64::try_from(b.weight).unwrap_or(i64::MAX / 1024))
            .collect();
        SmoothWeighted {
            total: weights.iter().sum(),
            current: Mutex::new(vec![0; weights.len()].into_boxed_slice()),
            weights,
            backends,
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> SmoothWeightedIter {
        SmoothWeightedIter {
            sel: Arc::clone(self),
            steps: self.backends.len(),
            sweep: Sweep::new(0, self.backends.len()),
        }
    }
}

impl BackendIter for SmoothWeightedIter {
    fn next(&mut self) -> Option<&Backend> {
        if self.steps > 0 {
            self.steps -= 1;
            let i = self.sel.step();
            return self.sel.backends.get(i);
        }
        let i = self.sweep.step()?;
        self.sel.backends.get(i)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{members, port};
    use super::super::Selector;
    use crate::config::file::Strategy;

    #[test]
    fn interleaves_like_nginx() {
        let sel = Selector::build(&Strategy::WeightedRound, &members(&[5, 1, 1]), None);
        let picks: Vec<_> = (0..14)
            .map(|_| port(&sel, b"", &[]).expect("pick"))
            .collect();
        assert_eq!(picks, [1, 1, 2, 1, 3, 1, 1, 1, 1, 2, 1, 3, 1, 1]);
    }

    #[test]
    fn shares_follow_weights_and_skip_down_members() {
        let sel = Selector::build(&Strategy::WeightedRound, &members(&[1, 3]), None);
        let picks: Vec<_> = (0..400)
            .map(|_| port(&sel, b"", &[]).expect("pick"))
            .collect();
        assert_eq!(picks.iter().filter(|p| **p == 1).count(), 100);
        // Smooth: every window of 4 consecutive picks holds exactly one pick of the light member.
        assert!(picks
            .windows(4)
            .all(|w| w.iter().filter(|p| **p == 1).count() == 1));
        // A heavy member that is down still lets the light one be found.
        let sel = Selector::build(&Strategy::WeightedRound, &members(&[1000, 1]), None);
        assert_eq!(port(&sel, b"", &[1]), Some(2));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// nginx's `ngx_http_upstream_get_peer`: add weights, take the first largest, subtract
        /// the total from it.
        fn nginx(weights: &[usize], picks: usize) -> Vec<u16> {
            let total: i64 = weights.iter().map(|w| *w as i64).sum();
            let mut current = vec![0i64; weights.len()];
            (0..picks)
                .map(|_| {
                    let mut best = 0;
                    for (i, w) in weights.iter().enumerate() {
                        current[i] += *w as i64;
                        if current[i] > current[best] {
                            best = i;
                        }
                    }
                    current[best] -= total;
                    best as u16 + 1
                })
                .collect()
        }

        proptest! {
            #[test]
            fn picks_follow_the_nginx_sequence(weights in prop::collection::vec(1usize..=10, 1..=6)) {
                let total: usize = weights.iter().sum();
                let sel = Selector::build(&crate::config::file::Strategy::WeightedRound, &members(&weights), None);
                let picks: Vec<u16> = (0..3 * total)
                    .map(|_| port(&sel, b"", &[]).expect("pick"))
                    .collect();
                prop_assert_eq!(&picks, &nginx(&weights, 3 * total));
                // Every full cycle of `total` picks gives each member exactly its weight.
                for cycle in picks.chunks(total) {
                    for (i, w) in weights.iter().enumerate() {
                        let n = cycle.iter().filter(|p| usize::from(**p) == i + 1).count();
                        prop_assert_eq!(n, *w);
                    }
                }
            }
        }
    }
}
