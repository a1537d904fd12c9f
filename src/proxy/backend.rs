//! What the backend receives (the route's target and the gateway's headers) and what the
//! gateway adds to its answer.

use super::ctx::RequestCtx;
use super::{forwarded, header_case, respond};
use crate::header_edit::HeaderEdit;
use crate::plugin::{Message, UpstreamHead};
use crate::request_id;
use http::HeaderValue;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::net::IpAddr;

/// What the gateway does to a request on its way to the backend: the target the route gives it
/// (`uri`), and the forwarded, request id, trace and identity headers (`forwarded::apply`), then
/// `then` (the route's middlewares) on the result. With `lower`, on the request's plain parts,
/// the name spellings dropped (`header_case`).
pub fn to_backend(
    req: &mut RequestHeader,
    ctx: &mut RequestCtx,
    peer: Option<IpAddr>,
    mut uri: Option<http::Uri>,
    lower: bool,
    then: impl FnOnce(UpstreamHead<'_>, &mut RequestCtx) -> Result<()>,
) -> Result<()> {
    let mut then = Some(then);
    if lower {
        let edited = header_case::edit_request(req, |parts| {
            if let Some(uri) = uri.take() {
                parts.uri = uri;
            }
            forwarded::apply(&mut parts.headers, ctx, peer)?;
            match then.take() {
                Some(then) => then(UpstreamHead(Message::Parts(parts)), ctx),
                None => Ok(()),
            }
        });
        if let Some(done) = edited {
            return done;
        }
    }
    if let Some(uri) = uri {
        req.set_uri(uri);
    }
    forwarded::apply(req, ctx, peer)?;
    match then {
        Some(then) => then(UpstreamHead(Message::Pingora(req)), ctx),
        None => Ok(()),
    }
}

/// The gateway's headers on an answer from the backend or the cache: the request id, the cache
/// status, and `respond::decorate`'s.
pub(super) fn answer_headers<H: HeaderEdit>(
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
pub(super) fn backend_uri(ctx: &RequestCtx, uri: &http::Uri) -> Option<String> {
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
