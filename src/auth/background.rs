//! The auth section's background services, run on the live snapshot: the revocation sync and
//! the JWKS refresh.

use super::jwks::{MIN_REFETCH, REFRESH_EVERY, RETRY_EVERY};
use crate::state::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// Pulls other instances' revocations from Redis and drops expired entries.
pub struct RevocationSync {
    shared: Arc<Shared>,
}

impl RevocationSync {
    pub fn new(shared: Arc<Shared>) -> RevocationSync {
        RevocationSync { shared }
    }
}

#[async_trait]
impl BackgroundService for RevocationSync {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut failing = false;
        loop {
            let snapshot = self.shared.snapshot.load_full();
            if let Some(auth) = &snapshot.auth {
                match auth.revocations().sync().await {
                    Ok(_) if failing => {
                        failing = false;
                        log::info!("revocation store reachable again");
                    }
                    Ok(_) => {}
                    Err(e) if !failing => {
                        failing = true;
                        log::warn!("{e}; checks use the revocations known locally");
                    }
                    Err(_) => {}
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(super::revocation::SYNC_EVERY) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
}

/// Keeps the key set of the live snapshot fresh: at once, then every `REFRESH_EVERY` (every
/// few seconds while a fetch fails or the set is still empty). A set a reload removed is no
/// longer fetched; one a reload kept keeps its schedule.
pub struct JwksRefresher {
    shared: Arc<Shared>,
}

impl JwksRefresher {
    pub fn new(shared: Arc<Shared>) -> JwksRefresher {
        JwksRefresher { shared }
    }
}

#[async_trait]
impl BackgroundService for JwksRefresher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        // The URL of the set being kept fresh, when it is due next, and when it was last fetched.
        let mut due: Option<(String, tokio::time::Instant)> = None;
        let mut fetched = tokio::time::Instant::now() - MIN_REFETCH;
        loop {
            let snapshot = self.shared.snapshot.load_full();
            let set = snapshot.auth.as_ref().and_then(|a| a.jwks()).cloned();
            drop(snapshot);
            if let Some(set) = &set {
                let now = tokio::time::Instant::now();
                let scheduled = match &due {
                    Some((url, at)) if *url == set.url => *at <= now,
                    _ => true,
                };
                let asked = now >= fetched + MIN_REFETCH && set.take_wanted();
                if scheduled || asked {
                    fetched = now;
                    let wait = match set.refresh().await {
                        Ok(n) => {
                            log::info!(
                                "jwks {}: {n} keys loaded",
                                crate::config::without_url_credentials(&set.url)
                            );
                            REFRESH_EVERY
                        }
                        Err(e) => {
                            log::warn!(
                                "jwks {}: refresh failed, keeping {} keys: {e}",
                                set.url,
                                set.len()
                            );
                            RETRY_EVERY
                        }
                    };
                    due = Some((set.url.clone(), tokio::time::Instant::now() + wait));
                }
            }
            let wanted = async {
                match &set {
                    Some(set) => set.wanted().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = wanted => {}
                _ = shutdown.changed() => break,
            }
        }
    }
}
