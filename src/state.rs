//! State shared by every service of the process: the live snapshot, and reloading it.

use crate::config::{load_file, ConfigErrors};
use crate::snapshot::{compile, Snapshot};
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::Arc;

/// Process-wide state. Services hold it as `Arc<Shared>`.
pub struct Shared {
    /// The snapshot new requests start with.
    pub snapshot: ArcSwap<Snapshot>,
    pub config_path: PathBuf,
    /// `--demo`: reloads accept the demo secret too.
    pub demo: bool,
}

impl Shared {
    pub fn new(snapshot: Snapshot, config_path: PathBuf, demo: bool) -> Arc<Shared> {
        Arc::new(Shared {
            snapshot: ArcSwap::from_pointee(snapshot),
            config_path,
            demo,
        })
    }

    /// Re-reads the config file and swaps the snapshot in whole. On any problem the running
    /// snapshot stays and every problem is returned. Counted in `config_reloads_total`.
    /// Blocking (file reads, DNS, key parsing): call it off the async threads.
    pub fn reload(&self) -> Result<(), ConfigErrors> {
        let mut parsed = load_file(&self.config_path);
        parsed.demo = self.demo;
        let current = self.snapshot.load_full();
        let result =
            compile(&parsed, Some(&current)).map(|next| self.snapshot.store(Arc::new(next)));
        crate::metrics::reload(result.is_ok());
        result
    }
}
