//! Read-only view of an upstream for the admin API, metrics and `/health`.

use serde::Serialize;

#[derive(Debug, Clone, Serialize)]
pub struct UpstreamView {
    pub name: String,
    pub strategy: &'static str,
    pub backends: Vec<BackendView>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackendView {
    pub addr: String,
    pub weight: usize,
    pub healthy: bool,
    /// Requests in flight on the backend now.
    pub active_connections: usize,
    /// Requests sent to the backend (each retry counts) since it was configured.
    pub requests_total: u64,
}
