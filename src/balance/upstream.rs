//! An upstream pool: the backends of one `upstreams.<name>` entry behind a pingora
//! `LoadBalancer`, with the connection settings the proxy applies to every pick.

use crate::config::file::UpstreamConfig;
use futures::FutureExt;
use pingora::lb::discovery::Static;
use pingora::lb::selection::RoundRobin;
use pingora::lb::{Backend, Backends, LoadBalancer};
use std::collections::BTreeSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

/// Hard cap of pingora's proxy retry loop (`ServerConf::max_retries` default).
pub const MAX_RETRIES: usize = 16;

/// How many selector steps a pick may take before giving up on a pool of down backends.
const MAX_ITERATIONS: usize = 256;

/// A built upstream pool. Shared by every route that names it.
pub struct Upstream {
    pub name: String,
    /// The settings it was built from; an unchanged entry keeps this object across reloads.
    pub config: UpstreamConfig,
    lb: LoadBalancer<RoundRobin>,
    backends: Vec<SocketAddr>,
    pub connect_timeout: Option<Duration>,
    pub read_timeout: Option<Duration>,
    pub retries: usize,
    pub tls: bool,
    pub sni: String,
}

impl std::fmt::Debug for Upstream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Upstream")
            .field("name", &self.name)
            .field("backends", &self.backends)
            .finish_non_exhaustive()
    }
}

/// Resolves a backend address (`ip:port` or `host:port`) once, at load time.
pub fn resolve(addr: &str) -> Result<SocketAddr, String> {
    if let Ok(a) = addr.parse::<SocketAddr>() {
        return Ok(a);
    }
    if !addr.contains(':') {
        return Err(format!("invalid address {addr:?}: expected host:port"));
    }
    addr.to_socket_addrs()
        .map_err(|e| format!("cannot resolve {addr:?}: {e}"))?
        .next()
        .ok_or_else(|| format!("cannot resolve {addr:?}: no address"))
}

impl Upstream {
    /// Builds the pool. Returns the problems found (path suffix, message) when the settings are
    /// not usable; `compile` has already checked the simple fields.
    pub fn build(name: &str, config: &UpstreamConfig) -> Result<Upstream, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut set = BTreeSet::new();
        let mut addrs = Vec::with_capacity(config.backends.len());
        for (i, b) in config.backends.iter().enumerate() {
            match resolve(&b.addr) {
                Ok(addr) => {
                    if addrs.contains(&addr) {
                        problems.push((
                            format!("backends[{i}].addr"),
                            format!("duplicate backend {addr}"),
                        ));
                        continue;
                    }
                    addrs.push(addr);
                    set.insert(Backend {
                        addr: pingora::protocols::l4::socket::SocketAddr::Inet(addr),
                        weight: b.weight,
                        ext: Default::default(),
                    });
                }
                Err(e) => problems.push((format!("backends[{i}].addr"), e)),
            }
        }
        if config.backends.is_empty() {
            problems.push(("backends".into(), "at least one backend is required".into()));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let lb = LoadBalancer::<RoundRobin>::from_backends(Backends::new(Static::new(set)));
        // Static discovery answers at once; this fills the selector before the first request.
        match lb.update().now_or_never() {
            Some(Ok(())) => {}
            Some(Err(e)) => return Err(vec![("backends".into(), e.to_string())]),
            None => {
                return Err(vec![(
                    "backends".into(),
                    "discovery did not complete".into(),
                )])
            }
        }
        Ok(Upstream {
            name: name.to_owned(),
            config: config.clone(),
            lb,
            backends: addrs,
            connect_timeout: config.connect_timeout.map(|d| d.0),
            read_timeout: config.read_timeout.map(|d| d.0),
            retries: config.retries.unwrap_or(0),
            tls: config.tls,
            sni: config.sni.clone().unwrap_or_default(),
        })
    }

    /// Picks a healthy backend, skipping those in `exclude` (failed earlier in this request).
    pub fn select(&self, key: &[u8], exclude: &[SocketAddr]) -> Option<SocketAddr> {
        let picked = self.lb.select_with(key, MAX_ITERATIONS, |b, ready| {
            ready && b.as_inet().is_some_and(|a| !exclude.contains(a))
        })?;
        picked.as_inet().copied()
    }

    /// `(healthy, total)` backends.
    pub fn health(&self) -> (usize, usize) {
        let members = self.lb.backends().get_backend();
        let healthy = members
            .iter()
            .filter(|b| self.lb.backends().ready(b))
            .count();
        (healthy, members.len())
    }

    /// The backend addresses in file order.
    pub fn backends(&self) -> &[SocketAddr] {
        &self.backends
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upstream(yaml: &str) -> Upstream {
        let cfg: UpstreamConfig = serde_yaml::from_str(yaml).expect("valid yaml");
        Upstream::build("u", &cfg).expect("builds")
    }

    #[test]
    fn round_robin_rotates_and_skips_excluded() {
        let u = upstream("backends: [{addr: 127.0.0.1:1}, {addr: 127.0.0.1:2}]");
        let a = u.select(b"", &[]).expect("pick");
        let b = u.select(b"", &[]).expect("pick");
        assert_ne!(a, b);
        for _ in 0..5 {
            assert_eq!(u.select(b"", &[a]), Some(b));
        }
        assert_eq!(u.select(b"", &[a, b]), None);
        assert_eq!(u.health(), (2, 2));
    }

    #[test]
    fn bad_and_duplicate_addresses() {
        let cfg: UpstreamConfig = serde_yaml::from_str(
            "backends: [{addr: 127.0.0.1:1}, {addr: 127.0.0.1:1}, {addr: nonsense}]",
        )
        .expect("valid yaml");
        let problems = Upstream::build("u", &cfg).expect_err("rejected");
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].1.contains("duplicate"));
        assert!(problems[1].1.contains("expected host:port"));
    }
}
