//! Service discovery: upstream members found at run time in DNS (A/AAAA, SRV) or in etcd
//! (registrations under a prefix, usually with a lease), beside the fixed `backends`. One task
//! per discovered upstream ([`service::Discovery`]) looks its members up and hands them to
//! [`Upstream::set_members`](super::Upstream::set_members); a failed lookup keeps the last good
//! set and is counted.

pub mod dns;
pub mod etcd;
pub mod service;

use crate::config::file::DiscoveryConfig;
use crate::config::ConfigErrors;
use async_trait::async_trait;
use pingora::lb::discovery::ServiceDiscovery;
use pingora::lb::Backend;
use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

/// A member as a lookup found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub addr: SocketAddr,
    pub weight: usize,
    pub name: Option<String>,
}

/// The discovery of one upstream: its settings, and the member set pingora's `Backends` reads
/// (so the health of members that stay is kept by pingora across changes).
pub struct Source {
    pub config: DiscoveryConfig,
    set: Arc<Mutex<BTreeSet<Backend>>>,
    /// A task looks this upstream's members up.
    started: AtomicBool,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Source {
    pub fn new(config: DiscoveryConfig) -> Source {
        Source {
            config,
            set: Arc::default(),
            started: AtomicBool::new(false),
        }
    }

    /// The discovery pingora's `Backends` is built on, answering with `initial` until
    /// [`Source::publish`].
    pub fn discovery(&self, initial: BTreeSet<Backend>) -> Box<Published> {
        *self.lock() = initial;
        Box::new(Published(Arc::clone(&self.set)))
    }

    /// The set the next `Backends::update` finds.
    pub fn publish(&self, set: BTreeSet<Backend>) {
        *self.lock() = set;
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeSet<Backend>> {
        self.set.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Claims the lookup task for this upstream: true once.
    pub fn claim(&self) -> bool {
        !self.started.swap(true, Ordering::AcqRel)
    }
}

/// The member set a discovery task published last.
pub struct Published(Arc<Mutex<BTreeSet<Backend>>>);

#[async_trait]
impl ServiceDiscovery for Published {
    async fn discover(&self) -> pingora::Result<(BTreeSet<Backend>, HashMap<u64, bool>)> {
        let set = self.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        Ok((set, HashMap::new()))
    }
}

/// Checks `upstreams.<name>.discovery` (at `path`); `has_etcd`: the file has an `etcd` section.
pub fn check(path: &str, cfg: &DiscoveryConfig, has_etcd: bool, errors: &mut ConfigErrors) {
    match (&cfg.dns, &cfg.etcd) {
        (Some(dns), None) => dns::check(&format!("{path}.dns"), dns, errors),
        (None, Some(etcd)) => {
            if etcd.prefix.is_empty() {
                errors.push(format!("{path}.etcd.prefix"), "must not be empty");
            }
            if !has_etcd {
                errors.push(
                    format!("{path}.etcd"),
                    "needs the etcd section (its connection is used)",
                );
            }
        }
        _ => errors.push(path, "set exactly one of dns or etcd"),
    }
}
