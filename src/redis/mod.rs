//! The `redis` section: one shared connection to Redis (one server, a cluster, or the primary
//! sentinels name), used by every Redis-backed feature (revocations, rate limits, the cache and
//! its purge channel, middlewares). The handle belongs to the snapshot, so a reload that removes
//! or changes the section drops it; a reload that keeps it keeps the connection. The connection
//! is made on first use, on a pingora runtime (after any daemon fork); every call is bounded by
//! the configured timeout, and the outcome of the last call feeds `/health`.
//!
//! A Redis that times out or drops connections is not waited on by any request: after such a
//! failure, calls fail at once, and a background task probes Redis (`PING`, every
//! [`PROBE_EVERY`]) until it answers; no request ever waits for a probe. Each feature's own error
//! policy (`on_store_error`, cache misses) applies meanwhile.
//! With sentinels, such a failure (or a primary turned read-only) first asks them whether the
//! primary moved: if so the connection goes to the new one at once, with no back-off. A cluster
//! follows its own failovers (`MOVED` redirections refresh the slot map).

mod conn;
mod topology;

pub use conn::Conn;
pub use topology::Node;

use crate::config::file::RedisConfig;
use crate::config::ConfigErrors;
use arc_swap::ArcSwapOption;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use topology::Topology;

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// How often a Redis that failed is probed (in the background) until it answers again.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// Redis did not answer in time, or answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis unavailable: {0}")]
    Call(#[from] redis::RedisError),
    #[error("redis unavailable: no answer within {0:?}")]
    Timeout(Duration),
    #[error("redis unavailable: skipped while backing off after a failure")]
    BackingOff,
    #[error("could not encode the value: {0}")]
    Encode(String),
}

impl RedisError {
    /// A failure of the connection rather than of one command: worth backing off from.
    fn is_outage(&self) -> bool {
        match self {
            RedisError::Call(e) => {
                e.is_io_error()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_timeout()
            }
            RedisError::Timeout(_) | RedisError::BackingOff => true,
            RedisError::Encode(_) => false,
        }
    }

    /// A primary turned replica (a failover under way or done).
    fn is_read_only(&self) -> bool {
        matches!(self, RedisError::Call(e)
            if e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly))
    }
}

/// A problem in the `redis` section.
#[derive(Debug, thiserror::Error)]
pub enum RedisConfigError {
    #[error("set one of url (one Redis), cluster (its nodes) or sentinel")]
    NoUrl,
    #[error("set only one of url, cluster and sentinel")]
    Several,
    #[error("invalid URL {0:?}: expected redis:// or rediss://")]
    Scheme(String),
    #[error("invalid URL {url:?}: {source}")]
    Url {
        url: String,
        source: redis::RedisError,
    },
    #[error("set the name the sentinels monitor the primary under")]
    NoMaster,
    #[error("list at least one sentinel")]
    NoSentinels,
}

pub struct RedisHandle {
    /// This handle, for the background probe (which ends when the handle is dropped).
    me: Weak<RedisHandle>,
    topology: Topology,
    /// The section, to keep the handle when a reload leaves it unchanged.
    section: RedisConfig,
    description: String,
    timeout: Duration,
    conn: Arc<ArcSwapOption<Conn>>,
    /// One opening of the connection at a time.
    opening: tokio::sync::Mutex<()>,
    healthy: AtomicBool,
    backoff: Backoff,
}

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandle")
            .field("redis", &self.description)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Checks `url` (at `path`): `redis://` or `rediss://`, and parses.
fn check_url(path: &str, url: &str, errors: &mut ConfigErrors) -> bool {
    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
        errors.push(path, RedisConfigError::Scheme(url.to_owned()));
        return false;
    }
    if let Err(source) = redis::Client::open(url) {
        let url = url.to_owned();
        errors.push(path, RedisConfigError::Url { url, source });
        return false;
    }
    true
}

/// Checks the section and builds its handle. `previous` is the running snapshot's handle: kept
/// (with its connection) when the section is the same.
pub fn build(
    cfg: Option<&RedisConfig>,
    previous: Option<&Arc<RedisHandle>>,
    errors: &mut ConfigErrors,
) -> Option<Arc<RedisHandle>> {
    let cfg = cfg?;
    let timeout = cfg.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    let chosen = [
        cfg.url.is_some(),
        !cfg.cluster.is_empty(),
        cfg.sentinel.is_some(),
    ];
    match chosen.iter().filter(|c| **c).count() {
        0 => {
            errors.push("redis", RedisConfigError::NoUrl);
            return None;
        }
        1 => {}
        _ => {
            errors.push("redis", RedisConfigError::Several);
            return None;
        }
    }
    let mut ok = true;
    if let Some(url) = &cfg.url {
        ok &= check_url("redis.url", url, errors);
    }
    for (i, url) in cfg.cluster.iter().enumerate() {
        ok &= check_url(&format!("redis.cluster[{i}]"), url, errors);
    }
    if let Some(s) = &cfg.sentinel {
        if s.master.is_empty() {
            errors.push("redis.sentinel.master", RedisConfigError::NoMaster);
            ok = false;
        }
        if s.nodes.is_empty() {
            errors.push("redis.sentinel.nodes", RedisConfigError::NoSentinels);
            ok = false;
        }
        for (i, url) in s.nodes.iter().enumerate() {
            ok &= check_url(&format!("redis.sentinel.nodes[{i}]"), url, errors);
        }
    }
    if !ok {
        return None;
    }
    if let Some(p) = previous.filter(|p| p.same_section(cfg)) {
        return Some(Arc::clone(p));
    }
    // Shown in logs and in `Debug`: without the URLs' credentials.
    let (topology, description) = match (&cfg.url, &cfg.sentinel) {
        (Some(url), _) => (Topology::single(url), url.clone()),
        (None, Some(s)) => (
            Topology::sentinel(s),
            format!("sentinel {} at {}", s.master, s.nodes.join(",")),
        ),
        (None, None) => (
            Topology::cluster(&cfg.cluster, timeout),
            format!("cluster {}", cfg.cluster.join(",")),
        ),
    };
    let description = crate::config::without_url_credentials(&description);
    match topology {
        Ok(topology) => Some(Arc::new_cyclic(|me| RedisHandle {
            me: me.clone(),
            topology,
            section: cfg.clone(),
            description,
            timeout,
            conn: Arc::new(ArcSwapOption::empty()),
            opening: tokio::sync::Mutex::new(()),
            healthy: AtomicBool::new(true),
            backoff: Backoff::new(),
        })),
        Err(source) => {
            errors.push(
                "redis",
                RedisConfigError::Url {
                    url: description,
                    source,
                },
            );
            None
        }
    }
}

impl RedisHandle {
    /// The URL, or `cluster <nodes>`, or `sentinel <master> at <nodes>`, credentials left out.
    pub fn url(&self) -> &str {
        &self.description
    }

    fn same_section(&self, cfg: &RedisConfig) -> bool {
        self.section.url == cfg.url
            && self.section.cluster == cfg.cluster
            && self.section.sentinel == cfg.sentinel
            && self.section.timeout.map(|t| t.0) == cfg.timeout.map(|t| t.0)
    }

    /// True unless the last call failed.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The shared connection (a cheap clone of a multiplexed connection).
    pub async fn connection(&self) -> Result<Conn, RedisError> {
        if let Some(conn) = self.conn.load_full() {
            return Ok(Conn::clone(&conn));
        }
        // Boxed: opening (a cluster's, the sentinels' questions) is a large future, and every
        // request future that may call Redis would otherwise carry its size.
        Box::pin(self.open()).await
    }

    /// Opens the shared connection (one caller at a time).
    async fn open(&self) -> Result<Conn, RedisError> {
        let _one = self.opening.lock().await;
        if let Some(conn) = self.conn.load_full() {
            return Ok(Conn::clone(&conn));
        }
        let conn = self.run(self.topology.open(self.timeout)).await?;
        self.conn.store(Some(Arc::new(conn.clone())));
        self.topology.follow_failovers(&self.conn);
        Ok(conn)
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A new connection of its own (for pub/sub), bounded by the timeout.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        self.run(self.topology.pubsub(self.timeout)).await
    }

    /// The nodes a key scan visits (every primary of a cluster).
    pub async fn scan_nodes(&self, conn: &mut Conn) -> Result<Vec<Node>, RedisError> {
        self.run(self.topology.scan_nodes(conn)).await
    }

    /// One `SCAN ... MATCH pattern COUNT count` page on `node`.
    pub async fn scan_page(
        &self,
        conn: &mut Conn,
        node: &Node,
        cursor: u64,
        pattern: &str,
        count: usize,
    ) -> Result<(u64, Vec<String>), RedisError> {
        self.run(Topology::scan_page(conn, node, cursor, pattern, count))
            .await
    }

    /// Runs one Redis call within the timeout, or fails at once while Redis is down.
    pub async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, RedisError> {
        if self.backoff.is_down() {
            return Err(RedisError::BackingOff);
        }
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisError::Call(e)),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        };
        let (outage, read_only) = match &result {
            Ok(_) => (false, false),
            Err(e) => (e.is_outage(), e.is_read_only()),
        };
        if (outage || read_only) && Box::pin(self.failed_over()).await {
            // The next call goes to the new primary: no back-off.
            return result;
        }
        if outage && self.backoff.fail() {
            self.start_probe();
        }
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result
    }

    /// Probes Redis in the background until it answers, then lets calls through again.
    fn start_probe(&self) {
        log::warn!(
            "redis unavailable: calls skip it until a background probe (every {PROBE_EVERY:?}) gets an answer"
        );
        crate::metrics::redis_backoff();
        let me = self.me.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(PROBE_EVERY).await;
                let Some(handle) = me.upgrade() else { return };
                if handle.ping().await {
                    handle.backoff.recover();
                    handle.healthy.store(true, Ordering::Relaxed);
                    log::info!("redis reachable again");
                    return;
                }
                // With sentinels, a primary that is gone may have been replaced.
                handle.failed_over().await;
            }
        });
    }

    /// One `PING` within the timeout, on the shared connection (opened if needed).
    async fn ping(&self) -> bool {
        let conn = match self.conn.load_full() {
            Some(conn) => Conn::clone(&conn),
            None => {
                let Ok(_one) = self.opening.try_lock() else {
                    return false;
                };
                match tokio::time::timeout(self.timeout, self.topology.open(self.timeout)).await {
                    Ok(Ok(conn)) => {
                        self.conn.store(Some(Arc::new(conn.clone())));
                        self.topology.follow_failovers(&self.conn);
                        conn
                    }
                    _ => return false,
                }
            }
        };
        let mut conn = conn;
        let ping = redis::cmd("PING");
        let answer = ping.query_async::<String>(&mut conn);
        matches!(tokio::time::timeout(self.timeout, answer).await, Ok(Ok(_)))
    }

    /// With sentinels: whether the primary moved, and if so drops the connection to the old one
    /// (the next call opens one to the new). One caller asks at a time; the others see false.
    async fn failed_over(&self) -> bool {
        let Ok(_one) = self.opening.try_lock() else {
            return false;
        };
        if !self.topology.primary_moved(self.timeout).await {
            return false;
        }
        log::warn!(
            "redis: the sentinels name a new primary for {}; reconnecting",
            self.description
        );
        self.conn.store(None);
        true
    }
}

/// Whether calls may go to Redis: not after a timeout or a connection failure, until the
/// background probe gets an answer.
struct Backoff {
    down: AtomicBool,
}

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            down: AtomicBool::new(false),
        }
    }

    fn is_down(&self) -> bool {
        self.down.load(Ordering::Relaxed)
    }

    /// Marks Redis down; true when this starts an outage (the caller starts the probe).
    fn fail(&self) -> bool {
        // Read first: the calls failing together cost no shared write each.
        !self.down.load(Ordering::Relaxed) && !self.down.swap(true, Ordering::AcqRel)
    }

    fn recover(&self) {
        self.down.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> RedisConfig {
        serde_yaml::from_str(yaml).expect("redis section")
    }

    #[test]
    fn one_topology_is_chosen_and_every_url_checked() {
        let mut errors = ConfigErrors::default();
        assert!(build(
            Some(&cfg("{url: redis://a:1, cluster: [redis://a:1]}")),
            None,
            &mut errors
        )
        .is_none());
        assert!(
            errors.to_string().contains("redis: set only one of"),
            "{errors}"
        );

        let mut errors = ConfigErrors::default();
        assert!(build(
            Some(&cfg("cluster: [redis://a:1, http://b:1]")),
            None,
            &mut errors
        )
        .is_none());
        assert!(
            errors.to_string().contains("redis.cluster[1]: invalid URL"),
            "{errors}"
        );

        let mut errors = ConfigErrors::default();
        assert!(build(Some(&cfg("sentinel: {nodes: []}")), None, &mut errors).is_none());
        let text = errors.to_string();
        assert!(
            text.contains("redis.sentinel.master") && text.contains("redis.sentinel.nodes"),
            "{text}"
        );

        let mut errors = ConfigErrors::default();
        assert!(build(Some(&cfg("url: http://x:1")), None, &mut errors).is_none());
        assert!(
            errors.to_string().contains("redis.url: invalid URL"),
            "{errors}"
        );

        let mut errors = ConfigErrors::default();
        let c = build(
            Some(&cfg("cluster: [redis://127.0.0.1:1, redis://127.0.0.1:2]")),
            None,
            &mut errors,
        );
        assert!(
            c.is_some_and(|c| c.url().starts_with("cluster ")),
            "{errors}"
        );
        let s = build(
            Some(&cfg(
                "sentinel: {master: m, nodes: [\"redis://:hunter2@127.0.0.1:26379\"]}",
            )),
            None,
            &mut errors,
        );
        let shown = s.map(|s| s.url().to_owned()).unwrap_or_default();
        assert!(shown.starts_with("sentinel m at"), "{errors}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn an_outage_is_started_once_and_ends_with_a_recovery() {
        let b = Backoff::new();
        assert!(!b.is_down());
        assert!(b.fail(), "the first failure starts the outage");
        assert!(!b.fail(), "the next ones do not start another");
        assert!(b.is_down());
        b.recover();
        assert!(!b.is_down());
        assert!(b.fail());
    }

    #[tokio::test]
    async fn calls_fail_at_once_while_down() {
        // A listener that accepts and never answers: a frozen Redis.
        let frozen = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = frozen.local_addr().expect("addr");
        let mut errors = ConfigErrors::default();
        let url = format!("{{url: \"redis://{addr}/0\", timeout: 50ms}}");
        let handle = build(Some(&cfg(&url)), None, &mut errors).expect("handle");
        let started = std::time::Instant::now();
        assert!(
            handle.connection().await.is_err(),
            "no answer to the handshake"
        );
        assert!(handle.backoff.is_down());
        for _ in 0..100 {
            assert!(matches!(
                handle.connection().await,
                Err(RedisError::BackingOff)
            ));
        }
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "nobody waited"
        );
        assert!(!handle.is_healthy());
        drop(frozen);
    }

    #[test]
    fn an_unchanged_section_keeps_its_handle() {
        let mut errors = ConfigErrors::default();
        let a = build(Some(&cfg("url: redis://127.0.0.1:1/0")), None, &mut errors).expect("handle");
        let same = build(
            Some(&cfg("url: redis://127.0.0.1:1/0")),
            Some(&a),
            &mut errors,
        )
        .expect("handle");
        assert!(Arc::ptr_eq(&a, &same));
        let other = build(
            Some(&cfg("{url: redis://127.0.0.1:1/0, timeout: 1s}")),
            Some(&a),
            &mut errors,
        )
        .expect("handle");
        assert!(!Arc::ptr_eq(&a, &other), "a new timeout is a new handle");
        assert!(errors.is_empty(), "{errors}");
    }
}
