//! Read-only view of an upstream for the admin API, metrics and `/health`.

use super::stats::CheckRecord;
use serde::Serialize;
use std::time::UNIX_EPOCH;

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamView {
    pub name: String,
    pub strategy: String,
    pub backends: Vec<BackendView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendView {
    pub addr: String,
    /// The backend's `name` in the config, when it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub weight: usize,
    pub healthy: bool,
    /// Requests in flight on the backend now.
    pub active_connections: usize,
    /// Requests sent to the backend (each retry counts) since it was configured.
    pub requests_total: u64,
    /// Of those, refused or broken connections, timeouts and 5xx answers.
    pub failures_total: u64,
    /// Out of picks for now by outlier detection (`upstreams.<name>.outlier`).
    pub ejected: bool,
    /// The latest active health check; absent without checks or before the first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_check: Option<CheckView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckView {
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl From<CheckRecord> for CheckView {
    fn from(r: CheckRecord) -> CheckView {
        let at_ms =
            r.at.duration_since(UNIX_EPOCH)
                .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        CheckView {
            at_ms,
            ok: r.error.is_none(),
            error: r.error,
        }
    }
}
