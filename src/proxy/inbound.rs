//! What the context holds about the request before any check: its id, whether it is a gRPC
//! call, TLS, the client behind trusted proxies, the trace it joins; and the raw head and
//! forwarded scheme that later checks read.

use super::ctx::{RequestCtx, RequestTrace};
use super::{forwarded, grpc};
use crate::request_id::RequestId;
use pingora::http::RequestHeader;
use pingora::proxy::Session;
use std::net::IpAddr;

/// Fills the context's `peer` and `trace` from the request (`early_request_filter`).
pub fn describe(session: &Session, ctx: &mut RequestCtx) {
    let req = session.req_header();
    ctx.peer.request_id = RequestId::from_request(&req.headers);
    ctx.peer.grpc = grpc::is_call(req);
    if ctx.peer.grpc {
        ctx.peer.grpc_timeout = grpc::timeout(req);
    }
    ctx.peer.tls = session.digest().is_some_and(|d| d.ssl_digest.is_some());
    if let Some(peer) = peer_ip(session) {
        let trusted = &ctx.snapshot.edge.trusted_proxies;
        ctx.peer.trusted = trusted.contains(peer);
        ctx.peer.client_ip = Some(crate::client::client_ip(peer, trusted, req));
    }
    if let Some(tracer) = crate::trace::get() {
        let incoming = (ctx.peer.trusted || tracer.trust_client_context)
            .then(|| req.headers.get(forwarded::TRACEPARENT))
            .flatten()
            .and_then(|v| crate::trace::Context::parse(v.as_bytes()));
        ctx.trace = Some(RequestTrace {
            context: tracer.start(incoming.as_ref()),
            parent: incoming.map(|c| c.span_id),
            tracestate: incoming.and(req.headers.get(forwarded::TRACESTATE).cloned()),
        });
    }
}

/// A trusted proxy in front terminated TLS (`X-Forwarded-Proto: https`).
pub fn forwarded_https(ctx: &RequestCtx, req: &RequestHeader) -> bool {
    ctx.peer.trusted
        && req
            .headers
            .get(forwarded::X_FORWARDED_PROTO)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The request head as received, for HTTP/1 (HTTP/2 has no line endings to check).
pub fn raw_head(session: &Session) -> Option<bytes::Bytes> {
    match session.as_downstream() {
        pingora::protocols::http::ServerSession::H1(s) => Some(s.get_headers_raw_bytes()),
        _ => None,
    }
}

/// The TCP peer's address (see [`crate::client::peer_ip`]).
pub fn peer_ip(session: &Session) -> Option<IpAddr> {
    crate::client::peer_ip(session.as_downstream())
}
