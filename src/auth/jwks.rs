//! Verify-only mode: the public keys of an identity provider, fetched from `jwks_url` (HTTP or
//! HTTPS, through pingora's own connector) and refreshed in the background. Keys are looked up
//! by `kid`; a token without `kid` is checked against the only key when there is exactly one.

use crate::http_client::FetchError as FetchFailed;
use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::DecodingKey;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

/// How often the key set is fetched again.
pub const REFRESH_EVERY: Duration = Duration::from_secs(300);
/// Retry delay while the key set could not be fetched.
pub const RETRY_EVERY: Duration = Duration::from_secs(2);
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
const MAX_BODY: usize = 1 << 20;

/// Shortest time between two fetches asked for by tokens with an unknown `kid`.
pub const MIN_REFETCH: Duration = Duration::from_secs(5);

pub struct Jwks {
    pub url: String,
    keys: ArcSwap<HashMap<String, Arc<DecodingKey>>>,
    /// Fingerprint of the keys now in use: a token verified under another set is verified again.
    generation: AtomicU64,
    /// A token named a `kid` the set does not have: fetch again soon (at most every
    /// `MIN_REFETCH`), it may be a key the identity provider just added.
    wanted: AtomicBool,
    wake: Notify,
}

impl Jwks {
    pub fn new(url: &str) -> Jwks {
        Jwks {
            url: url.to_owned(),
            keys: ArcSwap::from_pointee(HashMap::new()),
            generation: AtomicU64::new(0),
            wanted: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// The key for `kid` (or the only key when the token names none). An unknown `kid` asks
    /// the background refresh for an early fetch.
    pub fn key(&self, kid: Option<&str>) -> Option<Arc<DecodingKey>> {
        let keys = self.keys.load();
        let found = match kid {
            Some(kid) => keys.get(kid).cloned(),
            None if keys.len() == 1 => keys.values().next().cloned(),
            None => None,
        };
        if found.is_none() && !self.wanted.swap(true, Ordering::Relaxed) {
            self.wake.notify_one();
        }
        found
    }

    /// Changes whenever the key set does.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// True (once) when a token asked for a key the set does not have.
    pub fn take_wanted(&self) -> bool {
        self.wanted.swap(false, Ordering::Relaxed)
    }

    /// Resolves when a token asks for an unknown key.
    pub async fn wanted(&self) {
        self.wake.notified().await;
    }

    pub fn len(&self) -> usize {
        self.keys.load().len()
    }

    /// Fetches the set and replaces the keys; the old keys stay on any failure.
    pub async fn refresh(&self) -> Result<usize, FetchError> {
        let body = fetch(&self.url).await?;
        let set: JwkSet = serde_json::from_slice(&body).map_err(FetchError::NotJwks)?;
        let mut fingerprint = std::collections::hash_map::DefaultHasher::new();
        let mut keys = HashMap::new();
        for (i, jwk) in set.keys.iter().enumerate() {
            let kid = jwk.common.key_id.clone().unwrap_or_else(|| format!("#{i}"));
            match DecodingKey::from_jwk(jwk) {
                Ok(key) => {
                    kid.hash(&mut fingerprint);
                    serde_json::to_string(jwk)
                        .unwrap_or_default()
                        .hash(&mut fingerprint);
                    keys.insert(kid, Arc::new(key));
                }
                Err(e) => log::warn!(
                    "jwks {}: key {kid} skipped: {e}",
                    crate::config::without_url_credentials(&self.url)
                ),
            }
        }
        if keys.is_empty() {
            return Err(FetchError::NoUsableKey);
        }
        let n = keys.len();
        self.keys.store(Arc::new(keys));
        // Never 0, the value before any fetch.
        self.generation
            .store(fingerprint.finish() | 1, Ordering::Release);
        Ok(n)
    }
}

/// The key set could not be fetched or read.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0}")]
    Fetch(#[from] FetchFailed),
    #[error("status {0}")]
    Status(u16),
    #[error("not a JWK set: {0}")]
    NotJwks(serde_json::Error),
    #[error("the set has no usable key")]
    NoUsableKey,
}

/// GET `url` and return the body of a 2xx answer.
async fn fetch(url: &str) -> Result<Vec<u8>, FetchError> {
    let answer = crate::http_client::get(url, "application/json", FETCH_TIMEOUT, MAX_BODY).await?;
    if !(200..300).contains(&answer.status) {
        return Err(FetchError::Status(answer.status));
    }
    Ok(answer.body)
}
