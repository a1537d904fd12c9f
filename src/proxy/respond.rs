//! Answers the gateway writes itself: always JSON, always with the request id.

use super::ctx::{RequestCtx, Verdict};
use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::prelude::*;
use pingora::proxy::Session;

/// The error codes of the contract, each with its status and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    InvalidToken,
    TokenExpired,
    InvalidCredentials,
    RateLimited,
    StoreUnavailable,
    Forbidden,
    RouteNotFound,
    MethodNotAllowed,
    PayloadTooLarge,
    BadGateway,
    NoHealthyUpstream,
    UpstreamTimeout,
    Internal,
}

impl ErrorCode {
    pub fn status(self) -> u16 {
        match self {
            Self::BadRequest => 400,
            Self::Unauthorized
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::InvalidCredentials => 401,
            Self::RateLimited => 429,
            Self::StoreUnavailable => 503,
            Self::Forbidden => 403,
            Self::RouteNotFound => 404,
            Self::MethodNotAllowed => 405,
            Self::PayloadTooLarge => 413,
            Self::BadGateway => 502,
            Self::NoHealthyUpstream => 503,
            Self::UpstreamTimeout => 504,
            Self::Internal => 500,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Self::BadRequest => "bad_request",
            Self::Unauthorized => "unauthorized",
            Self::InvalidToken => "invalid_token",
            Self::TokenExpired => "token_expired",
            Self::InvalidCredentials => "invalid_credentials",
            Self::RateLimited => "rate_limited",
            Self::StoreUnavailable => "store_unavailable",
            Self::Forbidden => "forbidden",
            Self::RouteNotFound => "route_not_found",
            Self::MethodNotAllowed => "method_not_allowed",
            Self::PayloadTooLarge => "payload_too_large",
            Self::BadGateway => "bad_gateway",
            Self::NoHealthyUpstream => "no_healthy_upstream",
            Self::UpstreamTimeout => "upstream_timeout",
            Self::Internal => "internal_error",
        }
    }

    pub fn message(self) -> &'static str {
        match self {
            Self::BadRequest => "Malformed request",
            Self::Unauthorized => "Authentication required",
            Self::InvalidToken => "The token is invalid or revoked",
            Self::TokenExpired => "The token has expired",
            Self::InvalidCredentials => "Invalid credentials",
            Self::RateLimited => "Too many requests",
            Self::StoreUnavailable => "The token store is unavailable, try again",
            Self::Forbidden => "Access to this route is not allowed",
            Self::RouteNotFound => "No route matches this path",
            Self::MethodNotAllowed => "Method not allowed on this route",
            Self::PayloadTooLarge => "Request body too large",
            Self::BadGateway => "The backend refused or broke the connection",
            Self::NoHealthyUpstream => "No healthy backend is available",
            Self::UpstreamTimeout => "The backend did not answer in time",
            Self::Internal => "Internal gateway error",
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750) that goes with a 401 or a role refusal.
    pub fn challenge(self) -> Option<&'static str> {
        match self {
            Self::Unauthorized | Self::InvalidCredentials => Some(r#"Bearer realm="api-gateway""#),
            Self::InvalidToken => Some(
                r#"Bearer realm="api-gateway", error="invalid_token", error_description="The token is invalid or revoked""#,
            ),
            Self::TokenExpired => Some(
                r#"Bearer realm="api-gateway", error="invalid_token", error_description="The token has expired""#,
            ),
            _ => None,
        }
    }

    /// The code for a status the gateway decided on (`HTTPStatus` errors).
    pub fn from_status(status: u16) -> ErrorCode {
        match status {
            400 => Self::BadRequest,
            403 => Self::Forbidden,
            404 => Self::RouteNotFound,
            405 => Self::MethodNotAllowed,
            429 => Self::RateLimited,
            413 => Self::PayloadTooLarge,
            502 => Self::BadGateway,
            503 => Self::NoHealthyUpstream,
            504 => Self::UpstreamTimeout,
            _ => Self::Internal,
        }
    }
}

/// The JSON body of an error answer.
pub fn error_body(code: ErrorCode, request_id: &str) -> Bytes {
    // Codes and messages are fixed ASCII and request ids are [A-Za-z0-9._-]: nothing to escape.
    Bytes::from(format!(
        r#"{{"error":{{"code":"{}","message":"{}","request_id":"{}"}}}}"#,
        code.code(),
        code.message(),
        request_id
    ))
}

/// Writes an error answer and records it as the verdict.
pub async fn error(
    session: &mut Session,
    ctx: &mut RequestCtx,
    code: ErrorCode,
    extra: &[(&'static str, &str)],
) -> Result<()> {
    ctx.verdict = Verdict::Rejected(code);
    let body = error_body(code, ctx.request_id.as_str());
    match code.challenge() {
        Some(challenge) => {
            let mut with = Vec::with_capacity(extra.len() + 1);
            with.extend_from_slice(extra);
            with.push(("www-authenticate", challenge));
            json(session, ctx, code.status(), body, &with).await
        }
        None => json(session, ctx, code.status(), body, extra).await,
    }
}

/// Writes a complete JSON answer with the gateway's standard headers.
pub async fn json(
    session: &mut Session,
    ctx: &RequestCtx,
    status: u16,
    body: Bytes,
    extra: &[(&'static str, &str)],
) -> Result<()> {
    let mut resp = ResponseHeader::build(status, Some(4 + extra.len()))?;
    if status != 204 {
        resp.insert_header("content-type", "application/json")?;
        resp.insert_header("content-length", body.len())?;
    }
    resp.insert_header("cache-control", "no-store")?;
    resp.insert_header("x-request-id", ctx.request_id.as_str())?;
    for (name, value) in extra {
        resp.insert_header(*name, *value)?;
    }
    decorate(session, ctx, &mut resp)?;
    let head_only = session.req_header().method == http::Method::HEAD || body.is_empty();
    session
        .write_response_header(Box::new(resp), head_only)
        .await?;
    if !head_only {
        session.write_response_body(Some(body), true).await?;
    }
    Ok(())
}

/// Answers a CORS preflight: 204, with the CORS headers when the origin is allowed.
pub async fn preflight(session: &mut Session, ctx: &mut RequestCtx) -> Result<()> {
    ctx.verdict = Verdict::Local;
    let mut resp = ResponseHeader::build(204, Some(8))?;
    resp.insert_header("content-length", "0")?;
    resp.insert_header("x-request-id", ctx.request_id.as_str())?;
    if let Some(cors) = &ctx.snapshot.cors {
        cors.preflight(
            session.req_header().headers.get(http::header::ORIGIN),
            &mut resp,
        )?;
    }
    headers_of(ctx).apply(&mut resp)?;
    session.write_response_header(Box::new(resp), true).await
}

/// Security and CORS headers for any answer to this request (the backend's or ours).
pub fn decorate(session: &Session, ctx: &RequestCtx, resp: &mut ResponseHeader) -> Result<()> {
    headers_of(ctx).apply(resp)?;
    if let Some(cors) = &ctx.snapshot.cors {
        cors.apply(session.req_header().headers.get(http::header::ORIGIN), resp)?;
    }
    if let Some(d) = &ctx.rate_limit {
        resp.insert_header("ratelimit-limit", d.limit)?;
        resp.insert_header("ratelimit-remaining", d.remaining)?;
        resp.insert_header("ratelimit-reset", d.reset)?;
    }
    Ok(())
}

fn headers_of(ctx: &RequestCtx) -> &crate::security::SecurityHeaders {
    match &ctx.route {
        Some(route) => &route.headers,
        None => &ctx.snapshot.headers,
    }
}
