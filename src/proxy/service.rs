//! `impl ProxyHttp`: each phase reads the context, calls one module, records the outcome.

use super::ctx::{RequestCtx, RequestTrace, Tunnel};
use super::retry::{self, Failure};
use super::{builtin, cache, error_fold, errors, forwarded, grpc, header_case, observe, respond};
use crate::admit::{admit, Inbound};
use crate::balance::InFlight;
use crate::config::file::HeaderCase;
use crate::header_edit::HeaderEdit;
use crate::outcome::{Denial, ErrorCode, Flow};
use crate::request_id::{self, RequestId};
use crate::routing::normalize;
use crate::security;
use crate::state::Shared;
use async_trait::async_trait;
use http::HeaderValue;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long an idle pooled upstream connection is kept.
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The gateway's proxy service.
pub struct Gateway {
    shared: Arc<Shared>,
    /// `server.header_case: lower` (read at start, like the rest of `server`).
    lower_case: bool,
}

impl Gateway {
    pub fn new(shared: Arc<Shared>, header_case: HeaderCase) -> Gateway {
        Gateway {
            shared,
            lower_case: header_case == HeaderCase::Lower,
        }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.shared.snapshot.load_full())
    }

    /// No downstream modules. Pingora's default is its response compression, disabled, which
    /// still gives every request a module context and two boxed filter calls; the gateway does
    /// not compress answers.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
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
        Ok(())
    }

    /// Header screening, path normalization, built-in endpoints, route lookup, the route's
    /// checks; the first answer is written.
    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let mut flow = security::screen(session.req_header(), raw_head(session).as_deref());
        if flow == Flow::Continue {
            flow = match normalize(session.req_header().uri.path()) {
                Err(_) => ErrorCode::BadRequest.into(),
                Ok(path) => {
                    if let Cow::Owned(p) = path {
                        ctx.path = Some(p.into_boxed_str());
                    }
                    match builtin::serve(session, ctx).await? {
                        Some(flow) => flow,
                        None => self.admit(session, ctx).await,
                    }
                }
            };
        }
        if flow == Flow::Continue {
            if let (true, Some(idle)) =
                (ctx.websocket, ctx.route.as_ref().and_then(|r| r.websocket))
            {
                // The tunnel's client side, once upgraded, is read with this timeout.
                session.set_read_timeout(Some(idle));
            }
            if ctx.route.as_ref().is_some_and(|r| r.retry.is_some()) {
                // Keeps the body (up to pingora's limit) so a retry can send it again.
                session.as_mut().enable_retry_buffering();
            }
            return Ok(false);
        }
        respond::send(session, ctx, flow).await?;
        Ok(true)
    }

    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        cache::enable(session, ctx);
        Ok(())
    }

    fn cache_key_callback(&self, _session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        cache::key(ctx)
    }

    fn response_cache_filter(
        &self,
        _session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        Ok(cache::decide(resp, ctx))
    }

    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        cache::variance(meta, req, ctx)
    }

    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        cache::serve_stale(error)
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        // A WebSocket tunnel's frames are not a request body.
        if ctx.tunnel.is_some() {
            return Ok(());
        }
        if let (Some(limit), Some(chunk)) = (ctx.snapshot.edge.max_body_size, body.as_ref()) {
            ctx.attempt.body_bytes += chunk.len() as u64;
            if ctx.attempt.body_bytes > limit {
                return Err(Error::explain(
                    HTTPStatus(413),
                    "request body over max_body_size",
                ));
            }
        }
        Ok(())
    }

    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        let route = ctx
            .route
            .as_ref()
            .ok_or_else(|| Error::explain(InternalError, "no route selected"))?;
        let upstream = route.upstream(ctx.arm.unwrap_or(0));
        if ctx.attempt.count == 0 {
            // Only requests that may be retried feed the budget (and pay for its clock read).
            if route.retry.is_some() || upstream.retries > 0 {
                upstream.count_request();
            }
            match upstream.admit() {
                Ok(None) => {}
                Ok(Some((slot, moved))) => {
                    ctx.attempt.slot = Some(slot);
                    observe::circuit_moved(upstream, moved);
                }
                Err(refusal) => {
                    ctx.attempt.refused = Some(refusal);
                    return Err(Error::explain(HTTPStatus(503), "circuit breaker refused"));
                }
            }
        }
        if let (Some(policy), true) = (&route.retry, ctx.attempt.count > 0) {
            tokio::time::sleep(policy.wait_before(ctx.attempt.count + 1)).await;
        }
        match upstream.start_connect() {
            Ok(connecting) => ctx.attempt.connecting = connecting,
            Err(refusal) => {
                ctx.attempt.refused = Some(refusal);
                return Err(Error::explain(
                    HTTPStatus(503),
                    "too many connects under way",
                ));
            }
        }
        let mut key = [0; 16];
        let key = ip_key(ctx.peer.client_ip, &mut key);
        let Some(picked) = upstream.select(key, &ctx.attempt.failed) else {
            // Every backend left was tried and refused: that is the backend's failure.
            let status = if ctx.attempt.failed.is_empty() {
                503
            } else {
                502
            };
            return Err(Error::explain(HTTPStatus(status), "no backend available"));
        };
        let addr = picked.addr;
        ctx.attempt.count += 1;
        // Replacing the guard of a failed attempt releases that backend's count.
        ctx.attempt.in_flight = Some(InFlight::start(picked.stats));
        let mut peer = HttpPeer::new(addr, upstream.tls, upstream.sni.clone());
        peer.options.connection_timeout = upstream.connect_timeout;
        peer.options.ca = upstream.ca.clone();
        if upstream.h2 {
            // TLS: ALPN `h2` only; plaintext: h2c with prior knowledge.
            peer.options.set_http_version(2, 2);
        }
        let per_try = route.retry.as_ref().and_then(|p| p.per_try_timeout);
        let tunnel_idle = route.websocket.filter(|_| ctx.websocket);
        let timeout = tunnel_idle
            .or(per_try)
            .or(route.timeout)
            .or(upstream.read_timeout);
        // A gRPC call's own deadline, when shorter.
        let timeout = match (timeout, ctx.peer.grpc_timeout) {
            (Some(t), Some(g)) => Some(t.min(g)),
            (t, g) => t.or(g),
        };
        peer.options.read_timeout = timeout;
        peer.options.write_timeout = timeout;
        peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        // The attempt is over: its backend stops counting it, and is skipped from now on.
        ctx.attempt.connecting = None;
        if retry::again(session, ctx, Failure::Connect) {
            e.set_retry(true);
        }
        e
    }

    fn error_while_proxy(
        &self,
        peer: &HttpPeer,
        session: &mut Session,
        e: Box<Error>,
        ctx: &mut RequestCtx,
        client_reused: bool,
    ) -> Box<Error> {
        let mut e = e.more_context(format!("Peer: {peer}"));
        if std::mem::take(&mut ctx.attempt.retrying_status) {
            // Decided in `upstream_response_filter`.
            return e;
        }
        if matches!(e.etype(), ReadTimedout | WriteTimedout)
            && retry::again(session, ctx, Failure::Timeout)
        {
            e.set_retry(true);
            return e;
        }
        // Pingora's own rule: a broken reused connection is retried when the request can be.
        if !session.req_header().method.is_idempotent() || session.as_ref().retry_buffer_truncated()
        {
            e.set_retry(false);
        } else {
            e.retry.decide_reuse(client_reused);
        }
        e
    }

    async fn connected_to_upstream(
        &self,
        _session: &mut Session,
        _reused: bool,
        _peer: &HttpPeer,
        #[cfg(unix)] _fd: std::os::unix::io::RawFd,
        #[cfg(windows)] _sock: std::os::windows::io::RawSocket,
        _digest: Option<&pingora::protocols::Digest>,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.attempt.connecting = None;
        Ok(())
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let uri = match backend_uri(ctx, &upstream_request.uri) {
            Some(uri) => Some(
                http::Uri::try_from(uri)
                    .or_err(InternalError, "rewritten path is not a valid URI")?,
            ),
            None => None,
        };
        to_backend(
            upstream_request,
            ctx,
            peer_ip(session),
            uri,
            self.lower_case,
        )
    }

    async fn upstream_response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        let status = upstream_response.status.as_u16();
        ctx.attempt.upstream_status = Some(status);
        if status >= 500 && retry::again(session, ctx, Failure::Status(status)) {
            ctx.attempt.upstream_status = None;
            ctx.attempt.retrying_status = true;
            let mut e = Error::explain(HTTPStatus(status), "retried on another backend");
            e.set_retry(true);
            return Err(e);
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if ctx.websocket && upstream_response.status == http::StatusCode::SWITCHING_PROTOCOLS {
            ctx.tunnel = ctx.route.as_ref().and_then(|r| Tunnel::open(&r.name));
        }
        let cache = cache::result(session, ctx).map(|(status, _)| status);
        if self.lower_case {
            header_case::edit_response(upstream_response, |parts| {
                answer_headers(session, ctx, cache, &mut parts.headers)
            })?
        } else {
            answer_headers(session, ctx, cache, upstream_response)
        }
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let Some(code) = errors::classify(e) else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        let flow = match ctx.attempt.refused {
            Some(r) => Denial::retry_after(ErrorCode::UpstreamOverloaded, r.retry_after).into(),
            None => code.into(),
        };
        // Once the backend's answer has started, only the access line can tell.
        if session.response_written().is_none() {
            if let Err(err) = respond::send(session, ctx, flow).await {
                log::debug!("could not send the error answer: {err}");
            }
        }
        FailToProxy {
            error_code: code.status(),
            can_reuse_downstream: false,
        }
    }

    /// Pingora's ERROR line for a request that failed: left out for a client that went away,
    /// folded per upstream for the backend's failures (`error_fold`). The access line still
    /// records the request.
    fn suppress_error_log(&self, _session: &Session, ctx: &RequestCtx, error: &Error) -> bool {
        errors::client_gone(error) || error_fold::upstream_failure(ctx, error, false)
    }

    /// Pingora's WARN line for an attempt that is retried: folded like the final failures.
    fn suppress_proxy_warn_log(
        &self,
        _session: &Session,
        ctx: &RequestCtx,
        error: &Error,
        _context: ProxyWarnLogContext,
    ) -> bool {
        error_fold::upstream_failure(ctx, error, true)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        observe::record(session, e, ctx);
        crate::connection::request_done(session.stream());
        cache::finish(session, ctx).await;
    }
}

impl Gateway {
    /// Admission (`crate::admit`) of the request as the context describes it; what it decides
    /// goes into the context.
    async fn admit(&self, session: &Session, ctx: &mut RequestCtx) -> Flow {
        let snapshot = Arc::clone(&ctx.snapshot);
        let req = session.req_header();
        let inbound = Inbound {
            header: req,
            path: ctx.path.as_deref().unwrap_or(req.uri.path()),
            client_ip: ctx.peer.client_ip,
            secure: ctx.peer.tls || forwarded_https(ctx, req),
        };
        let admission = admit(&snapshot, &inbound, &mut ctx.caller).await;
        ctx.websocket = ctx.caller.websocket;
        ctx.route = admission.route;
        ctx.arm = admission.arm;
        admission.flow
    }
}

/// What the gateway does to a request on its way to the backend: the target the route gives it
/// (`uri`), and the forwarded, request id, trace and identity headers (`forwarded::apply`). With
/// `lower`, on the request's plain header map, the name spellings dropped (`header_case`).
pub fn to_backend(
    req: &mut RequestHeader,
    ctx: &RequestCtx,
    peer: Option<IpAddr>,
    mut uri: Option<http::Uri>,
    lower: bool,
) -> Result<()> {
    if lower {
        let edited = header_case::edit_request(req, |parts| {
            if let Some(uri) = uri.take() {
                parts.uri = uri;
            }
            forwarded::apply(&mut parts.headers, ctx, peer)
        });
        if let Some(done) = edited {
            return done;
        }
    }
    if let Some(uri) = uri {
        req.set_uri(uri);
    }
    forwarded::apply(req, ctx, peer)
}

/// The gateway's headers on an answer from the backend or the cache: the request id, the cache
/// status, and `respond::decorate`'s.
fn answer_headers<H: HeaderEdit>(
    session: &Session,
    ctx: &RequestCtx,
    cache: Option<&'static str>,
    resp: &mut H,
) -> Result<()> {
    resp.set(request_id::HEADER, ctx.peer.request_id.header_value())?;
    if let Some(status) = cache {
        resp.set(X_CACHE_STATUS, HeaderValue::from_static(status))?;
    }
    respond::decorate(session, ctx, resp)
}

const X_CACHE_STATUS: http::HeaderName = http::HeaderName::from_static("x-cache-status");

/// The target the backend gets, when it is not the request's own: the normalized path the
/// route matched (without its prefix for `strip_prefix`), and the query as the client sent it.
fn backend_uri(ctx: &RequestCtx, uri: &http::Uri) -> Option<String> {
    let route = ctx.route.as_ref()?;
    let matched = ctx.path.as_deref().unwrap_or(uri.path());
    let path = route.backend_path(matched).unwrap_or(matched);
    if path == uri.path() {
        return None;
    }
    Some(match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    })
}

/// A trusted proxy in front terminated TLS (`X-Forwarded-Proto: https`).
fn forwarded_https(ctx: &RequestCtx, req: &RequestHeader) -> bool {
    ctx.peer.trusted
        && req
            .headers
            .get(forwarded::X_FORWARDED_PROTO)
            .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"https"))
}

/// The request head as received, for HTTP/1 (HTTP/2 has no line endings to check).
fn raw_head(session: &Session) -> Option<bytes::Bytes> {
    match session.as_downstream() {
        pingora::protocols::http::ServerSession::H1(s) => Some(s.get_headers_raw_bytes()),
        _ => None,
    }
}

/// The TCP peer's address (see [`crate::client::peer_ip`]).
fn peer_ip(session: &Session) -> Option<IpAddr> {
    crate::client::peer_ip(session.as_downstream())
}

/// The client address as hash key bytes (for `ip_hash`), written into `buf`.
fn ip_key(ip: Option<IpAddr>, buf: &mut [u8; 16]) -> &[u8] {
    match ip {
        Some(IpAddr::V4(v4)) => {
            buf[..4].copy_from_slice(&v4.octets());
            &buf[..4]
        }
        Some(IpAddr::V6(v6)) => {
            *buf = v6.octets();
            &buf[..]
        }
        None => &[],
    }
}
