//! Writes what the features decided: error answers (JSON, or a gRPC status to a gRPC call;
//! always with the request id) and local replies. The only writer of `ctx.outcome.verdict`.

use super::ctx::{RequestCtx, Verdict};
use crate::header_edit::HeaderEdit;
use crate::outcome::{Denial, Flow, Reply};
use http::{HeaderName, HeaderValue};
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::protocols::http::HttpTask;
use pingora::proxy::Session;

/// Writes the answer `flow` asks for (nothing for `Continue`) and records the verdict.
pub async fn send(session: &mut Session, ctx: &mut RequestCtx, flow: Flow) -> Result<()> {
    match flow {
        Flow::Continue => Ok(()),
        Flow::Deny(denial) => {
            ctx.outcome.verdict = Verdict::Rejected(denial.code);
            error(session, ctx, denial).await
        }
        Flow::Reply(reply) => {
            ctx.outcome.verdict = Verdict::Local;
            write(session, ctx, reply).await
        }
    }
}

async fn error(session: &mut Session, ctx: &RequestCtx, denial: Denial) -> Result<()> {
    if ctx.peer.grpc {
        return grpc_error(session, ctx, denial).await;
    }
    let Denial { code, mut headers } = denial;
    // A middleware's own challenge (`Basic realm=...`) replaces the gateway's.
    let challenged = headers
        .iter()
        .any(|(n, _)| n == http::header::WWW_AUTHENTICATE);
    if let (Some(challenge), false) = (code.challenge(), challenged) {
        headers.push((
            http::header::WWW_AUTHENTICATE,
            HeaderValue::from_static(challenge),
        ));
    }
    let reply = Reply {
        status: code.status(),
        body: code.body(ctx.peer.request_id.as_str()),
        headers,
        no_store: true,
    };
    write(session, ctx, reply).await
}

async fn write(session: &mut Session, ctx: &RequestCtx, reply: Reply) -> Result<()> {
    let mut resp = ResponseHeader::build(reply.status, Some(4 + reply.headers.len()))?;
    let typed = reply
        .headers
        .iter()
        .any(|(n, _)| n == http::header::CONTENT_TYPE);
    if !reply.body.is_empty() && !typed {
        resp.insert_header(http::header::CONTENT_TYPE, "application/json")?;
    }
    if reply.status != 204 {
        resp.insert_header(http::header::CONTENT_LENGTH, reply.body.len())?;
    } else if !reply.no_store {
        // A preflight: an explicit empty body for clients that look for one.
        resp.insert_header(http::header::CONTENT_LENGTH, "0")?;
    }
    if reply.no_store {
        resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    }
    resp.insert_header("x-request-id", ctx.peer.request_id.as_str())?;
    for (name, value) in reply.headers {
        resp.insert_header(name, value)?;
    }
    if reply.no_store {
        decorate(session, ctx, &mut resp)?;
    } else {
        // A preflight carries its own CORS headers.
        headers_of(ctx).apply(&mut resp)?;
    }
    let head_only = session.req_header().method == http::Method::HEAD || reply.body.is_empty();
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(reply.body), true).await?;
    }
    Ok(())
}

/// An error to a gRPC call: a trailers-only answer (HTTP 200, `grpc-status`, `grpc-message`
/// with the contract's code), as gRPC clients expect.
async fn grpc_error(session: &mut Session, ctx: &RequestCtx, denial: Denial) -> Result<()> {
    let Denial { code, headers } = denial;
    let mut resp = ResponseHeader::build(200, Some(6 + headers.len()))?;
    resp.insert_header(http::header::CONTENT_TYPE, "application/grpc")?;
    resp.insert_header("grpc-status", code.grpc_status().to_string())?;
    // Printable ASCII without `%`: sent as is (gRPC's percent-encoding leaves it alone).
    resp.insert_header(
        "grpc-message",
        format!("{}: {}", code.code(), code.message()),
    )?;
    resp.insert_header("x-request-id", ctx.peer.request_id.as_str())?;
    resp.insert_header(http::header::CACHE_CONTROL, "no-store")?;
    for (name, value) in headers {
        resp.insert_header(name, value)?;
    }
    decorate(session, ctx, &mut resp)?;
    // One HEADERS frame that ends the stream: pingora's `write_response_header` would end an
    // HTTP/2 stream with an empty DATA frame instead, which gRPC clients refuse.
    let task = HttpTask::Header(Box::new(resp), true);
    session
        .as_downstream_mut()
        .response_duplex_vec(vec![task])
        .await?;
    Ok(())
}

/// Security, CORS and rate-limit headers for any answer to this request (the backend's or ours).
pub fn decorate<H: HeaderEdit>(session: &Session, ctx: &RequestCtx, resp: &mut H) -> Result<()> {
    headers_of(ctx).apply(resp)?;
    if let Some(cors) = &ctx.snapshot.edge.cors {
        cors.apply(session.req_header().headers.get(http::header::ORIGIN), resp)?;
    }
    if let Some(d) = &ctx.admitted.rate_limit {
        resp.set(RATELIMIT_LIMIT, d.limit.into())?;
        resp.set(RATELIMIT_REMAINING, d.remaining.into())?;
        resp.set(RATELIMIT_RESET, d.reset.into())?;
    }
    Ok(())
}

const RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("ratelimit-limit");
const RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("ratelimit-remaining");
const RATELIMIT_RESET: HeaderName = HeaderName::from_static("ratelimit-reset");

fn headers_of(ctx: &RequestCtx) -> &crate::security::SecurityHeaders {
    match &ctx.route {
        Some(route) => &route.headers,
        None => &ctx.snapshot.edge.headers,
    }
}
