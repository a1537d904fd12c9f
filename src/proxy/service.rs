//! `impl ProxyHttp`: each phase reads the context, calls one module, records the outcome.

use super::ctx::{RequestCtx, Verdict};
use super::request_id::RequestId;
use super::respond::{self, ErrorCode};
use super::{forwarded, health, observe};
use crate::auth::endpoints;
use crate::balance::InFlight;
use crate::ratelimit::{KeyInputs, Limiter};
use crate::routing::Lookup;
use crate::routing::Route;
use crate::security::cors::is_preflight;
use crate::state::Shared;
use async_trait::async_trait;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::*;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

/// How long an idle pooled upstream connection is kept.
const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The gateway's proxy service.
pub struct Gateway {
    shared: Arc<Shared>,
}

impl Gateway {
    pub fn new(shared: Arc<Shared>) -> Gateway {
        Gateway { shared }
    }
}

#[async_trait]
impl ProxyHttp for Gateway {
    type CTX = RequestCtx;

    fn new_ctx(&self) -> RequestCtx {
        RequestCtx::new(self.shared.snapshot.load_full())
    }

    async fn early_request_filter(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(id) = session
            .req_header()
            .headers
            .get("x-request-id")
            .and_then(|v| RequestId::parse(v.as_bytes()))
        {
            ctx.request_id = id;
        }
        if let Some(peer) = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip())
        {
            ctx.peer_trusted = ctx.snapshot.is_trusted_proxy(peer);
            ctx.client_ip = Some(forwarded::client_ip(
                peer,
                ctx.peer_trusted,
                session.req_header(),
                &ctx.snapshot,
            ));
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut RequestCtx) -> Result<bool> {
        let req = session.req_header();
        let path = req.uri.path();
        if path == "/health" && matches!(req.method, http::Method::GET | http::Method::HEAD) {
            let (status, body) = health::report(&ctx.snapshot, session.is_process_shutting_down());
            ctx.verdict = Verdict::Local;
            respond::json(session, ctx, status, body, &[]).await?;
            return Ok(true);
        }
        let snapshot = Arc::clone(&ctx.snapshot);
        if let Some(auth) = snapshot.auth.as_ref().filter(|a| a.issues_tokens()) {
            if path.starts_with("/auth/") && endpoints::handle(session, ctx, auth).await? {
                return Ok(true);
            }
        }
        let req = session.req_header();
        let path = req.uri.path();
        let preflight = snapshot.cors.is_some() && is_preflight(req);
        // A preflight is matched by the method it asks about.
        let requested = preflight
            .then(|| req.headers.get(http::header::ACCESS_CONTROL_REQUEST_METHOD))
            .flatten()
            .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok());
        let method = requested.as_ref().unwrap_or(&req.method);
        match snapshot.table.lookup(path, method) {
            Lookup::Found(route) => {
                ctx.route = Some(Arc::clone(route));
                self.admit(session, ctx, preflight).await
            }
            Lookup::MethodNotAllowed(_) if preflight => {
                respond::preflight(session, ctx).await?;
                Ok(true)
            }
            Lookup::MethodNotAllowed(allow) => {
                respond::error(
                    session,
                    ctx,
                    ErrorCode::MethodNotAllowed,
                    &[("allow", allow)],
                )
                .await?;
                Ok(true)
            }
            Lookup::NotFound => {
                respond::error(session, ctx, ErrorCode::RouteNotFound, &[]).await?;
                Ok(true)
            }
            Lookup::BadPath => {
                respond::error(session, ctx, ErrorCode::BadRequest, &[]).await?;
                Ok(true)
            }
        }
    }

    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<bytes::Bytes>,
        _end_of_stream: bool,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let (Some(limit), Some(chunk)) = (ctx.snapshot.max_body_size, body.as_ref()) {
            ctx.body_bytes += chunk.len() as u64;
            if ctx.body_bytes > limit {
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
        let upstream = &route.upstream;
        let mut key = [0; 16];
        let key = ip_key(ctx.client_ip, &mut key);
        let Some(picked) = upstream.select(key, &ctx.failed) else {
            // Every backend left was tried and refused: that is the backend's failure.
            let status = if ctx.failed.is_empty() { 503 } else { 502 };
            return Err(Error::explain(HTTPStatus(status), "no backend available"));
        };
        let addr = picked.addr;
        ctx.attempts += 1;
        ctx.backend = Some(addr);
        // Replacing the guard of a failed attempt releases that backend's count.
        ctx.in_flight = Some(InFlight::start(picked.stats));
        let mut peer = HttpPeer::new(addr, upstream.tls, upstream.sni.clone());
        peer.options.connection_timeout = upstream.connect_timeout;
        peer.options.read_timeout = route.timeout.or(upstream.read_timeout);
        peer.options.write_timeout = route.timeout.or(upstream.read_timeout);
        peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
        Ok(Box::new(peer))
    }

    fn fail_to_connect(
        &self,
        _session: &mut Session,
        _peer: &HttpPeer,
        ctx: &mut RequestCtx,
        mut e: Box<Error>,
    ) -> Box<Error> {
        if let Some(addr) = ctx.backend {
            ctx.failed.push(addr);
        }
        observe::connect_failed(ctx);
        let retries = ctx.route.as_ref().map_or(0, |r| r.upstream.retries);
        if ctx.attempts <= retries {
            e.set_retry(true);
        }
        e
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        upstream_request: &mut RequestHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        if let Some(route) = &ctx.route {
            let rewritten = upstream_request
                .uri
                .path_and_query()
                .and_then(|pq| route.rewrite_path(pq.as_str()));
            if let Some(path) = rewritten {
                let uri = http::Uri::try_from(path)
                    .or_err(InternalError, "rewritten path is not a valid URI")?;
                upstream_request.set_uri(uri);
            }
        }
        let peer = session
            .client_addr()
            .and_then(|a| a.as_inet())
            .map(|a| a.ip());
        forwarded::apply(upstream_request, ctx, peer)
    }

    async fn upstream_response_filter(
        &self,
        _session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        ctx.upstream_status = Some(upstream_response.status.as_u16());
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        upstream_response: &mut ResponseHeader,
        ctx: &mut RequestCtx,
    ) -> Result<()> {
        upstream_response.insert_header("x-request-id", ctx.request_id.as_str())?;
        respond::decorate(session, ctx, upstream_response)
    }

    async fn fail_to_proxy(
        &self,
        session: &mut Session,
        e: &Error,
        ctx: &mut RequestCtx,
    ) -> FailToProxy {
        let code = match e.etype() {
            HTTPStatus(status) => Some(ErrorCode::from_status(*status)),
            ConnectTimedout | ReadTimedout | WriteTimedout => Some(ErrorCode::UpstreamTimeout),
            _ => match e.esource() {
                ErrorSource::Upstream => Some(ErrorCode::BadGateway),
                ErrorSource::Downstream => match e.etype() {
                    ReadError | WriteError | ConnectionClosed => None,
                    _ => Some(ErrorCode::BadRequest),
                },
                ErrorSource::Internal | ErrorSource::Unset => Some(ErrorCode::Internal),
            },
        };
        let Some(code) = code else {
            return FailToProxy {
                error_code: 0,
                can_reuse_downstream: false,
            };
        };
        if session.response_written().is_none() {
            if let Err(err) = respond::error(session, ctx, code, &[]).await {
                log::debug!("could not send the error answer: {err}");
            }
        } else {
            ctx.verdict = Verdict::Rejected(code);
        }
        FailToProxy {
            error_code: code.status(),
            can_reuse_downstream: false,
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &RequestCtx, error: &Error) -> bool {
        // A client that went away mid-request is routine, not an error of the gateway; the
        // access line still records the request.
        error.esource() == &ErrorSource::Downstream
            && matches!(error.etype(), ConnectionClosed | ReadError | WriteError)
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut RequestCtx) {
        observe::record(session, e, ctx);
    }
}

impl Gateway {
    /// Authenticates for a route with `auth.required` and checks its roles. `Ok(false)` when
    /// a refusal was written.
    async fn authenticate(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
    ) -> Result<bool> {
        let Some(auth) = ctx.snapshot.auth.clone() else {
            respond::error(session, ctx, ErrorCode::Unauthorized, &[]).await?;
            return Ok(false);
        };
        let (caller, how) = match auth.authenticate(session.req_header()) {
            Ok(found) => found,
            Err(denied) => {
                endpoints::deny(session, ctx, denied).await?;
                return Ok(false);
            }
        };
        if !caller.has_any(&route.auth.roles) {
            crate::metrics::auth("failure", "forbidden");
            let challenge = r#"Bearer realm="api-gateway", error="insufficient_scope""#;
            respond::error(
                session,
                ctx,
                ErrorCode::Forbidden,
                &[("www-authenticate", challenge)],
            )
            .await?;
            return Ok(false);
        }
        crate::metrics::auth("success", how);
        ctx.caller = Some(caller);
        Ok(true)
    }

    /// Applies the route's rate limit. `Ok(false)` when the 429 was written.
    async fn limit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        route: &Route,
        limiter: &Limiter,
    ) -> Result<bool> {
        let req = session.req_header();
        let inputs = KeyInputs {
            client_ip: ctx.client_ip,
            user: ctx.caller.as_ref().map(|c| c.subject.as_str()),
            path: req.uri.path(),
            route: &route.name,
            headers: &req.headers,
        };
        let decision = limiter.check(&inputs).await;
        let allowed = decision.is_none_or(|d| d.allowed);
        if let Some(m) = crate::metrics::get() {
            let result = if allowed { "allowed" } else { "limited" };
            m.rate_limit_requests
                .with_label_values(&[route.name.as_str(), result])
                .inc();
        }
        ctx.rate_limit = decision.filter(|d| d.limit > 0);
        if allowed {
            return Ok(true);
        }
        let retry_after = decision.map_or(1, |d| d.retry_after).to_string();
        respond::error(
            session,
            ctx,
            ErrorCode::RateLimited,
            &[("retry-after", &retry_after)],
        )
        .await?;
        Ok(false)
    }

    /// Checks of a matched route before proxying: client IP rules, CORS preflight, body size.
    /// `Ok(true)` when an answer was written.
    async fn admit(
        &self,
        session: &mut Session,
        ctx: &mut RequestCtx,
        preflight: bool,
    ) -> Result<bool> {
        let Some(route) = ctx.route.clone() else {
            return Ok(false);
        };
        if !route.ip_rules.is_empty() && !ctx.client_ip.is_some_and(|ip| route.ip_rules.permits(ip))
        {
            respond::error(session, ctx, ErrorCode::Forbidden, &[]).await?;
            return Ok(true);
        }
        if preflight {
            respond::preflight(session, ctx).await?;
            return Ok(true);
        }
        if route.auth.required && !self.authenticate(session, ctx, &route).await? {
            return Ok(true);
        }
        if let Some(limiter) = &route.limiter {
            if !self.limit(session, ctx, &route, limiter).await? {
                return Ok(true);
            }
        }
        if let Some(limit) = ctx.snapshot.max_body_size {
            let declared = session
                .req_header()
                .headers
                .get(http::header::CONTENT_LENGTH)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
            if declared.is_some_and(|len| len > limit) {
                respond::error(session, ctx, ErrorCode::PayloadTooLarge, &[]).await?;
                return Ok(true);
            }
        }
        Ok(false)
    }
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
