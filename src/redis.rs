//! The `redis` section: one connection to one Redis, shared by the Redis-backed features
//! (revocations, rate limits). The handle belongs to the snapshot, so a reload that removes or
//! changes the section drops it; a reload that keeps it keeps the connection. The connection is
//! made on first use, on a pingora runtime (after any daemon fork); every call is bounded by the
//! configured timeout, and the outcome of the last call feeds `/health`.

use crate::config::file::RedisConfig;
use crate::config::ConfigErrors;
use redis::aio::ConnectionManager;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::OnceCell;

const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// Redis did not answer in time, or answered with an error.
#[derive(Debug, thiserror::Error)]
pub enum RedisError {
    #[error("redis unavailable: {0}")]
    Call(#[from] redis::RedisError),
    #[error("redis unavailable: no answer within {0:?}")]
    Timeout(Duration),
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
    #[error("must be positive")]
    NotPositive,
}

pub struct RedisHandle {
    client: redis::Client,
    url: String,
    timeout: Duration,
    conn: OnceCell<ConnectionManager>,
    healthy: AtomicBool,
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
    if timeout.is_zero() {
        errors.push("redis.timeout", RedisConfigError::NotPositive);
    }
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

    /// Runs one Redis call within the timeout.
    pub async fn run<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, redis::RedisError>>,
    ) -> Result<T, RedisError> {
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisError::Call(e)),
            Err(_) => Err(RedisError::Timeout(self.timeout)),
        };
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result
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
