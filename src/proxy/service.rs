//! `impl ProxyHttp`: each phase reads the context, calls one module, records the outcome.

use super::backend::{answer_headers, backend_uri, to_backend};
use super::ctx::{RequestCtx, Tunnel};
use super::inbound::{self, forwarded_https, peer_ip, raw_head};
use super::retry::{self, Failure};
use super::{builtin, cache, error_fold, errors, header_case, middleware, observe, peer, respond};
use crate::admit::{admit, Inbound};
use crate::config::file::HeaderCase;
use crate::outcome::{Denial, ErrorCode, Flow};
use crate::plugin::{Message, ResponseHead};
use crate::routing::normalize;
use crate::security;
use crate::state::Shared;
use async_trait::async_trait;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheKey, CacheMeta, RespCacheable};
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::modules::http::HttpModules;
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, ProxyWarnLogContext, Session};
use std::borrow::Cow;
use std::sync::Arc;

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

    /// A fresh context pinned to the running snapshot (a reload does not change a request under
    /// way) and its start time. No I/O.
    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.shared.snapshot.load_full())
    }

    /// No downstream modules. Pingora's default is its response compression, disabled, which
    /// still gives every request a module context and two boxed filter calls; the gateway does
    /// not compress answers.
    fn init_downstream_modules(&self, _modules: &mut HttpModules) {}

    /// Describes the request in the context (`inbound`): request id, gRPC, TLS, client
    /// address, trace. Reads only; must not answer or touch the body.
    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        inbound::describe(session, ctx);
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

    /// Turns the cache on for a request its route may serve from it, with its key (`cache`).
    /// Must not answer: a request that may not use the cache is proxied as usual.
    fn request_cache_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
        cache::enable(session, ctx);
        Ok(())
    }

    /// The key `request_cache_filter` computed. Called once per request; must not fail for a
    /// request that turned the cache on.
    fn cache_key_callback(&self, _session: &Session, ctx: &mut RequestCtx) -> Result<CacheKey> {
        cache::key(ctx)
    }

    /// Whether the origin's answer is stored, and for how long (`cache::decide`). Must not
    /// change the answer itself.
    fn response_cache_filter(
        &self,
        _session: &Session,
        resp: &ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<RespCacheable> {
        Ok(cache::decide(resp, ctx))
    }

    /// The entry variant a request reads: `Vary`, the host, the scheme and the forwarded host the
    /// backend was told. Must depend on the request only.
    fn cache_vary_filter(
        &self,
        meta: &CacheMeta,
        ctx: &mut RequestCtx,
        req: &RequestHeader,
    ) -> Option<HashBinary> {
        cache::variance(meta, req, ctx)
    }

    /// Whether a stale entry may answer: during `stale-while-revalidate`, or when a fresh answer
    /// cannot be had for any reason but the client's own.
    fn should_serve_stale(
        &self,
        _session: &mut Session,
        _ctx: &mut RequestCtx,
        error: Option<&Error>,
    ) -> bool {
        cache::serve_stale(error)
    }

    /// Counts a streamed body against `max_body_size` (413 past it). Must not hold the body:
    /// chunks pass through as they come.
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

    /// Picks the backend for this attempt and sets its timeouts (`peer`). Must not write to
    /// the client: a refusal is an error for `fail_to_proxy` to answer.
    async fn upstream_peer(
        &self,
        _session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<Box<HttpPeer>> {
        peer::pick(ctx).await
    }

    /// A connect to the backend failed: the attempt stops counting against it and may be
    /// retried on another (`retry`). Must not answer the client.
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

    /// The backend broke the exchange: a timeout may be retried (`retry`), otherwise pingora's
    /// own rule for reused connections applies. Must not answer the client.
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

    /// The connect succeeded: the attempt stops counting as a connect under way. No I/O.
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

    /// What the backend receives: the route's target and the gateway's headers (`backend`).
    /// Must not read the body or answer the client.
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
        let client = session.req_header();
        to_backend(
            upstream_request,
            ctx,
            peer_ip(session),
            uri,
            self.lower_case,
            |head, ctx| middleware::upstream_request(client, head, ctx),
        )
    }

    /// The backend's status, kept for metrics and outlier detection; a 5xx may be retried on
    /// another backend (`retry`), before anything is sent to the client.
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

    /// The gateway's headers on every answer from the backend or the cache (request id, cache
    /// status, security and CORS headers, `RateLimit-*`), and a WebSocket tunnel's start. Must
    /// not change the status.
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
        let client = session.req_header();
        if self.lower_case {
            header_case::edit_response(upstream_response, |parts| {
                answer_headers(session, ctx, cache, &mut parts.headers)?;
                middleware::response(client, ResponseHead(Message::Parts(parts)), ctx);
                Ok(())
            })?
        } else {
            answer_headers(session, ctx, cache, upstream_response)?;
            let head = ResponseHead(Message::Pingora(upstream_response));
            middleware::response(client, head, ctx);
            Ok(())
        }
    }

    /// The middlewares' body transforms (compression). Must not block.
    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<Option<std::time::Duration>> {
        middleware::body(body, end_of_stream, ctx);
        Ok(None)
    }

    /// The request failed after admission: the contract's JSON error, unless the backend's answer
    /// has started (then only the access line can tell) or the client is gone.
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

    /// The end of every request: metrics, the access line and the span (`observe`), the
    /// connection's next head deadline, and the cache fill's lock. The one place they are written.
    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        observe::record(session, e, ctx);
        if ctx.middlewares.as_ref().is_some_and(|m| m.logging) {
            let status = session.response_written().map_or(0, |r| r.status.as_u16());
            middleware::logging(session.req_header(), status, ctx);
        }
        crate::connection::request_done(session.stream());
        cache::finish(session, ctx).await;
    }
}

impl Gateway {
    /// Admission (`crate::admit`) of the request as the context describes it, then the route's
    /// middlewares; what they decide goes into the context.
    async fn admit(&self, session: &mut Session, ctx: &mut RequestCtx) -> Flow {
        let snapshot = Arc::clone(&ctx.snapshot);
        let req = session.req_header();
        let inbound = Inbound {
            header: req,
            path: ctx.path.as_deref().unwrap_or(req.uri.path()),
            client_ip: ctx.peer.client_ip,
            secure: ctx.peer.tls || forwarded_https(ctx, req),
        };
        let admission = admit(&snapshot, &inbound, &mut ctx.admitted).await;
        ctx.websocket = ctx.admitted.websocket;
        ctx.route = admission.route;
        ctx.arm = admission.arm;
        if admission.flow == Flow::Continue {
            match middleware::needs(ctx) {
                // Boxed: the middlewares' future stays out of this one, which every request
                // builds.
                Some(needs) if needs.request_phase || needs.body => {
                    return Box::pin(middleware::request(session, ctx, needs)).await;
                }
                Some(_) => middleware::start(session.req_header(), ctx),
                None => {}
            }
        }
        admission.flow
    }
}
