//! Per-request state carried between the proxy phases.

use super::request_id::RequestId;
use super::respond::ErrorCode;
use crate::auth::claims::Caller;
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
    /// Who the request authenticated as (routes with `auth.required`).
    pub caller: Option<Arc<Caller>>,
    /// Attempts made by `upstream_peer` so far.
    pub attempts: usize,
    /// The backend of the current attempt.
    pub backend: Option<SocketAddr>,
    /// Backends that refused a connection during this request; later attempts skip them.
    pub failed: Vec<SocketAddr>,
    /// Counts this request on its current backend until the context is dropped.
    pub in_flight: Option<InFlight>,
    /// The rate-limit decision, for the `RateLimit-*` headers.
    pub rate_limit: Option<crate::ratelimit::Decision>,
    /// Status of the backend's answer, when one came.
    pub upstream_status: Option<u16>,
    /// Request body bytes seen so far (for `max_body_size` on unframed bodies).
    pub body_bytes: u64,
    /// Counts the request in `active_connections` until the context is dropped.
    _active: Option<ActiveRequest>,
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
            caller: None,
            attempts: 0,
            backend: None,
            failed: Vec::new(),
            in_flight: None,
            upstream_status: None,
            rate_limit: None,
            body_bytes: 0,
            _active: ActiveRequest::start(),
            verdict: Verdict::Proxied,
        }
    }
}

/// One request in the `active_connections` gauge, for as long as it lives.
struct ActiveRequest(&'static prometheus::IntGauge);

impl ActiveRequest {
    fn start() -> Option<ActiveRequest> {
        let gauge = &crate::metrics::get()?.active_connections;
        gauge.inc();
        Some(ActiveRequest(gauge))
    }
}

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        self.0.dec();
    }
}
