//! Runs a route's middlewares (`crate::plugin`) in the proxy's phases: each phase builds the
//! views its handlers see from the context, and records what they decided in it.

use super::ctx::{RequestCtx, Running};
use super::inbound::forwarded_https;
use crate::outcome::{ErrorCode, Flow};
use crate::plugin::build::Needs;
use crate::plugin::{
    Backend, Finished, PickBackend, RequestView, ResponseHead, ResponseView, UpstreamHead,
    UpstreamView, Vars,
};
use bytes::Bytes;
use http::Extensions;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::Arc;

/// The variables of a request as the context knows them (references only: what needs work is
/// worked out when a middleware asks). A macro, so that it borrows the context's fields one by
/// one and the running middlewares (`ctx.middlewares`) stay free to borrow beside them.
macro_rules! vars {
    ($ctx:expr, $req:expr, $secure:expr) => {
        Vars {
            client_ip: $ctx.peer.client_ip,
            request_id: Some(&$ctx.peer.request_id),
            user: $ctx.admitted.caller.as_ref().map(|c| c.subject.as_str()),
            route: $ctx.route.as_ref().map_or("", |r| r.name.as_str()),
            upstream: $ctx
                .route
                .as_ref()
                .map(|r| r.upstream($ctx.arm.unwrap_or(0)).name.as_str()),
            path: $ctx.path.as_deref(),
            secure: $secure,
            request: Some($req),
        }
    };
}

/// The config's upstreams, as middlewares pick from them.
struct Upstreams<'a>(&'a std::collections::BTreeMap<String, Arc<crate::balance::Upstream>>);

impl PickBackend for Upstreams<'_> {
    fn pick(&self, upstream: &str, key: &[u8]) -> Option<Backend> {
        let up = self.0.get(upstream)?;
        let picked = up.select(key, &[])?;
        Some(Backend {
            addr: picked.addr,
            tls: up.tls,
        })
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

/// What the request's route's middlewares need, when it has any.
pub fn needs(ctx: &RequestCtx) -> Option<Needs> {
    let route = ctx.route.as_ref()?;
    route.middlewares.get().map(|_| route.middlewares.needs())
}

/// The route's middlewares take the request: their per-request state goes into the context.
/// Enough on its own when none has a request phase or reads the body.
pub fn start(req: &RequestHeader, ctx: &mut RequestCtx) {
    let Some(route) = ctx.route.as_ref() else {
        return;
    };
    let Some(list) = route.middlewares.get() else {
        return;
    };
    let secure = ctx.peer.tls || forwarded_https(ctx, req);
    ctx.middlewares = Some(Box::new(Running {
        list: Arc::clone(list),
        slot: Extensions::new(),
        transforms: Vec::new(),
        secure,
        logging: route.middlewares.needs().logging,
    }));
}

/// The request phase of the route's middlewares, in order, until one answers (after `start`,
/// and reading the body first when one needs it).
pub async fn request(session: &mut Session, ctx: &mut RequestCtx, needs: Needs) -> Flow {
    let body = if needs.body {
        match read_body(session).await {
            Ok(body) => Some(body),
            Err(flow) => return flow,
        }
    } else {
        None
    };
    let req = session.req_header();
    start(req, ctx);
    let Some(run) = ctx.middlewares.as_mut() else {
        return Flow::Continue;
    };
    let has_body = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers.contains_key(http::header::TRANSFER_ENCODING);
    let list = Arc::clone(&run.list);
    let mut flow = Flow::Continue;
    for m in list.iter().filter(|m| m.handler.has_request_phase()) {
        let mut authenticated = None;
        let mut view = RequestView {
            header: req,
            path: ctx.path.as_deref().unwrap_or(req.uri.path()),
            vars: vars!(ctx, req, run.secure),
            slot: &mut run.slot,
            authenticated: &mut authenticated,
            has_body,
            body: body.as_ref(),
            upstreams: &Upstreams(&ctx.snapshot.upstreams),
        };
        flow = m.handler.request(&mut view).await;
        if let Some(caller) = authenticated {
            ctx.admitted.caller = Some(caller);
        }
        if flow != Flow::Continue {
            break;
        }
    }
    flow
}

/// The upstream-request phase: edits what the backend receives.
pub fn upstream_request(
    client: &RequestHeader,
    mut head: UpstreamHead<'_>,
    ctx: &mut RequestCtx,
) -> Result<()> {
    let Some(run) = ctx.middlewares.as_mut() else {
        return Ok(());
    };
    let mut failed = None;
    let mut view = UpstreamView {
        head: head.reborrow(),
        vars: vars!(ctx, client, run.secure),
        slot: &mut run.slot,
    };
    for m in run.list.iter() {
        if let Err(e) = m.handler.upstream_request(&mut view) {
            failed = Some(format!("middleware {}: {e}", m.name()));
            break;
        }
    }
    match failed {
        Some(why) => Error::e_explain(InternalError, why),
        None => Ok(()),
    }
}

/// The response phase, then the body transforms the final headers call for. A transformed
/// body has no `Content-Length`; an HTTP/1.1 client gets it chunked.
pub fn response(client: &RequestHeader, mut head: ResponseHead<'_>, ctx: &mut RequestCtx) {
    let Some(run) = ctx.middlewares.as_mut() else {
        return;
    };
    let mut view = ResponseView {
        request: client,
        head: head.reborrow(),
        vars: vars!(ctx, client, run.secure),
        slot: &mut run.slot,
    };
    for m in run.list.iter() {
        m.handler.response(&mut view);
    }
    let mut transforms = Vec::new();
    for m in run.list.iter() {
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

/// The logging phase of the middlewares the request reached (`status`: what was sent, 0 for
/// nothing).
pub fn logging(client: &RequestHeader, status: u16, ctx: &mut RequestCtx) {
    let Some(run) = ctx.middlewares.as_ref() else {
        return;
    };
    let done = Finished {
        request: client,
        status,
        started: ctx.peer.started,
        vars: vars!(ctx, client, run.secure),
        slot: &run.slot,
    };
    for m in run.list.iter().filter(|m| m.handler.has_logging_phase()) {
        m.handler.logging(&done);
    }
}
