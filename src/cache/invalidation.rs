//! Keeps the in-process tier in front of Redis honest: every instance subscribes to the purge
//! channel and drops what another instance purged. While the subscription is down, purges may
//! be missed, so each (re)subscription starts with an empty in-process tier.

use super::purge::Purge;
use super::storage::Store;
use crate::state::Shared;
use async_trait::async_trait;
use futures::StreamExt;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

/// How often the listener checks for a changed store, and waits after a failure.
const RECHECK: Duration = Duration::from_secs(1);

pub struct PurgeListener {
    shared: Arc<Shared>,
}

impl PurgeListener {
    pub fn new(shared: Arc<Shared>) -> PurgeListener {
        PurgeListener { shared }
    }

    /// The store of the live snapshot, when it has a Redis tier with an in-process tier.
    fn current(&self) -> Option<Arc<Store>> {
        let snapshot = self.shared.snapshot.load();
        let cache = snapshot.cache.as_ref()?;
        cache.store.purge_channel()?;
        Some(Arc::clone(&cache.store))
    }

    /// Listens until the live store changes or the subscription fails.
    async fn listen(&self, store: &Arc<Store>, shutdown: &mut ShutdownWatch) {
        let (Some(redis), Some(channel)) = (store.redis(), store.purge_channel()) else {
            return;
        };
        let mut pubsub = match redis.pubsub().await {
            Ok(p) => p,
            Err(e) => {
                log::debug!("cache purge channel: {e}");
                return;
            }
        };
        if let Err(e) = redis.run(pubsub.subscribe(channel)).await {
            log::debug!("cache purge channel: {e}");
            return;
        }
        let cleared = store.drop_local(&Purge::prefix(store.key_prefix(), "/"));
        log::debug!("cache purge channel {channel}: subscribed, {cleared} local entries dropped");
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => {
                    let Some(msg) = msg else { return };
                    let payload: String = msg.get_payload().unwrap_or_default();
                    if let Some(purge) = Purge::from_message(&payload) {
                        store.drop_local(&purge);
                    }
                }
                _ = tokio::time::sleep(RECHECK) => {
                    if !self.current().is_some_and(|s| Arc::ptr_eq(&s, store)) {
                        return;
                    }
                }
                _ = shutdown.changed() => return,
            }
        }
    }
}

#[async_trait]
impl BackgroundService for PurgeListener {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        while !*shutdown.borrow() {
            if let Some(store) = self.current() {
                self.listen(&store, &mut shutdown).await;
            }
            tokio::select! {
                _ = tokio::time::sleep(RECHECK) => {}
                _ = shutdown.changed() => break,
            }
        }
    }
}
