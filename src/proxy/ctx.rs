//! Per-request state carried between the proxy phases, grouped by when it is written.

use crate::auth::AuthEvent;
use crate::balance::{BackendStats, Connecting, InFlight, Refusal, Slot, Upstream};
use crate::chain::Admitted;
use crate::outcome::ErrorCode;
use crate::request_id::RequestId;
use crate::routing::Route;
use crate::snapshot::Snapshot;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

/// Who is on the other end; written by `new_ctx` and `early_request_filter`.
pub struct Peer {
    pub started: Instant,
    pub request_id: RequestId,
    /// The TCP peer is a trusted proxy (its `X-Forwarded-*` headers are believed).
    pub trusted: bool,
    /// The client as resolved through trusted proxies.
    pub client_ip: Option<IpAddr>,
    /// The request came over TLS.
    pub tls: bool,
    /// A gRPC call (`content-type: application/grpc...`): the gateway's errors are answered
    /// as gRPC statuses.
    pub grpc: bool,
    /// The call's `grpc-timeout`, when it sent one.
    pub grpc_timeout: Option<std::time::Duration>,
}

/// The request's place in a trace; written by `early_request_filter` when tracing is on.
pub struct RequestTrace {
    /// The gateway's span (the backend's parent).
    pub context: crate::trace::Context,
    /// The caller's span, when a trusted caller sent `traceparent`.
    pub parent: Option<[u8; 8]>,
    /// The caller's `tracestate`, passed on with its `traceparent`.
    pub tracestate: Option<http::HeaderValue>,
}

/// The backend side; written by `upstream_peer`, `fail_to_connect`,
/// `upstream_response_filter` and `request_body_filter`.
#[derive(Default)]
pub struct Attempt {
    /// Attempts made by `upstream_peer` so far.
    pub count: usize,
    /// Counts this request on the backend of the attempt under way or answered, until the
    /// context is dropped; empty after a connect failure.
    pub in_flight: Option<InFlight>,
    /// Backends whose try failed (refused the connection, or a retried timeout or status);
    /// later tries skip them.
    pub failed: Vec<Arc<BackendStats>>,
    /// For each of `failed`, the `backend_requests_total` status: `connect_error`, `timeout` or
    /// the status.
    pub failed_as: Vec<&'static str>,
    /// The try under way was turned into an error by `upstream_response_filter` to be retried.
    pub retrying_status: bool,
    /// Status of the backend's answer, when one came.
    pub upstream_status: Option<u16>,
    /// Request body bytes seen so far (for `max_body_size` on unframed bodies).
    pub body_bytes: u64,
    /// The request's place under the upstream's circuit breaker, until the context is dropped.
    pub slot: Option<Slot>,
    /// The try's connect under the breaker's `max_pending_connects`, until it connected or
    /// failed.
    pub connecting: Option<Connecting>,
    /// Why the circuit breaker turned the request away.
    pub refused: Option<Refusal>,
}

/// What the cache does for a request.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum CacheUse {
    /// The route does not cache.
    #[default]
    Off,
    /// The route caches, this request does not (method, credentials).
    Bypass,
    /// Looked up and maybe filled.
    On,
}

/// The cache part of a request's context.
#[derive(Debug, Default)]
pub struct CacheCtx {
    pub used: CacheUse,
    /// The primary key, from `request_cache_filter` to `cache_key_callback` (which takes it).
    pub key: Option<String>,
}

/// The middlewares of a request that reached them (`middleware`), and what they keep while
/// it lasts.
pub struct Running {
    pub list: Arc<[Arc<crate::plugin::build::Instance>]>,
    /// The per-request slot the middlewares share.
    pub slot: http::Extensions,
    /// The body transforms the answer's headers called for, in order.
    pub transforms: Vec<Box<dyn crate::plugin::BodyTransform>>,
    /// The request came over TLS, or a trusted proxy says so (the `scheme` variable).
    pub secure: bool,
    /// Some middleware has a logging phase.
    pub logging: bool,
}

/// Why the request ended the way it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Sent to a backend (whatever it answered).
    Proxied,
    /// The gateway answered itself with this error.
    Rejected(ErrorCode),
    /// Served by the gateway (`/health`, `/auth/*`, a preflight).
    Local,
}

/// What the gateway decided; `verdict` is written only by `respond::send`.
pub struct Outcome {
    pub verdict: Verdict,
    /// The outcome of a token endpoint (`/auth/*`).
    pub endpoint_auth: Option<AuthEvent>,
}

/// Everything a request carries between phases. `logging` reads it all and records the
/// metrics and the access line.
pub struct RequestCtx {
    /// The snapshot this request began with, even if a reload lands meanwhile.
    pub snapshot: Arc<Snapshot>,
    pub peer: Peer,
    /// The matched route; written once, by `request_filter`.
    pub route: Option<Arc<Route>>,
    /// Which of the route's upstreams the request was given, when the route splits its traffic
    /// and the request passed its checks; written once, by `request_filter`.
    pub arm: Option<usize>,
    /// The normalized request path, when it differs from the one sent (written by
    /// `request_filter` before anything reads the path); routes match it, the backend gets it.
    pub path: Option<Box<str>>,
    /// A WebSocket handshake on a route that allows it; written by `request_filter`.
    pub websocket: bool,
    /// Counts the open tunnel in `websocket_connections` once the backend accepted the
    /// handshake, until the context is dropped.
    pub tunnel: Option<Tunnel>,
    /// Tracing, when it is on.
    pub trace: Option<RequestTrace>,
    /// What the route's chain learnt about the caller.
    pub admitted: Admitted,
    /// Whether the cache serves this request, and its key.
    pub cache: CacheCtx,
    pub attempt: Attempt,
    pub outcome: Outcome,
    /// The route's middlewares, once the request reached them (after its checks).
    pub middlewares: Option<Box<Running>>,
    /// Counts the request in `active_connections` until the context is dropped.
    _active: Option<ActiveRequest>,
}

impl RequestCtx {
    /// The upstream the request goes to: its route's, or its side of the route's split.
    pub fn upstream(&self) -> Option<&Arc<Upstream>> {
        Some(self.route.as_ref()?.upstream(self.arm.unwrap_or(0)))
    }

    pub fn new(snapshot: Arc<Snapshot>) -> RequestCtx {
        RequestCtx {
            snapshot,
            peer: Peer {
                started: Instant::now(),
                request_id: RequestId::EMPTY,
                trusted: false,
                client_ip: None,
                tls: false,
                grpc: false,
                grpc_timeout: None,
            },
            route: None,
            arm: None,
            websocket: false,
            tunnel: None,
            trace: None,
            path: None,
            admitted: Admitted::default(),
            cache: CacheCtx::default(),
            attempt: Attempt::default(),
            outcome: Outcome {
                verdict: Verdict::Proxied,
                endpoint_auth: None,
            },
            middlewares: None,
            _active: ActiveRequest::start(),
        }
    }
}

/// One open WebSocket tunnel in `websocket_connections{route}`, for as long as it lives.
pub struct Tunnel(prometheus::IntGauge);

impl Tunnel {
    pub fn open(route: &str) -> Option<Tunnel> {
        let gauge = crate::metrics::get()?
            .websocket_connections
            .with_label_values(&[route]);
        gauge.inc();
        Some(Tunnel(gauge))
    }
}

impl Drop for Tunnel {
    fn drop(&mut self) {
        self.0.dec();
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
