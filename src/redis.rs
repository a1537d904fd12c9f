//! The `redis` section: one connection to one Redis, shared by the Redis-backed features
//! (revocations, rate limits). The handle belongs to the snapshot, so a reload that removes or
//! changes the section drops it; a reload that keeps it keeps the connection. The connection is
//! made on first use, on a pingora runtime (after any daemon fork); every call is bounded by the
//! configured timeout, and the outcome of the last call feeds `/health`.
//!
//! A Redis that times out or drops connections is not waited on by every request: after such a
//! failure, calls fail at once for [`BACKOFF`], then one call at a time probes it until one
//! succeeds. Each feature's own error policy (`on_store_error`, cache misses) applies meanwhile.

use crate::config::file::RedisConfig;
use crate::config::ConfigErrors;
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::OnceCell;

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// How long calls skip Redis after a timeout or a connection failure.
pub const BACKOFF: Duration = Duration::from_secs(1);

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
}

/// A problem in the `redis` section.
#[derive(Debug, thiserror::Error)]
pub enum RedisConfigError {
    #[error("set url")]
    NoUrl,
    #[error(
        "redis cluster is not supported by this version: point url at one Redis (a primary, or a proxy in front of the cluster)"
    )]
    Cluster,
    #[error("invalid URL {0:?}: expected redis:// or rediss://")]
    Scheme(String),
    #[error("invalid URL {url:?}: {source}")]
    Url {
        url: String,
        source: redis::RedisError,
    },
}

pub struct RedisHandle {
    client: redis::Client,
    url: String,
    timeout: Duration,
    conn: OnceCell<ConnectionManager>,
    healthy: AtomicBool,
    backoff: Backoff,
}

impl std::fmt::Debug for RedisHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisHandle")
            .field("url", &self.url)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Checks the section and builds its handle. `previous` is the running snapshot's handle: kept
/// (with its connection) when the URL and timeout are the same.
pub fn build(
    cfg: Option<&RedisConfig>,
    previous: Option<&Arc<RedisHandle>>,
    errors: &mut ConfigErrors,
) -> Option<Arc<RedisHandle>> {
    let cfg = cfg?;
    if !cfg.cluster.is_empty() {
        errors.push("redis.cluster", RedisConfigError::Cluster);
    }
    let timeout = cfg.timeout.map_or(DEFAULT_TIMEOUT, |t| t.0);
    let Some(url) = cfg.url.as_deref() else {
        if cfg.cluster.is_empty() {
            errors.push("redis", RedisConfigError::NoUrl);
        }
        return None;
    };
    if !url.starts_with("redis://") && !url.starts_with("rediss://") {
        errors.push("redis.url", RedisConfigError::Scheme(url.to_owned()));
        return None;
    }
    if let Some(p) = previous.filter(|p| p.url == url && p.timeout == timeout) {
        return Some(Arc::clone(p));
    }
    match redis::Client::open(url) {
        Ok(client) => Some(Arc::new(RedisHandle {
            client,
            url: url.to_owned(),
            timeout,
            conn: OnceCell::new(),
            healthy: AtomicBool::new(true),
            backoff: Backoff::new(),
        })),
        Err(source) => {
            let url = url.to_owned();
            errors.push("redis.url", RedisConfigError::Url { url, source });
            None
        }
    }
}

impl RedisHandle {
    pub fn url(&self) -> &str {
        &self.url
    }

    /// True unless the last call failed.
    pub fn is_healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    /// The shared connection (cheap clone of a multiplexed connection).
    pub async fn connection(&self) -> Result<ConnectionManager, RedisError> {
        let conn = self
            .run(self.conn.get_or_try_init(|| async {
                let config = redis::aio::ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(self.timeout))
                    .set_response_timeout(Some(self.timeout))
                    .set_number_of_retries(1);
                ConnectionManager::new_with_config(self.client.clone(), config).await
            }))
            .await?;
        Ok(conn.clone())
    }

    /// The timeout of one call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// A new connection of its own (for pub/sub), bounded by the timeout.
    pub async fn pubsub(&self) -> Result<redis::aio::PubSub, RedisError> {
        self.run(self.client.get_async_pubsub()).await
    }

    /// Runs one Redis call within the timeout, or fails at once while backing off.
    pub async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, RedisError> {
        let Some(probe) = self.backoff.enter() else {
            return Err(RedisError::BackingOff);
        };
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisError::Call(e)),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        };
        let outage = result.as_ref().err().is_some_and(RedisError::is_outage);
        self.backoff.leave(probe, outage);
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result
    }
}

/// When calls may go to Redis again, and who probes first.
struct Backoff {
    origin: Instant,
    /// Milliseconds since `origin` before which calls are skipped; 0 when Redis is fine.
    until_ms: AtomicU64,
    /// A call is probing a Redis that failed; the others are skipped until it returns.
    probing: AtomicBool,
}

/// Whether the call let through is the probe.
#[derive(Clone, Copy)]
struct Probe(bool);

impl Backoff {
    fn new() -> Backoff {
        Backoff {
            origin: Instant::now(),
            until_ms: AtomicU64::new(0),
            probing: AtomicBool::new(false),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// `None` when the call must be skipped.
    fn enter(&self) -> Option<Probe> {
        let until = self.until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return Some(Probe(false));
        }
        if self.now_ms() < until || self.probing.swap(true, Ordering::AcqRel) {
            return None;
        }
        Some(Probe(true))
    }

    fn leave(&self, probe: Probe, outage: bool) {
        if outage {
            let until = self
                .now_ms()
                .saturating_add(BACKOFF.as_millis() as u64)
                .max(1);
            // Logged and counted once per outage, not per failed probe.
            if self.until_ms.swap(until, Ordering::Relaxed) == 0 {
                log::warn!("redis unavailable: calls skip it for {BACKOFF:?}, then probe it");
                crate::metrics::redis_backoff();
            }
        } else if self.until_ms.load(Ordering::Relaxed) != 0
            // Read first: a healthy Redis costs no shared write per call.
            && self.until_ms.swap(0, Ordering::Relaxed) != 0
        {
            log::info!("redis reachable again");
        }
        if probe.0 {
            self.probing.store(false, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(yaml: &str) -> RedisConfig {
        serde_yaml::from_str(yaml).expect("redis section")
    }

    #[test]
    fn cluster_is_rejected_and_url_checked() {
        let mut errors = ConfigErrors::default();
        assert!(build(
            Some(&cfg("cluster: [redis://a:1, redis://b:1]")),
            None,
            &mut errors
        )
        .is_none());
        assert_eq!(errors.len(), 1, "{errors}");
        assert!(errors
            .to_string()
            .starts_with("redis.cluster: redis cluster is not supported"));

        let mut errors = ConfigErrors::default();
        assert!(build(Some(&cfg("url: http://x:1")), None, &mut errors).is_none());
        assert!(
            errors.to_string().contains("redis.url: invalid URL"),
            "{errors}"
        );
    }

    #[test]
    fn an_outage_skips_calls_then_one_probe_goes_through() {
        let mut b = Backoff::new();
        b.origin = Instant::now() - Duration::from_secs(10);
        let p = b.enter().expect("fine at first");
        b.leave(p, true);
        assert!(b.enter().is_none(), "skipped while backing off");
        b.until_ms.store(1, Ordering::Relaxed); // the back-off is over
        let probe = b.enter().expect("one probe");
        assert!(probe.0);
        assert!(b.enter().is_none(), "only one probe at a time");
        b.leave(probe, false);
        assert!(b.enter().is_some_and(|p| !p.0), "fine again");
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
