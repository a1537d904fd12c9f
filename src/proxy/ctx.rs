//! Per-request state carried between the proxy phases.

use super::request_id::RequestId;
use super::respond::ErrorCode;
use crate::balance::InFlight;
use crate::routing::{Route, Snapshot};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

/// Why the request ended the way it did; read by `logging`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent to a backend (whatever it answered).
    Proxied,
    /// The gateway answered itself with this error.
    Rejected(ErrorCode),
    /// Served by the gateway (`/health`).
    Local,
}

/// One writer per field: `early_request_filter` sets the identity fields, `request_filter` the
/// route, `upstream_peer` and `fail_to_connect` the backend bookkeeping.
pub struct RequestCtx {
    /// The table this request began with, even if a reload lands meanwhile.
    pub snapshot: Arc<Snapshot>,
    pub started: Instant,
    pub request_id: RequestId,
    /// The TCP peer is a trusted proxy (its `X-Forwarded-*` headers are believed).
    pub peer_trusted: bool,
    /// The client as resolved through trusted proxies.
    pub client_ip: Option<IpAddr>,
    pub route: Option<Arc<Route>>,
    /// Attempts made by `upstream_peer` so far.
    pub attempts: usize,
    /// The backend of the current attempt.
    pub backend: Option<SocketAddr>,
    /// Backends that refused a connection during this request; later attempts skip them.
    pub failed: Vec<SocketAddr>,
    /// Counts this request on its current backend until the context is dropped.
    pub in_flight: Option<InFlight>,
    pub verdict: Verdict,
}

impl RequestCtx {
    pub fn new(snapshot: Arc<Snapshot>) -> RequestCtx {
        RequestCtx {
            snapshot,
            started: Instant::now(),
            request_id: RequestId::generate(),
            peer_trusted: false,
            client_ip: None,
            route: None,
            attempts: 0,
            backend: None,
            failed: Vec::new(),
            in_flight: None,
            verdict: Verdict::Proxied,
        }
    }
}
