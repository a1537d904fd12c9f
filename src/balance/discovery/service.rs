//! The background service that starts one lookup task per discovered upstream of the live
//! snapshot (upstreams a reload brings included). A task holds its upstream weakly and ends when
//! a reload drops it. The service is ready, and the proxy starts listening, once every upstream of
//! the first snapshot had its first lookup (or a few seconds passed).

use super::{dns, etcd, Found};
use crate::balance::Upstream;
use crate::config::file::{DnsDiscoveryConfig, EtcdConfig};
use crate::state::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// How often the snapshot is looked at for upstreams without a task.
const NAP: Duration = Duration::from_millis(250);
/// The longest the proxy waits for the first lookups.
const FIRST_LOOKUPS: Duration = Duration::from_secs(5);
const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(10);

pub struct Discovery {
    shared: Arc<Shared>,
}

impl Discovery {
    pub fn new(shared: Arc<Shared>) -> Discovery {
        Discovery { shared }
    }

    /// Starts a task for every discovered upstream that has none; their first lookups.
    fn start_tasks(&self) -> Vec<oneshot::Receiver<()>> {
        let snapshot = self.shared.snapshot.load_full();
        let mut first = Vec::new();
        for upstream in snapshot.upstreams.values() {
            let Some(source) = upstream.source() else {
                continue;
            };
            if !source.claim() {
                continue;
            }
            let (done, waiting) = oneshot::channel();
            first.push(waiting);
            let weak = Arc::downgrade(upstream);
            match (&source.config.dns, &source.config.etcd) {
                (Some(dns), _) => {
                    tokio::spawn(by_dns(weak, dns.clone(), done));
                }
                (None, Some(reg)) => {
                    let Some(cfg) = snapshot.file.etcd.clone() else {
                        continue;
                    };
                    tokio::spawn(by_etcd(weak, cfg, reg.prefix.clone(), done));
                }
                (None, None) => {}
            }
        }
        first
    }
}

#[async_trait]
impl BackgroundService for Discovery {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let first = self.start_tasks();
        let all = futures::future::join_all(first);
        let _ = tokio::time::timeout(FIRST_LOOKUPS, all).await;
        ready.notify_ready();
        loop {
            tokio::select! {
                _ = tokio::time::sleep(NAP) => {}
                _ = shutdown.changed() => return,
            }
            self.start_tasks();
        }
    }
}

/// The most members an upstream takes from discovery (a runaway registry or answer is cut).
const MAX_MEMBERS: usize = 4096;

/// Hands `found` to the upstream (if it is still in use); false once it is gone.
async fn apply(weak: &Weak<Upstream>, found: &[Found], how: &str) -> bool {
    let Some(upstream) = weak.upgrade() else {
        return false;
    };
    if found.len() > MAX_MEMBERS {
        log::warn!(
            "upstream {}: {how} found {} members; using the first {MAX_MEMBERS}",
            upstream.name,
            found.len()
        );
    }
    let found = &found[..found.len().min(MAX_MEMBERS)];
    crate::metrics::discovery(&upstream.name, true, Some(found.len()));
    if upstream.set_members(found).await {
        let list: Vec<String> = found.iter().map(|f| f.addr.to_string()).collect();
        log::info!(
            "upstream {}: members from {how}: {}",
            upstream.name,
            if list.is_empty() {
                "none".to_owned()
            } else {
                list.join(", ")
            }
        );
    }
    true
}

/// A failed lookup: counted and logged; the members stay as they were.
fn failed(weak: &Weak<Upstream>, how: &str, error: &str) -> bool {
    let Some(upstream) = weak.upgrade() else {
        return false;
    };
    crate::metrics::discovery(&upstream.name, false, None);
    log::warn!(
        "upstream {}: {how} lookup failed: {error}; keeping the last {} members",
        upstream.name,
        upstream.health().1
    );
    true
}

async fn by_dns(weak: Weak<Upstream>, cfg: DnsDiscoveryConfig, done: oneshot::Sender<()>) {
    let mut done = Some(done);
    let resolver = match dns::resolver(&cfg) {
        Ok(r) => r,
        Err(e) => {
            failed(&weak, "DNS", &e);
            return;
        }
    };
    loop {
        let wait = match dns::lookup(&resolver, &cfg).await {
            Ok((found, ttl)) if !found.is_empty() => {
                if !apply(&weak, &found, "DNS").await {
                    return;
                }
                dns::next_lookup(&cfg, ttl)
            }
            Ok(_) => {
                if !failed(&weak, "DNS", "the answer has no address") {
                    return;
                }
                dns::retry_after(&cfg)
            }
            Err(e) => {
                if !failed(&weak, "DNS", &e) {
                    return;
                }
                dns::retry_after(&cfg)
            }
        };
        if let Some(d) = done.take() {
            let _ = d.send(());
        }
        tokio::time::sleep(wait).await;
        if weak.strong_count() == 0 {
            return;
        }
    }
}

async fn by_etcd(weak: Weak<Upstream>, cfg: EtcdConfig, prefix: String, done: oneshot::Sender<()>) {
    let mut done = Some(done);
    let mut retry = FIRST_RETRY;
    loop {
        let Some(name) = weak.upgrade().map(|u| u.name.clone()) else {
            return;
        };
        match etcd::watch(&cfg, &prefix, &name).await {
            Ok(mut watch) => {
                retry = FIRST_RETRY;
                if !apply(&weak, &watch.registry.members(), "etcd").await {
                    return;
                }
                if let Some(d) = done.take() {
                    let _ = d.send(());
                }
                loop {
                    // Woken now and then to notice an upstream a reload dropped.
                    match tokio::time::timeout(Duration::from_secs(1), watch.next()).await {
                        Err(_) if weak.strong_count() == 0 => return,
                        Err(_) => {}
                        Ok(Ok(true)) => {
                            if !apply(&weak, &watch.registry.members(), "etcd").await {
                                return;
                            }
                        }
                        Ok(Ok(false)) => break,
                        Ok(Err(e)) => {
                            if !failed(&weak, "etcd", &e.to_string()) {
                                return;
                            }
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                if !failed(&weak, "etcd", &e.to_string()) {
                    return;
                }
                if let Some(d) = done.take() {
                    let _ = d.send(());
                }
                tokio::time::sleep(retry.mul_f64(0.5 + fastrand::f64() / 2.0)).await;
                retry = (retry * 2).min(LAST_RETRY);
            }
        }
    }
}
