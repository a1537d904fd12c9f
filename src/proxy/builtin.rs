//! The endpoints the gateway serves itself on the proxy listener, before route lookup:
//! `GET /health`, `PURGE` from a trusted proxy when there is a cache, and, when the gateway
//! issues tokens, `/auth/login|refresh|logout`.

use super::ctx::RequestCtx;
use super::{cache, health};
use crate::auth::endpoints::Endpoint;
use crate::outcome::{Flow, Reply};
use crate::token_api;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::Arc;

/// The answer of a built-in endpoint, or `None` when the path is not one.
pub async fn serve(session: &mut Session, ctx: &mut RequestCtx) -> Result<Option<Flow>> {
    let req = session.req_header();
    let path = ctx.path.as_deref().unwrap_or(req.uri.path());
    if path == "/health" && matches!(req.method, http::Method::GET | http::Method::HEAD) {
        let (status, body) = health::report(&ctx.snapshot, session.is_process_shutting_down());
        return Ok(Some(Flow::Reply(Reply::json(status, body))));
    }
    if req.method.as_str() == "PURGE" {
        if let Some(flow) = cache::purge(ctx, req).await {
            return Ok(Some(flow));
        }
    }
    let Some(endpoint) = Endpoint::at(path) else {
        return Ok(None);
    };
    let snapshot = Arc::clone(&ctx.snapshot);
    let client = ctx.peer.client_ip;
    let Some(handled) = token_api::serve(&snapshot, endpoint, session.as_mut(), client).await
    else {
        return Ok(None);
    };
    ctx.outcome.endpoint_auth = handled.event;
    Ok(Some(handled.flow))
}
