//! Background service keeping the revocation store of the live snapshot up to date: pulls
//! other instances' revocations from Redis and drops expired entries.

use crate::state::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;

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
                match auth.revocations.sync().await {
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
