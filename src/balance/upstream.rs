//! An upstream pool: the members of one `upstreams.<name>` entry in a pingora `Backends` (which
//! keeps their health), a selector for the configured strategy, and the connection settings the
//! proxy applies to every pick.

use super::breaker::{Breaker, Connecting, Refusal, Slot, State};
use super::budget::RetryBudget;
use super::discovery::{Found, Source};
use super::error::BalanceError;
use super::outlier::{Ejection, OutlierPolicy};
use super::probe;
use super::selector::{Picked, Selector};
use super::stats::{now_ms, BackendStats, Recorded};
use super::view::{BackendView, CheckView, UpstreamView};
use crate::config::file::{UpstreamConfig, UpstreamProtocol};
use arc_swap::ArcSwap;
use futures::FutureExt;
use openssl::x509::X509;
use pingora::lb::discovery::Static;
use pingora::lb::health_check::HealthCheck;
use pingora::lb::{Backend, Backends};
use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Hard cap of pingora's proxy retry loop (`ServerConf::max_retries` default).
pub const MAX_RETRIES: usize = 16;

struct Member {
    addr: SocketAddr,
    /// The config's label for it.
    name: Option<String>,
    backend: Backend,
    stats: Arc<BackendStats>,
}

/// When the next active health check is due.
struct HealthSchedule {
    interval: Duration,
    next_due: Mutex<Instant>,
    running: AtomicBool,
}

/// What the health-check loop should do about an upstream now.
pub enum HealthDue {
    /// No active checks configured.
    Never,
    /// Start a check now (the caller must then call `run_health_check`).
    Now,
    /// Not before this instant.
    At(Instant),
}

/// The members and the selector over them, replaced whole when discovery changes the members.
struct Pool {
    /// In file order (by address when discovered).
    members: Box<[Member]>,
    selector: Selector,
}

/// A built upstream pool, shared by every route that names it.
pub struct Upstream {
    pub name: String,
    /// The settings it was built from; an unchanged entry keeps this object across reloads.
    pub config: UpstreamConfig,
    backends: Backends,
    pool: ArcSwap<Pool>,
    /// Where members are found at run time (`discovery`), if anywhere.
    source: Option<Source>,
    health: Option<HealthSchedule>,
    outlier: Option<OutlierPolicy>,
    breaker: Option<Breaker>,
    budget: RetryBudget,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub retries: usize,
    pub tls: bool,
    pub sni: String,
    /// CA certificates trusted for the backends (`ca_file`); the system's store otherwise.
    pub ca: Option<Arc<Box<[X509]>>>,
    /// The backends are spoken to in HTTP/2 only (`protocol: h2` or `h2c`).
    pub h2: bool,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let addrs: Vec<_> = self.pool.load().members.iter().map(|m| m.addr).collect();
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("backends", &addrs)
            .finish_non_exhaustive()
    }
}

/// Resolves a backend address (`ip:port` or `host:port`) once, at load time. Blocking (DNS).
fn resolve(addr: &str) -> Result<SocketAddr, BalanceError> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !addr.contains(':') {
        return Err(BalanceError::NoPort(addr.to_owned()));
    }
    let fail = |reason: String| BalanceError::Resolve {
        addr: addr.to_owned(),
        reason,
    };
    addr.to_socket_addrs()
        .map_err(|e| fail(e.to_string()))?
        .next()
        .ok_or_else(|| fail("no address".into()))
}

/// What settling one request changed in its upstream ([`Upstream::settle`]).
#[derive(Debug, Default)]
pub struct Settled {
    /// Backends outlier detection took out of picks.
    pub ejections: Vec<Ejection>,
    /// The circuit breaker's new state, when it moved.
    pub circuit: Option<State>,
}

/// The members of `config`, resolved; a backend that stays (same address) keeps its counters
/// from `previous`. Problems are pushed with their path below the upstream.
fn members(
    config: &UpstreamConfig,
    previous: Option<&Upstream>,
    problems: &mut Vec<(String, BalanceError)>,
) -> Vec<Member> {
    let before = previous.map(|p| p.pool.load_full());
    let before = before.as_ref().map_or(&[][..], |p| &p.members[..]);
    let mut members: Vec<Member> = Vec::with_capacity(config.backends.len());
    for (i, b) in config.backends.iter().enumerate() {
        let addr = match resolve(&b.addr) {
            Ok(a) => a,
            Err(e) => {
                problems.push((format!("backends[{i}].addr"), e));
                continue;
            }
        };
        if members.iter().any(|m| m.addr == addr) {
            problems.push((format!("backends[{i}].addr"), BalanceError::Duplicate(addr)));
            continue;
        }
        members.push(member(addr, b.weight, b.name.clone(), before));
    }
    members
}

/// One member; it keeps its counters from `before` if it was there.
fn member(addr: SocketAddr, weight: usize, name: Option<String>, before: &[Member]) -> Member {
    let stats = before.iter().find(|m| m.addr == addr).map_or_else(
        || Arc::new(BackendStats::new(addr)),
        |m| Arc::clone(&m.stats),
    );
    let mut backend = Backend {
        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
        weight,
        ext: Default::default(),
    };
    backend.ext.insert(Arc::clone(&stats));
    Member {
        addr,
        name,
        backend,
        stats,
    }
}

/// The CA bundle that verifies the backends (`ca_file`, with `tls: true` only).
fn ca(
    config: &UpstreamConfig,
    problems: &mut Vec<(String, BalanceError)>,
) -> Option<Arc<Box<[X509]>>> {
    match (&config.ca_file, config.tls) {
        (None, _) => None,
        (Some(_), false) => {
            problems.push(("ca_file".into(), BalanceError::CaWithoutTls));
            None
        }
        (Some(path), true) => match read_ca(path) {
            Ok(ca) => Some(ca),
            Err(reason) => {
                let path = path.clone();
                problems.push(("ca_file".into(), BalanceError::CaFile { path, reason }));
                None
            }
        },
    }
}

impl Upstream {
    /// Builds the pool. `previous` is the upstream of the same name in the running snapshot: its
    /// per-backend counters carry over for addresses that stay. Returns the problems found
    /// (path suffix, message) when the settings are not usable.
    pub fn build(
        name: &str,
        config: &UpstreamConfig,
        previous: Option<&Upstream>,
    ) -> Result<Upstream, Vec<(String, BalanceError)>> {
        let mut problems = Vec::new();
        let mut members = members(config, previous, &mut problems);
        if config.backends.is_empty() && config.discovery.is_none() {
            problems.push(("backends".into(), BalanceError::NoBackends));
        }
        // Discovered members start as the running upstream's, when it discovers the same way
        // (a reload that changed other settings); else empty until the first lookup.
        let source = config.discovery.as_ref().map(|d| Source::new(d.clone()));
        if let (Some(_), Some(p)) = (&source, previous) {
            if p.config.discovery == config.discovery {
                let pool = p.pool.load();
                members.extend(
                    pool.members
                        .iter()
                        .map(|m| member(m.addr, m.backend.weight, m.name.clone(), &pool.members)),
                );
            }
        }
        let tls = config.tls;
        let sni = config.sni.clone().unwrap_or_default();
        let h2 = config.protocol != UpstreamProtocol::Http1;
        let ca = ca(config, &mut problems);
        let probe = config.health_check.as_ref().and_then(|hc| {
            match probe::build(hc, tls, &sni, h2, ca.as_ref()) {
                Ok(p) => Some(Box::new(Recorded(p)) as Box<dyn HealthCheck + Send + Sync>),
                Err(e) => {
                    problems.push(("health_check".into(), BalanceError::Probe(e.to_string())));
                    None
                }
            }
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        let set: BTreeSet<Backend> = members.iter().map(|m| m.backend.clone()).collect();
        let mut backends = match &source {
            Some(source) => Backends::new(source.discovery(set.clone())),
            None => Backends::new(Static::new(set.clone())),
        };
        if let Some(p) = probe {
            backends.set_health_check(p);
        }
        // Static discovery answers at once; this fills the member list before the first request.
        match backends.update(|_| {}).now_or_never() {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                return Err(vec![(
                    "backends".into(),
                    BalanceError::Discovery(e.to_string()),
                )])
            }
            None => {
                let pending = "did not complete at once".to_owned();
                return Err(vec![("backends".into(), BalanceError::Discovery(pending))]);
            }
        }
        let health = config.health_check.as_ref().map(|hc| HealthSchedule {
            interval: hc.interval.map_or(probe::DEFAULT_INTERVAL, |d| d.0),
            next_due: Mutex::new(Instant::now()),
            running: AtomicBool::new(false),
        });
        Ok(Upstream {
            name: name.to_owned(),
            config: config.clone(),
            pool: ArcSwap::from_pointee(Pool {
                selector: Selector::build(&config.strategy, &set, None),
                members: members.into_boxed_slice(),
            }),
            backends,
            source,
            health,
            outlier: config.outlier.as_ref().map(OutlierPolicy::new),
            budget: RetryBudget::new(config.retry_budget.as_ref()),
            breaker: config.circuit_breaker.as_ref().map(|cfg| {
                crate::metrics::circuit_state(name, State::Closed as i64);
                Breaker::new(cfg)
            }),
            connect_timeout: config.connect_timeout.map(|d| d.0),
            read_timeout: config.read_timeout.map(|d| d.0),
            retries: config.retries.unwrap_or(0),
            tls,
            sni,
            ca,
            h2,
        })
    }

    /// Picks a healthy backend by the upstream's strategy, skipping those in `exclude` (failed
    /// earlier in this request). `key` is the client address (for `ip_hash`). No allocation.
    /// Ejected backends (outlier detection) are picked only when nothing else is left.
    pub fn select(&self, key: &[u8], exclude: &[Arc<BackendStats>]) -> Option<Picked> {
        let pool = self.pool.load();
        let pick = |now: Option<u64>| {
            pool.selector.pick(key, |b| {
                self.backends.ready(b)
                    && b.as_inet()
                        .is_some_and(|a| !exclude.iter().any(|s| s.addr() == *a))
                    && now.is_none_or(|t| {
                        !b.ext
                            .get::<Arc<BackendStats>>()
                            .is_some_and(|s| s.ejected(t))
                    })
            })
        };
        match &self.outlier {
            None => pick(None),
            Some(_) => pick(Some(now_ms())).or_else(|| pick(None)),
        }
    }

    /// Lets a request through the circuit breaker: `Ok(None)` without one, else its slot (held
    /// until the request ends) and the transition this call made, if any.
    pub fn admit(&self) -> Result<Option<(Slot, Option<State>)>, Refusal> {
        match &self.breaker {
            None => Ok(None),
            Some(b) => b.admit(now_ms()).map(Some),
        }
    }

    /// Counts a connect to one of the upstream's backends until the guard is dropped, refused
    /// past the breaker's `max_pending_connects`; `Ok(None)` without that cap.
    pub fn start_connect(&self) -> Result<Option<Connecting>, Refusal> {
        match &self.breaker {
            None => Ok(None),
            Some(b) => b.start_connect(),
        }
    }

    /// Connects under way, when the breaker caps them.
    pub fn connecting(&self) -> Option<usize> {
        self.breaker.as_ref()?.connecting()
    }

    /// Records how a request admitted with `slot` ended; the transition it caused, if any.
    pub fn breaker_record(&self, slot: &Slot, failed: bool) -> Option<State> {
        self.breaker.as_ref()?.record(slot, failed, now_ms())
    }

    /// Counts a request (its first try) for the retry budget.
    pub fn count_request(&self) {
        self.budget.request(now_ms());
    }

    /// Takes a retry from the budget; false when it is spent.
    pub fn take_retry(&self) -> bool {
        self.budget.retry(now_ms())
    }

    /// The circuit breaker's state, when there is one.
    pub fn circuit(&self) -> Option<State> {
        self.breaker.as_ref().map(Breaker::state)
    }

    /// Failed requests in a row that eject a backend (0 without outlier detection).
    pub fn outlier_threshold(&self) -> u32 {
        self.outlier.as_ref().map_or(0, |o| o.consecutive_errors)
    }

    /// Feeds outlier detection with the outcome of one request to `backend`; the ejection it
    /// caused, if any. Nothing without an `outlier` section.
    /// Settles a finished request: every backend that refused it (`failed`) and the one that
    /// answered (`held`, with whether its answer counts as a failure) move the failure counters
    /// and outlier ejection, and the request as a whole the circuit breaker (`slot`). What changed
    /// is returned for the caller to log and count.
    pub fn settle(
        &self,
        failed: &[Arc<BackendStats>],
        held: Option<(&BackendStats, bool)>,
        slot: Option<&Slot>,
    ) -> Settled {
        let mut settled = Settled::default();
        for backend in failed {
            backend.count_failure();
            settled.ejections.extend(self.record(backend, true));
        }
        let mut request_failed = !failed.is_empty();
        if let Some((backend, failed)) = held {
            if failed {
                backend.count_failure();
            }
            request_failed = failed;
            settled.ejections.extend(self.record(backend, failed));
        }
        if let Some(slot) = slot {
            settled.circuit = self.breaker_record(slot, request_failed);
        }
        settled
    }

    fn record(&self, backend: &BackendStats, failed: bool) -> Option<Ejection> {
        let policy = self.outlier.as_ref()?;
        let pool = self.pool.load();
        let members = pool.members.iter().map(|m| m.stats.as_ref());
        policy.record(backend, failed, members, now_ms())
    }

    /// `(healthy, total)` members.
    pub fn health(&self) -> (usize, usize) {
        let pool = self.pool.load();
        let healthy = pool
            .members
            .iter()
            .filter(|m| self.backends.ready(&m.backend))
            .count();
        (healthy, pool.members.len())
    }

    /// Members, health and counters, in file order.
    pub fn view(&self) -> UpstreamView {
        UpstreamView {
            name: self.name.clone(),
            strategy: self.config.strategy.name().to_owned(),
            backends: self
                .pool
                .load()
                .members
                .iter()
                .map(|m| BackendView {
                    addr: m.addr.to_string(),
                    name: m.name.clone(),
                    weight: m.backend.weight,
                    healthy: self.backends.ready(&m.backend),
                    active_connections: m.stats.in_flight(),
                    requests_total: m.stats.requests(),
                    failures_total: m.stats.failures(),
                    ejected: m.stats.ejected(now_ms()),
                    last_check: m.stats.last_check().map(CheckView::from),
                })
                .collect(),
        }
    }

    /// Whether an active health check should start now; claims it if so.
    pub fn health_due(&self, now: Instant) -> HealthDue {
        let Some(h) = &self.health else {
            return HealthDue::Never;
        };
        let Ok(mut next) = h.next_due.lock() else {
            return HealthDue::Never;
        };
        if now < *next || h.running.load(Ordering::Acquire) {
            return HealthDue::At((*next).max(now + h.interval.min(Duration::from_millis(50))));
        }
        *next = now + h.interval;
        h.running.store(true, Ordering::Release);
        HealthDue::Now
    }

    /// Where members are found at run time, if anywhere.
    pub fn source(&self) -> Option<&Source> {
        self.source.as_ref()
    }

    /// Makes `found` the members (discovery). Members that stay keep their counters (least-
    /// connection counts, failures), their health and their place on the hash ring; a member
    /// that leaves is no longer picked (requests to it finish). False when nothing changed.
    pub async fn set_members(&self, found: &[Found]) -> bool {
        let Some(source) = &self.source else {
            return false;
        };
        let before = self.pool.load_full();
        let mut members: Vec<Member> = Vec::with_capacity(found.len());
        for f in found {
            if !members.iter().any(|m| m.addr == f.addr) {
                members.push(member(f.addr, f.weight, f.name.clone(), &before.members));
            }
        }
        members.sort_by_key(|m| m.addr);
        let set: BTreeSet<Backend> = members.iter().map(|m| m.backend.clone()).collect();
        let unchanged = before.members.len() == members.len()
            && before
                .members
                .iter()
                .zip(&members)
                .all(|(a, b)| a.addr == b.addr && a.backend.weight == b.backend.weight);
        if unchanged {
            return false;
        }
        source.publish(set.clone());
        // Health moves with the address (pingora keeps the state of backends that stay).
        if let Err(e) = self.backends.update(|_| {}).await {
            log::warn!("upstream {}: membership update: {e}", self.name);
        }
        self.pool.store(Arc::new(Pool {
            selector: Selector::build(&self.config.strategy, &set, None),
            members: members.into_boxed_slice(),
        }));
        // New members are probed at once (the others keep their state and thresholds).
        if let Some(h) = &self.health {
            if let Ok(mut next) = h.next_due.lock() {
                *next = Instant::now();
            }
        }
        true
    }

    /// Probes every member once (in parallel); call after `health_due` returned `Now`.
    pub async fn run_health_check(&self) {
        self.backends.run_health_check(true).await;
        if let Some(h) = &self.health {
            h.running.store(false, Ordering::Release);
        }
    }
}

/// The CA certificates of a PEM file: at least one.
fn read_ca(path: &str) -> Result<Arc<Box<[X509]>>, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let certs = X509::stack_from_pem(&pem).map_err(|e| e.to_string())?;
    if certs.is_empty() {
        return Err("no PEM certificate in it".into());
    }
    Ok(Arc::new(certs.into_boxed_slice()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(yaml: &str, previous: Option<&Upstream>) -> Upstream {
        let cfg: UpstreamConfig = serde_yaml::from_str(yaml).expect("valid yaml");
        Upstream::build("u", &cfg, previous).expect("builds")
    }

    #[test]
    fn round_robin_rotates_and_skips_excluded() {
        let u = upstream("backends: [{addr: 127.0.0.1:1}, {addr: 127.0.0.1:2}]", None);
        let a = u.select(b"", &[]).expect("pick");
        let b = u.select(b"", &[]).expect("pick");
        assert_ne!(a.addr, b.addr);
        for _ in 0..5 {
            let picked = u.select(b"", std::slice::from_ref(&a.stats));
            assert_eq!(picked.map(|p| p.addr), Some(b.addr));
        }
        assert!(u.select(b"", &[a.stats, b.stats]).is_none());
        assert_eq!(u.health(), (2, 2));
    }

    #[test]
    fn counters_survive_a_rebuild_for_addresses_that_stay() {
        let old = upstream("backends: [{addr: 127.0.0.1:1}, {addr: 127.0.0.1:2}]", None);
        let held = crate::balance::InFlight::start(old.select(b"", &[]).expect("pick").stats);
        let new = upstream(
            "strategy: least_conn\nbackends: [{addr: 127.0.0.1:1}, {addr: 127.0.0.1:3}]",
            Some(&old),
        );
        let view = new.view();
        assert_eq!(view.strategy, "least_conn");
        let busy: Vec<_> = view
            .backends
            .iter()
            .map(|b| (b.addr.as_str(), b.active_connections))
            .collect();
        assert_eq!(busy, [("127.0.0.1:1", 1), ("127.0.0.1:3", 0)]);
        // least_conn on the new pool sees the request still held from before the reload.
        for _ in 0..4 {
            assert_eq!(new.select(b"", &[]).map(|p| p.addr.port()), Some(3));
        }
        drop(held);
        assert_eq!(new.view().backends[0].active_connections, 0);
        assert_eq!(new.view().backends[0].requests_total, 1);
    }

    fn found(ports: &[u16]) -> Vec<Found> {
        ports
            .iter()
            .map(|p| Found {
                addr: SocketAddr::from(([127, 0, 0, 1], *p)),
                weight: 1,
                name: None,
            })
            .collect()
    }

    #[test]
    fn discovered_members_keep_their_counters_and_ring_places() {
        let u = upstream("strategy: ip_hash\ndiscovery: {dns: {name: 'x:1'}}", None);
        assert!(
            u.select(b"1.2.3.4", &[]).is_none(),
            "no members before the first lookup"
        );
        assert!(futures::executor::block_on(
            u.set_members(&found(&[1, 2, 3, 4]))
        ));
        assert!(!futures::executor::block_on(
            u.set_members(&found(&[4, 3, 2, 1]))
        ));
        let keys: Vec<String> = (0..400)
            .map(|i| format!("10.0.{}.{}", i / 200, i % 200))
            .collect();
        let pick = |u: &Upstream, k: &str| u.select(k.as_bytes(), &[]).expect("pick").addr.port();
        let before: Vec<u16> = keys.iter().map(|k| pick(&u, k)).collect();
        let busy = u.select(b"", &[]).expect("pick");
        let busy_port = busy.addr.port();
        let held = crate::balance::InFlight::start(busy.stats);

        assert!(futures::executor::block_on(
            u.set_members(&found(&[1, 2, 3, 4, 5]))
        ));
        let after: Vec<u16> = keys.iter().map(|k| pick(&u, k)).collect();
        // A key either stays where it was or moves to the new member.
        let moved = before.iter().zip(&after).filter(|(b, a)| b != a).count();
        assert!(before.iter().zip(&after).all(|(b, a)| b == a || *a == 5));
        assert!(moved > 0 && moved < keys.len() / 3, "{moved} moved");
        // The request in flight is still counted on its member (least_conn sees it).
        let view = u.view();
        let busy_view = view
            .backends
            .iter()
            .find(|b| b.addr.ends_with(&format!(":{busy_port}")))
            .expect("the busy member stays");
        assert_eq!(busy_view.active_connections, 1);
        drop(held);

        // A member that leaves is not picked any more.
        assert!(futures::executor::block_on(u.set_members(&found(&[5]))));
        assert!(keys.iter().all(|k| pick(&u, k) == 5));
        assert_eq!(u.health(), (1, 1));
    }

    #[test]
    fn bad_and_duplicate_addresses() {
        let cfg: UpstreamConfig = serde_yaml::from_str(
            "backends: [{addr: 127.0.0.1:1}, {addr: 127.0.0.1:1}, {addr: nonsense}]",
        )
        .expect("valid yaml");
        let problems = Upstream::build("u", &cfg, None).expect_err("rejected");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].1.to_string().contains("duplicate"));
        assert!(problems[1].1.to_string().contains("expected host:port"));
    }
}
