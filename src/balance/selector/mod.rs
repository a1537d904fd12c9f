//! The five strategies, each a pingora `BackendSelection`. Their iterators yield a first choice,
//! then every other member once, so a pick always finds a healthy backend if there is one.
//!
//! Picks go through [`Selector::pick`] rather than `LoadBalancer::select_with`: the latter wraps
//! the iterator in `UniqueIterator`, whose `HashSet` allocates on every pick. Our iterators never
//! repeat a member before the sweep ends, so no de-duplication is needed.

mod ip_hash;
mod least_conn;
mod random;
mod round_robin;
mod smooth_weighted;

pub use ip_hash::IpHash;
pub use least_conn::LeastConn;
pub use random::{RandomConfig, WeightedRandom};
pub use round_robin::RoundRobin;
pub use smooth_weighted::SmoothWeighted;

use super::stats::BackendStats;
use crate::config::file::Strategy;
use pingora::lb::selection::{BackendIter, BackendSelection};
use pingora::lb::Backend;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;

/// A built selector of any strategy.
pub enum Selector {
    RoundRobin(Arc<RoundRobin>),
    Weighted(Arc<SmoothWeighted>),
    LeastConn(Arc<LeastConn>),
    IpHash(Arc<IpHash>),
    Random(Arc<WeightedRandom>),
    /// A strategy a program registered, over the members in the set's order.
    Custom(crate::plugin::BuiltBalancer, Box<[Backend]>),
}

/// The backend a pick chose.
pub struct Picked {
    pub addr: SocketAddr,
    pub stats: Arc<BackendStats>,
}

impl Selector {
    /// Builds the selector for `strategy` over every member (healthy or not). `seed` fixes the
    /// random strategy's sequence (tests).
    pub fn build(strategy: &Strategy, members: &BTreeSet<Backend>, seed: Option<u64>) -> Selector {
        match strategy {
            Strategy::RoundRobin => Selector::RoundRobin(Arc::new(RoundRobin::build(members))),
            Strategy::WeightedRound => Selector::Weighted(Arc::new(SmoothWeighted::build(members))),
            Strategy::LeastConn => Selector::LeastConn(Arc::new(LeastConn::build(members))),
            Strategy::IpHash => Selector::IpHash(Arc::new(IpHash::build(members))),
            Strategy::Random => Selector::Random(Arc::new(WeightedRandom::build_with_config(
                members,
                &RandomConfig { seed },
            ))),
            Strategy::Custom(name) => match crate::plugin::registry().balancer_factory(name) {
                Some(factory) => {
                    let set: Box<[Backend]> = members.iter().cloned().collect();
                    let list: Vec<crate::plugin::Member> = set
                        .iter()
                        .filter_map(|b| {
                            Some(crate::plugin::Member {
                                addr: *b.as_inet()?,
                                weight: b.weight,
                            })
                        })
                        .collect();
                    Selector::Custom(factory.build(&list), set)
                }
                // Reported by `balance::build`; a snapshot with it is never made.
                None => Selector::RoundRobin(Arc::new(RoundRobin::build(members))),
            },
        }
    }

    /// The first member the strategy offers that `accept` takes. `key` is the client address
    /// bytes (used by `ip_hash` only). No allocation.
    pub fn pick(&self, key: &[u8], accept: impl Fn(&Backend) -> bool) -> Option<Picked> {
        match self {
            Selector::RoundRobin(s) => first(s.iter(key), accept),
            Selector::Weighted(s) => first(s.iter(key), accept),
            Selector::LeastConn(s) => first(s.iter(key), accept),
            Selector::IpHash(s) => first(s.iter(key), accept),
            Selector::Random(s) => first(s.iter(key), accept),
            Selector::Custom(s, members) => {
                let i = s.pick(key, &mut |i| members.get(i).is_some_and(&accept))?;
                let b = members.get(i)?;
                Some(Picked {
                    addr: *b.as_inet()?,
                    stats: stats_of(b)?,
                })
            }
        }
    }
}

fn first<I: BackendIter>(mut iter: I, accept: impl Fn(&Backend) -> bool) -> Option<Picked> {
    while let Some(b) = iter.next() {
        if accept(b) {
            return Some(Picked {
                addr: *b.as_inet()?,
                stats: stats_of(b)?,
            });
        }
    }
    None
}

/// The counters a member carries in its extensions (set by `Upstream::build`).
pub fn stats_of(b: &Backend) -> Option<Arc<BackendStats>> {
    b.ext.get::<Arc<BackendStats>>().cloned()
}

/// Members in a fixed order (the set's, by address) with their weights.
fn members(set: &BTreeSet<Backend>) -> Box<[Backend]> {
    set.iter().cloned().collect()
}

/// Selectors whose iterator is a [`SweepIter`]: a first choice, then everyone else in order.
pub trait Members {
    fn members(&self) -> &[Backend];
}

/// Member `start` first, then every other member once.
pub struct SweepIter<S> {
    sel: Arc<S>,
    sweep: Sweep,
}

impl<S: Members> SweepIter<S> {
    fn new(sel: &Arc<S>, start: usize) -> SweepIter<S> {
        SweepIter {
            sweep: Sweep::new(start, sel.members().len()),
            sel: Arc::clone(sel),
        }
    }
}

impl<S: Members> BackendIter for SweepIter<S> {
    fn next(&mut self) -> Option<&Backend> {
        let i = self.sweep.step()?;
        self.sel.members().get(i)
    }
}

/// Yields `start`, `start + 1`, … once each, wrapping: the sweep every iterator ends with.
struct Sweep {
    next: usize,
    left: usize,
    len: usize,
}

impl Sweep {
    fn new(start: usize, len: usize) -> Sweep {
        Sweep {
            next: start,
            left: len,
            len,
        }
    }

    fn step(&mut self) -> Option<usize> {
        if self.left == 0 || self.len == 0 {
            return None;
        }
        self.left -= 1;
        let i = self.next % self.len;
        self.next = i + 1;
        Some(i)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// Members `127.0.0.1:1..=n` with the given weights and fresh counters.
    pub fn members(weights: &[usize]) -> BTreeSet<Backend> {
        weights
            .iter()
            .enumerate()
            .map(|(i, w)| {
                let addr = std::net::SocketAddr::from(([127, 0, 0, 1], i as u16 + 1));
                let mut b = Backend::new_with_weight(&addr.to_string(), *w).expect("valid address");
                b.ext.insert(Arc::new(BackendStats::new(addr)));
                b
            })
            .collect()
    }

    /// Port of the first accepted pick.
    pub fn port(sel: &Selector, key: &[u8], down: &[u16]) -> Option<u16> {
        sel.pick(key, |b| {
            !down.contains(&b.as_inet().map_or(0, |a| a.port()))
        })
        .map(|p| p.addr.port())
    }
}
