//! State shared by every service of the process: the live snapshot and reload bookkeeping.

use crate::config::{load_file, ConfigErrors};
use crate::routing::{compile, Snapshot};
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Counts of reload attempts, and the problems of the last failed one.
#[derive(Debug, Default)]
pub struct ReloadStats {
    pub succeeded: AtomicU64,
    pub failed: AtomicU64,
    pub last_errors: Mutex<Vec<String>>,
}

/// Process-wide state. Services hold it as `Arc<Shared>`.
pub struct Shared {
    /// The snapshot new requests start with.
    pub snapshot: ArcSwap<Snapshot>,
    pub config_path: PathBuf,
    pub reloads: ReloadStats,
}

impl Shared {
    pub fn new(snapshot: Snapshot, config_path: PathBuf) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            config_path,
            reloads: ReloadStats::default(),
        })
    }

    /// Re-reads the config file and swaps the snapshot in whole. On any problem the running
    /// snapshot stays, and every problem is returned (and kept for the admin API).
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let parsed = load_file(&self.config_path);
        let current = self.snapshot.load_full();
        match compile(&parsed, Some(&current)) {
            Ok(next) => {
                self.snapshot.store(Arc::new(next));
                self.reloads.succeeded.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.reloads.last_errors.lock() {
                    last.clear();
                }
                Ok(())
            }
            Err(errors) => {
                self.reloads.failed.fetch_add(1, Ordering::Relaxed);
                if let Ok(mut last) = self.reloads.last_errors.lock() {
                    *last = errors.iter().map(ToString::to_string).collect();
                }
                Err(errors)
            }
        }
    }
}
