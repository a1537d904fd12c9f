//! Load-balancing strategies a program adds by name, beside the five built-in ones.

use std::net::SocketAddr;
use std::sync::Arc;

/// One backend of an upstream, as a strategy sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    pub addr: SocketAddr,
    /// The backend's `weight` (1 when not set).
    pub weight: usize,
}

/// A load-balancing strategy (`upstreams.<u>.strategy: <name>`). It is built over every
/// member of the upstream, healthy or not, in a fixed order (by address), and rebuilt only when
/// the upstream's config changes: a reload that keeps the upstream keeps the built strategy and
/// its state. Health checks, outlier ejection and the circuit breaker apply as they do to the
/// built-in strategies: the gateway offers a pick's members to `accept`, which refuses those
/// that are down, ejected or already tried.
pub trait Balancer: Send + Sync + 'static {
    fn build(members: &[Member]) -> Self
    where
        Self: Sized;

    /// The index (into `members`) of the first member in this strategy's order of preference
    /// that `accept` takes, `None` when it takes none. Offer every member before giving up,
    /// so a pick finds a healthy backend when there is one. `key` is the client's address
    /// bytes (for affinity).
    fn pick(&self, key: &[u8], accept: &mut dyn FnMut(usize) -> bool) -> Option<usize>;
}

/// A built strategy of any type.
pub(crate) type Built = Arc<dyn Pick>;

pub(crate) trait Pick: Send + Sync {
    fn pick(&self, key: &[u8], accept: &mut dyn FnMut(usize) -> bool) -> Option<usize>;
}

impl<B: Balancer> Pick for B {
    fn pick(&self, key: &[u8], accept: &mut dyn FnMut(usize) -> bool) -> Option<usize> {
        Balancer::pick(self, key, accept)
    }
}

/// Builds a registered strategy over an upstream's members.
#[derive(Clone, Copy)]
pub(crate) struct BalancerFactory(fn(&[Member]) -> Built);

impl BalancerFactory {
    pub fn of<B: Balancer>() -> BalancerFactory {
        BalancerFactory(|members| Arc::new(B::build(members)))
    }

    pub fn build(&self, members: &[Member]) -> Built {
        (self.0)(members)
    }
}
