//! Watches the config document and applies each new revision through the same path as a
//! SIGHUP. When etcd is lost the gateway keeps serving; it reconnects with back-off, reads the
//! key again (applying it if it changed meanwhile) and watches from the revision of that read,
//! so no change is missed and none is applied twice.

use super::{call_error, connect, document_key, fetch, Document, EtcdError};
use crate::config::file::EtcdConfig;
use crate::state::Shared;
use async_trait::async_trait;
use etcd_client::{EventType, WatchOptions};
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use std::sync::Arc;
use std::time::Duration;

const FIRST_RETRY: Duration = Duration::from_millis(250);
const LAST_RETRY: Duration = Duration::from_secs(10);

pub struct EtcdWatcher {
    shared: Arc<Shared>,
    cfg: EtcdConfig,
}

impl EtcdWatcher {
    pub fn new(shared: Arc<Shared>, cfg: EtcdConfig) -> EtcdWatcher {
        EtcdWatcher { shared, cfg }
    }

    /// Applies `doc` unless it is the one running (compiled off the async threads).
    async fn apply(&self, doc: Document) {
        // The running one, or one already refused (read again after a reconnect).
        let refused = super::status().and_then(|s| s.refused_revision());
        if self.shared.etcd_document().as_ref() == Some(&doc) || refused == Some(doc.revision) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        if let Err(e) = tokio::task::spawn_blocking(move || shared.apply_etcd(doc)).await {
            log::error!("applying the etcd document did not finish: {e}; the running config stays");
        }
    }

    /// One connection: read the key, then watch it until the stream ends or fails.
    async fn session(&self) -> Result<(), EtcdError> {
        let status = super::status();
        let mut client = connect(&self.cfg).await?;
        let (doc, revision) = fetch(&self.cfg, &mut client).await?;
        if let Some(s) = status {
            s.connected(true);
            s.read_from_etcd();
        }
        match doc {
            Some(doc) => self.apply(doc).await,
            None => key_deleted(&self.cfg),
        }
        let key = document_key(&self.cfg);
        let options = WatchOptions::new().with_start_revision(revision + 1);
        let mut stream = client
            .watch(key.as_str(), Some(options))
            .await
            .map_err(call_error(&self.cfg))?;
        loop {
            let answer = stream.message().await.map_err(call_error(&self.cfg))?;
            let Some(answer) = answer else {
                return Ok(());
            };
            if answer.canceled() || answer.compact_revision() > 0 {
                // Cancelled (a member without a leader) or compacted past our revision: read
                // the key again from another session.
                return Ok(());
            }
            // Several writes in one answer: the last one is the document now.
            let last = answer.events().iter().last().map(|ev| {
                let kv = ev.kv();
                match (ev.event_type(), kv.and_then(|kv| kv.value_str().ok())) {
                    (EventType::Put, Some(text)) => Some(Document {
                        text: text.to_owned(),
                        revision: kv.map_or(0, |kv| kv.mod_revision()),
                    }),
                    _ => None,
                }
            });
            match last {
                Some(Some(doc)) => self.apply(doc).await,
                Some(None) => key_deleted(&self.cfg),
                None => {}
            }
        }
    }
}

fn key_deleted(cfg: &EtcdConfig) {
    log::warn!(
        target: "api_gateway::reload",
        "the config document {} is not in etcd (deleted, or not text); the running config stays",
        document_key(cfg)
    );
    if let Some(s) = super::status() {
        s.deleted();
    }
}

#[async_trait]
impl BackgroundService for EtcdWatcher {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let mut retry = FIRST_RETRY;
        loop {
            let outcome = tokio::select! {
                outcome = self.session() => outcome,
                _ = shutdown.changed() => return,
            };
            // A session that got as far as watching starts its back-off afresh.
            if let Some(s) = super::status() {
                if s.is_connected() {
                    retry = FIRST_RETRY;
                }
                s.connected(false);
            }
            match outcome {
                // A session that ended cleanly (a cancelled or compacted watch) starts again
                // after the shortest pause, so a member that keeps cancelling is not spun on.
                Ok(()) => retry = FIRST_RETRY,
                Err(e) => log::warn!(
                    "etcd config watch: {e}; serving revision {}, retrying in {retry:?}",
                    super::status().map_or(0, |s| s.revision())
                ),
            }
            // Jitter, so a fleet does not come back to etcd in step.
            let pause = retry.mul_f64(0.5 + fastrand::f64() / 2.0);
            tokio::select! {
                _ = tokio::time::sleep(pause) => {}
                _ = shutdown.changed() => return,
            }
            retry = (retry * 2).min(LAST_RETRY);
        }
    }
}
