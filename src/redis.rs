//! One Redis connection per `(url, timeout)`, shared by the Redis-backed features (revocations,
//! rate limits). Made on first use, on a pingora runtime (after any daemon fork); every call is
//! bounded by the configured timeout, and the outcome of the last call feeds `/health`.

use redis::aio::ConnectionManager;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;
use tokio::sync::OnceCell;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(100);

/// Redis did not answer in time, or answered with an error.
#[derive(Debug, thiserror::Error)]
#[error("redis unavailable: {0}")]
pub struct RedisError(pub String);

pub struct RedisHandle {
    client: redis::Client,
    pub timeout: Duration,
    conn: OnceCell<ConnectionManager>,
    healthy: AtomicBool,
}

static HANDLES: LazyLock<Mutex<HashMap<String, Arc<RedisHandle>>>> =
    LazyLock::new(Default::default);

/// The handle for `url`, shared with every other user of the same URL and timeout.
pub fn handle(url: &str, timeout: Duration) -> Result<Arc<RedisHandle>, String> {
    let key = format!("{url} {timeout:?}");
    let mut handles = HANDLES
        .lock()
        .map_err(|_| "redis registry poisoned".to_owned())?;
    if let Some(h) = handles.get(&key) {
        return Ok(Arc::clone(h));
    }
    let client = redis::Client::open(url).map_err(|e| format!("invalid redis URL {url:?}: {e}"))?;
    let h = Arc::new(RedisHandle {
        client,
        timeout,
        conn: OnceCell::new(),
        healthy: AtomicBool::new(true),
    });
    handles.insert(key, Arc::clone(&h));
    Ok(h)
}

/// `Some(true)` if every handle's last call succeeded, `Some(false)` if one failed, `None` when
/// no Redis is in use.
pub fn status() -> Option<bool> {
    let handles = HANDLES.lock().ok()?;
    if handles.is_empty() {
        return None;
    }
    Some(handles.values().all(|h| h.healthy.load(Ordering::Relaxed)))
}

impl RedisHandle {
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
    pub async fn run<T, E: std::fmt::Display>(
        &self,
        fut: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, RedisError> {
        let result = match tokio::time::timeout(self.timeout, fut).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(RedisError(e.to_string())),
            Err(_) => Err(RedisError(format!("no answer within {:?}", self.timeout))),
        };
        self.healthy.store(result.is_ok(), Ordering::Relaxed);
        result
    }
}
