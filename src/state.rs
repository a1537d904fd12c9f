//! State shared by every service of the process: the live snapshot, and reloading it.

use crate::config::{load_with, Changes, ConfigErrors};
use crate::etcd::Document;
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
    /// One reload at a time (SIGHUP, etcd and the admin API may ask together). Holds the etcd
    /// document running, when the config comes from etcd.
    reloading: Mutex<Option<Document>>,
}

impl Shared {
    /// `remote`: the etcd document `snapshot` was compiled with, if any.
    pub fn new(
        snapshot: Snapshot,
        config_path: PathBuf,
        demo: bool,
        remote: Option<Document>,
    ) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            config_path,
            demo,
            reloading: Mutex::new(remote),
        })
    }

    /// Re-reads the config file (with the etcd document running, if any) and swaps the snapshot
    /// in whole. On any problem the running snapshot stays and every problem is returned.
    /// Counted in `config_reloads_total`, and logged (with what changed, or every problem).
    /// Blocking (file reads, DNS, key parsing): call it off the async threads.
    pub fn reload(&self) -> Result<Changes, ConfigErrors> {
        let mut running = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let remote = running.clone();
        self.reload_with(&mut running, remote)
    }

    /// As [`Shared::reload`], with `doc` as the etcd document; it becomes the running one if it
    /// is applied. The outcome goes to the etcd status (`/health`, `/api/config`) and a copy of
    /// an applied document to the local copy.
    pub fn apply_etcd(&self, doc: Document) -> Result<Changes, ConfigErrors> {
        let mut running = self.reloading.lock().unwrap_or_else(|p| p.into_inner());
        let revision = doc.revision;
        let result = self.reload_with(&mut running, Some(doc.clone()));
        let Some(status) = crate::etcd::status() else {
            return result;
        };
        match &result {
            Ok(_) => {
                status.applied(revision);
                if let Some(cfg) = &self.snapshot.load().file.etcd {
                    crate::etcd::command::keep_copy(cfg, &self.config_path, &doc);
                }
            }
            Err(errors) => status.refused(revision, errors),
        }
        result
    }

    /// The etcd document running, if the config comes from etcd.
    pub fn etcd_document(&self) -> Option<Document> {
        self.reloading
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn reload_with(
        &self,
        running: &mut Option<Document>,
        remote: Option<Document>,
    ) -> Result<Changes, ConfigErrors> {
        // Read, compile and swap in on a thread of its own, which also drops the replaced
        // snapshot: the memory of both goes back when the thread ends.
        let load = || {
            let current = self.snapshot.load_full();
            let text = remote.as_ref().map(|d| d.text.as_str());
            let mut parsed = load_with(&self.config_path, text);
            parsed.demo = self.demo;
            parsed.revision = remote.as_ref().map(|d| d.revision);
            compile(parsed, Some(&current)).map(|next| {
                let changes = Changes::between(&current.file, &next.file);
                if let (Some(old), Some(new)) = (current.auth.as_deref(), next.auth.as_deref()) {
                    new.revoke_removed_users(old);
                }
                self.snapshot.store(Arc::new(next));
                changes
            })
        };
        let result = crate::memory::on_own_thread(load).unwrap_or_else(|e| {
            let mut errors = ConfigErrors::default();
            errors.push(".", format!("cannot start a thread to load it: {e}"));
            Err(errors)
        });
        if result.is_ok() {
            *running = remote.clone();
        }
        crate::metrics::reload(result.is_ok());
        crate::memory::release_after_load();
        self.log_reload(&result, remote.map(|d| d.revision));
        result
    }

    fn log_reload(&self, result: &Result<Changes, ConfigErrors>, revision: Option<i64>) {
        let path = match revision {
            Some(r) => format!("{} and etcd revision {r}", self.config_path.display()),
            None => self.config_path.display().to_string(),
        };
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
