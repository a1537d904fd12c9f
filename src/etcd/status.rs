//! What `/health`, `/api/config` and `/api/reload` say about the etcd source: the revision
//! running, whether the watch is connected, and the last document refused. One per process (there
//! is one config source), set at start.

use crate::config::ConfigErrors;
use serde_json::{json, Value};
use std::sync::{Mutex, OnceLock};

static STATUS: OnceLock<Status> = OnceLock::new();

/// The etcd source's status, when the config comes from etcd.
pub fn status() -> Option<&'static Status> {
    STATUS.get()
}

#[derive(Debug)]
pub struct Status {
    pub endpoints: Vec<String>,
    pub key: String,
    state: Mutex<State>,
}

#[derive(Debug, Default, Clone)]
struct State {
    connected: bool,
    /// The revision of the document running.
    revision: i64,
    /// Started from the local copy, and etcd has not been read since.
    from_copy: bool,
    /// The key was deleted (the running config stays).
    deleted: bool,
    refused: Option<(i64, Vec<Value>)>,
}

impl Status {
    /// Sets the process's status (once; later calls keep the first).
    pub fn install(endpoints: Vec<String>, key: String, revision: i64, from_copy: bool) {
        let state = State {
            revision,
            from_copy,
            connected: !from_copy,
            ..State::default()
        };
        let _ = STATUS.set(Status {
            endpoints,
            key,
            state: Mutex::new(state),
        });
    }

    fn with<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        f(&mut self.state.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub fn connected(&self, up: bool) {
        self.with(|s| s.connected = up);
        crate::metrics::etcd_connected(up);
    }

    pub fn is_connected(&self) -> bool {
        self.with(|s| s.connected)
    }

    /// The revision running.
    pub fn revision(&self) -> i64 {
        self.with(|s| s.revision)
    }

    /// Read from etcd (not only from the local copy).
    pub fn read_from_etcd(&self) {
        self.with(|s| s.from_copy = false);
    }

    pub fn applied(&self, revision: i64) {
        self.with(|s| {
            s.revision = revision;
            s.deleted = false;
            s.refused = None;
        });
        crate::metrics::etcd_revision(revision);
    }

    pub fn refused(&self, revision: i64, errors: &ConfigErrors) {
        let problems = errors
            .iter()
            .map(|e| json!({"path": e.path, "message": e.message}))
            .collect();
        self.with(|s| s.refused = Some((revision, problems)));
    }

    /// The revision of the last document refused, if the running one is older.
    pub fn refused_revision(&self) -> Option<i64> {
        self.with(|s| s.refused.as_ref().map(|(r, _)| *r))
    }

    pub fn deleted(&self) {
        self.with(|s| s.deleted = true);
    }

    /// `{"kind": "etcd", "key", "endpoints", "revision", "connected", ...}` for the admin API and
    /// `/health`.
    pub fn describe(&self) -> Value {
        let s = self.with(|s| s.clone());
        let mut out = json!({
            "kind": "etcd",
            "key": self.key,
            "endpoints": self.endpoints,
            "revision": s.revision,
            "connected": s.connected,
        });
        if s.from_copy {
            out["from_local_copy"] = json!(true);
        }
        if s.deleted {
            out["key_deleted"] = json!(true);
        }
        if let Some((revision, problems)) = s.refused {
            out["refused"] = json!({"revision": revision, "problems": problems});
        }
        out
    }
}

impl Status {
    /// `{"source": "etcd", "revision", "refused_revision"?}` for `/health` (public: no
    /// endpoints, no problems).
    pub fn summary(&self) -> Value {
        let s = self.with(|s| s.clone());
        let mut out = json!({"source": "etcd", "revision": s.revision});
        if let Some((revision, _)) = s.refused {
            out["refused_revision"] = json!(revision);
        }
        out
    }
}

/// The source of a config read from the file alone.
pub fn describe_file(path: &std::path::Path) -> Value {
    json!({"kind": "file", "path": path.display().to_string()})
}
