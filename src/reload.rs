//! SIGHUP reloads the config file. Runs as a pingora background service, so it starts after a
//! daemon fork, and the proxy listener waits for it: a SIGHUP never meets the default action.

use crate::state::Shared;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use pingora::services::ServiceReadyNotifier;
use std::sync::Arc;
use tokio::signal::unix::{signal, SignalKind};

pub struct ConfigReloader {
    shared: Arc<Shared>,
}

impl ConfigReloader {
    pub fn new(shared: Arc<Shared>) -> ConfigReloader {
        ConfigReloader { shared }
    }

    /// Compiles the file on a blocking thread (it reads files and resolves names); the
    /// outcome is logged by [`Shared::reload`].
    async fn reload(&self) {
        let shared = Arc::clone(&self.shared);
        if let Err(e) = tokio::task::spawn_blocking(move || shared.reload()).await {
            log::error!("reload did not finish: {e}; the running config stays");
        }
    }
}

#[async_trait]
impl BackgroundService for ConfigReloader {
    async fn start_with_ready_notifier(
        &self,
        mut shutdown: ShutdownWatch,
        ready: ServiceReadyNotifier,
    ) {
        let mut hangups = match signal(SignalKind::hangup()) {
            Ok(s) => s,
            Err(e) => {
                log::error!("cannot watch SIGHUP, reload by signal is off: {e}");
                ready.notify_ready();
                return;
            }
        };
        ready.notify_ready();
        // What loading the config at start freed (this runs after any daemon fork).
        crate::memory::release_after_load();
        loop {
            tokio::select! {
                got = hangups.recv() => match got {
                    Some(()) => self.reload().await,
                    None => break,
                },
                _ = shutdown.changed() => break,
            }
        }
    }
}
