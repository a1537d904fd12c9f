//! Runs a route's middlewares (`crate::plugin`) in the proxy's phases: each phase builds the
//! views its handlers see from the context, and records what they decided in it.

use super::ctx::{RequestCtx, Running};
use super::inbound::forwarded_https;
use crate::outcome::{ErrorCode, Flow};
use crate::plugin::{
    Finished, RequestView, ResponseHead, ResponseView, UpstreamHead, UpstreamView, Vars,
};
use bytes::Bytes;
use http::Extensions;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::Arc;

/// The variables of a request as the context knows them (references only: what needs work is
/// worked out when a middleware asks).
fn vars<'a>(ctx: &'a RequestCtx, req: &'a RequestHeader, secure: bool) -> Vars<'a> {
    Vars {
        client_ip: ctx.peer.client_ip,
        request_id: Some(&ctx.peer.request_id),
        user: ctx.admitted.caller.as_ref().map(|c| c.subject.as_str()),
        route: ctx.route.as_ref().map_or("", |r| r.name.as_str()),
        upstream: ctx.upstream().map(|u| u.name.as_str()),
        path: ctx.path.as_deref(),
        secure,
        request: Some(req),
    }
}

/// The largest body read for a middleware that needs it: what pingora keeps to send on to the
/// backend afterwards.
const MAX_READ_BODY: usize = 64 * 1024;

/// The request's whole body, kept by pingora for the backend; `Err` with the answer when it is
/// larger than [`MAX_READ_BODY`] or cannot be read.
async fn read_body(session: &mut Session) -> Result<Bytes, Flow> {
    session.as_mut().enable_retry_buffering();
    let mut body = bytes::BytesMut::new();
    loop {
        match session.as_mut().read_request_body().await {
            Ok(Some(chunk)) if body.len() + chunk.len() > MAX_READ_BODY => {
                return Err(ErrorCode::PayloadTooLarge.into())
            }
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            Ok(None) => return Ok(body.freeze()),
            Err(_) => return Err(ErrorCode::BadRequest.into()),
        }
    }
}

/// The request phase of the route's middlewares, in order, until one answers.
pub async fn request(session: &mut Session, ctx: &mut RequestCtx) -> Flow {
    let Some(list) = ctx.route.as_ref().and_then(|r| r.middlewares.get()) else {
        return Flow::Continue;
    };
    let body = if list.iter().any(|m| m.handler.needs_body()) {
        match read_body(session).await {
            Ok(body) => Some(body),
            Err(flow) => return flow,
        }
    } else {
        None
    };
    let req = session.req_header();
    let secure = ctx.peer.tls || forwarded_https(ctx, req);
    let mut run = Running {
        list: Arc::clone(list),
        slot: Extensions::new(),
        transforms: Vec::new(),
        secure,
    };
    let has_body = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers.contains_key(http::header::TRANSFER_ENCODING);
    let mut flow = Flow::Continue;
    for m in run.list.iter().filter(|m| m.handler.has_request_phase()) {
        let mut authenticated = None;
        let mut view = RequestView {
            header: req,
            path: ctx.path.as_deref().unwrap_or(req.uri.path()),
            vars: vars(ctx, req, secure),
            slot: &mut run.slot,
            authenticated: &mut authenticated,
            has_body,
            body: body.as_ref(),
        };
        flow = m.handler.request(&mut view).await;
        if let Some(caller) = authenticated {
            ctx.admitted.caller = Some(caller);
        }
        if flow != Flow::Continue {
            break;
        }
    }
    ctx.middlewares = Some(run);
    flow
}

/// The upstream-request phase: edits what the backend receives.
pub fn upstream_request(
    client: &RequestHeader,
    mut head: UpstreamHead<'_>,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let Some(mut run) = ctx.middlewares.take() else {
        return Ok(());
    };
    let mut failed = None;
    for m in run.list.iter() {
        let mut view = UpstreamView {
            head: head.reborrow(),
            vars: vars(ctx, client, run.secure),
            slot: &mut run.slot,
        };
        if let Err(e) = m.handler.upstream_request(&mut view) {
            failed = Some(format!("middleware {}: {e}", m.name()));
            break;
        }
    }
    ctx.middlewares = Some(run);
    match failed {
        Some(why) => Error::e_explain(InternalError, why),
        None => Ok(()),
    }
}

/// The response phase, then the body transforms the final headers call for. A transformed
/// body has no `Content-Length`; an HTTP/1.1 client gets it chunked.
pub fn response(client: &RequestHeader, mut head: ResponseHead<'_>, ctx: &mut RequestCtx) {
    let Some(mut run) = ctx.middlewares.take() else {
        return;
    };
    let vars = vars(ctx, client, run.secure);
    for m in run.list.iter() {
        let mut view = ResponseView {
            request: client,
            head: head.reborrow(),
            vars,
            slot: &mut run.slot,
        };
        m.handler.response(&mut view);
    }
    let mut transforms = Vec::new();
    for m in run.list.iter() {
        let view = ResponseView {
            request: client,
            head: head.reborrow(),
            vars,
            slot: &mut run.slot,
        };
        transforms.extend(m.handler.body_transform(&view));
    }
    if !transforms.is_empty() {
        head.remove_header(&http::header::CONTENT_LENGTH);
        if client.version == http::Version::HTTP_11 {
            head.insert_header(
                http::header::TRANSFER_ENCODING,
                http::HeaderValue::from_static("chunked"),
            );
        }
    }
    run.transforms = transforms;
    ctx.middlewares = Some(run);
}

/// Passes a chunk of the answer's body through the transforms, in order.
pub fn body(body: &mut Option<Bytes>, end: bool, ctx: &mut RequestCtx) {
    let Some(run) = ctx.middlewares.as_mut() else {
        return;
    };
    if run.transforms.is_empty() {
        return;
    }
    let mut chunk = body.take().unwrap_or_default();
    for t in run.transforms.iter_mut() {
        chunk = t.transform(&chunk, end);
    }
    *body = (!chunk.is_empty() || end).then_some(chunk);
}

/// The logging phase of the middlewares the request reached.
pub fn logging(client: &RequestHeader, status: u16, ctx: &mut RequestCtx) {
    let Some(run) = ctx.middlewares.take() else {
        return;
    };
    let done = Finished {
        request: client,
        status,
        duration: ctx.peer.started.elapsed(),
        vars: vars(ctx, client, run.secure),
        slot: &run.slot,
    };
    for m in run.list.iter() {
        m.handler.logging(&done);
    }
}
