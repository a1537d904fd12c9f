//! `random`: weighted random choice (a member with weight 3 is three times as likely as one with
//! weight 1). A seed makes the sequence reproducible for tests.

use super::{members, Members, SweepIter};
use pingora::lb::selection::BackendSelection;
use pingora::lb::Backend;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

#[derive(Debug, Clone, Copy, Default)]
pub struct RandomConfig {
    /// `None`: the thread-local generator; `Some`: one shared generator from this seed.
    pub seed: Option<u64>,
}

pub struct WeightedRandom {
    backends: Box<[Backend]>,
    /// Running sums of the weights; a draw below `cumulative[i]` picks member `i`.
    cumulative: Box<[u64]>,
    seeded: Option<Mutex<fastrand::Rng>>,
}

impl WeightedRandom {
    fn draw(&self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        if total == 0 {
            return 0;
        }
        let r = match &self.seeded {
            Some(rng) => rng.lock().map_or(0, |mut g| g.u64(..total)),
            None => fastrand::u64(..total),
        };
        self.cumulative.partition_point(|c| *c <= r)
    }
}

impl Members for WeightedRandom {
    fn members(&self) -> &[Backend] {
        &self.backends
    }
}

impl BackendSelection for WeightedRandom {
    /// One weighted draw, then every other member once.
    type Iter = SweepIter<WeightedRandom>;
    type Config = RandomConfig;

    fn build(backends: &BTreeSet<Backend>) -> Self {
        Self::build_with_config(backends, &RandomConfig::default())
    }

    fn build_with_config(backends: &BTreeSet<Backend>, config: &RandomConfig) -> Self {
        let backends = members(backends);
        let cumulative = backends
            .iter()
            .scan(0u64, |sum, b| {
                *sum = sum.saturating_add(b.weight as u64);
                Some(*sum)
            })
            .collect();
        WeightedRandom {
            backends,
            cumulative,
            seeded: config.seed.map(|s| Mutex::new(fastrand::Rng::with_seed(s))),
        }
    }

    fn iter(self: &Arc<Self>, _key: &[u8]) -> SweepIter<WeightedRandom> {
        SweepIter::new(self, self.draw())
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{members, port};
    use super::super::Selector;
    use crate::config::file::Strategy;

    #[test]
    fn seeded_draws_follow_weights() {
        let sel = Selector::build(&Strategy::Random, &members(&[1, 3]), Some(7));
        let again = Selector::build(&Strategy::Random, &members(&[1, 3]), Some(7));
        let picks: Vec<u16> = (0..4000)
            .map(|_| port(&sel, b"", &[]).expect("pick"))
            .collect();
        let repeat: Vec<u16> = (0..4000)
            .map(|_| port(&again, b"", &[]).expect("pick"))
            .collect();
        assert_eq!(picks, repeat, "same seed, same sequence");
        let heavy = picks.iter().filter(|p| **p == 2).count();
        assert!(
            (2850..=3150).contains(&heavy),
            "weight 3 of 4 got {heavy} of 4000"
        );
        assert!((0..50).all(|_| port(&sel, b"", &[2]) == Some(1)));
    }
}
