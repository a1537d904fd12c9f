//! `ip_hash`: consistent hashing (pingora's Ketama ring, weight = points) on the client IP, so
//! removing one of N members moves about 1/N of the clients.

use super::{members, Sweep};
use pingora::lb::selection::consistent::{KetamaHashing, OwnedNodeIterator};
use pingora::lb::selection::{BackendIter, BackendSelection};
use pingora::lb::Backend;
use std::collections::BTreeSet;
use std::sync::Arc;

/// Ring steps tried before falling back to a sweep of every member.
const RING_STEPS: usize = 64;

pub struct IpHash {
    ring: Arc<KetamaHashing>,
    backends: Box<[Backend]>,
}

/// The ring walk from the key's point, then every member once.
pub struct IpHashIter {
    ring: OwnedNodeIterator,
    ring_steps: usize,
    sel: Arc<IpHash>,
    sweep: Sweep,
}

impl BackendSelection for IpHash {
    type Iter = IpHashIter;
    type Config = ();

    fn build(backends: &BTreeSet<Backend>) -> Self {
        IpHash {
            ring: Arc::new(KetamaHashing::build(backends)),
            backends: members(backends),
        }
    }

    fn iter(self: &Arc<Self>, key: &[u8]) -> IpHashIter {
        IpHashIter {
            ring: self.ring.iter(key),
            ring_steps: RING_STEPS,
            sel: Arc::clone(self),
            sweep: Sweep::new(0, self.backends.len()),
        }
    }
}

impl BackendIter for IpHashIter {
    fn next(&mut self) -> Option<&Backend> {
        if self.ring_steps > 0 {
            self.ring_steps -= 1;
            if let Some(b) = self.ring.next() {
                // The ring hands out its own copy; return ours (members are sorted by
                // address, which is unique) so the borrow ends here.
                let addr = b.addr.clone();
                let found = self.sel.backends.binary_search_by(|m| m.addr.cmp(&addr));
                return found.ok().and_then(|i| self.sel.backends.get(i));
            }
            self.ring_steps = 0;
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

    fn ips(n: u8) -> Vec<[u8; 4]> {
        (0..n)
            .map(|i| [10, 1, i / 16, i.wrapping_mul(37)])
            .collect()
    }

    #[test]
    fn sticky_and_minimal_remapping() {
        let four = Selector::build(&Strategy::IpHash, &members(&[1, 1, 1, 1]), None);
        let before: Vec<u16> = ips(200)
            .iter()
            .map(|ip| port(&four, ip, &[]).expect("pick"))
            .collect();
        let again: Vec<u16> = ips(200)
            .iter()
            .map(|ip| port(&four, ip, &[]).expect("pick"))
            .collect();
        assert_eq!(before, again, "sticky");
        for p in 1..=4 {
            assert!(
                before.iter().filter(|x| **x == p).count() > 20,
                "member {p} gets a share"
            );
        }
        // Member 4 down: only its clients move.
        let moved: Vec<(u16, u16)> = ips(200)
            .iter()
            .zip(&before)
            .map(|(ip, b)| (*b, port(&four, ip, &[4]).expect("pick")))
            .filter(|(b, a)| b != a)
            .collect();
        assert!(moved.iter().all(|(b, _)| *b == 4), "{moved:?}");
    }
}
