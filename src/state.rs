//! State shared by every service of the process: the live snapshot, and reloading it.

use crate::config::{load_file, Changes, ConfigErrors};
use crate::snapshot::{compile, Snapshot};
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// The log target of reload outcomes (`RUST_LOG=api_gateway::reload=info`).
const RELOAD_LOG: &str = "api_gateway::reload";

/// Process-wide state. Services hold it as `Arc<Shared>`.
pub struct Shared {
    /// The snapshot new requests start with.
    pub snapshot: ArcSwap<Snapshot>,
    pub config_path: PathBuf,
    /// `--demo`: reloads accept the demo secret too.
    pub demo: bool,
    /// One reload at a time (SIGHUP and the admin API may ask together).
    reloading: Mutex<()>,
}

impl Shared {
    pub fn new(snapshot: Snapshot, config_path: PathBuf, demo: bool) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            config_path,
            demo,
            reloading: Mutex::new(()),
        })
    }

    /// Re-reads the config file and swaps the snapshot in whole. On any problem the running
    /// snapshot stays and every problem is returned. Counted in `config_reloads_total`, and
    /// logged (with what changed, or every problem).
    /// Blocking (file reads, DNS, key parsing): call it off the async threads.
    pub fn reload(&self) -> Result<Changes, ConfigErrors> {
        let _one = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let mut parsed = load_file(&self.config_path);
        parsed.demo = self.demo;
        let current = self.snapshot.load_full();
        let result = compile(&parsed, Some(&current)).map(|next| {
            let changes = Changes::between(&current.file, &next.file);
            if let (Some(old), Some(new)) = (current.auth.as_deref(), next.auth.as_deref()) {
                new.revoke_removed_users(old);
            }
            self.snapshot.store(Arc::new(next));
            changes
        });
        crate::metrics::reload(result.is_ok());
        self.log_reload(&result);
        result
    }

    fn log_reload(&self, result: &Result<Changes, ConfigErrors>) {
        let path = self.config_path.display();
        match result {
            Ok(changes) => {
                let snap = self.snapshot.load();
                log::info!(
                    target: RELOAD_LOG,
                    "config reloaded from {path}: {} routes; changed: {}",
                    snap.routes.len(),
                    changes.summary()
                );
                for w in crate::snapshot::warnings(&snap.file) {
                    log::warn!(target: RELOAD_LOG, "{w}");
                }
                for section in &changes.need_restart {
                    log::warn!(
                    target: RELOAD_LOG,
                        "{section}: changed in {path}, but takes effect only on restart or upgrade (-u)"
                    );
                }
            }
            Err(errors) => {
                for e in errors.iter() {
                    log::error!(target: RELOAD_LOG, "config problem in {path}: {e}");
                }
                log::error!(
                    target: RELOAD_LOG,
                    "reload rejected, the running config stays ({} problems in {path})",
                    errors.len()
                );
            }
        }
    }
}
