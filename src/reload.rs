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

    /// Compiles the file on a blocking thread (it reads files and resolves names) and reports.
    async fn reload(&self) {
        let path = self.shared.config_path.display();
        let before = self.shared.snapshot.load_full();
        let shared = Arc::clone(&self.shared);
        let result = match tokio::task::spawn_blocking(move || shared.reload()).await {
            Ok(result) => result,
            Err(e) => {
                log::error!("reload of {path} did not finish: {e}; the running config stays");
                return;
            }
        };
        match result {
            Ok(()) => {
                let snap = self.shared.snapshot.load();
                log::info!("config reloaded from {path}: {} routes", snap.routes.len());
                for w in crate::snapshot::warnings(&snap.file) {
                    log::warn!("{w}");
                }
                let (old, new) = (&before.file, &snap.file);
                let fixed = [
                    ("listen", old.listen != new.listen),
                    ("server", old.server != new.server),
                    (
                        "log",
                        old.log.level != new.log.level || old.log.format != new.log.format,
                    ),
                ];
                for (section, changed) in fixed {
                    if changed {
                        log::warn!(
                            "{section}: changed in {path}, but takes effect only on restart or upgrade (-u)"
                        );
                    }
                }
            }
            Err(errors) => {
                for e in errors.iter() {
                    log::error!("config problem in {path}: {e}");
                }
                log::error!(
                    "reload rejected, the running config stays ({} problems in {path})",
                    errors.len()
                );
            }
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
