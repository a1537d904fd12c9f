//! What a feature decides about a request, before anything is written: continue, refuse with
//! one of the contract's errors, or answer locally. Features return these; only `proxy` turns
//! them into bytes on the wire. A leaf module: it imports no other part of the gateway.

use bytes::Bytes;
use http::{HeaderName, HeaderValue};

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
    /// Admin API: the config file has problems (the body lists them).
    InvalidConfig,
    /// The upstream's circuit breaker is open or its request cap is reached.
    UpstreamOverloaded,
    /// Admin API: a cache purge on a gateway without a cache.
    CacheDisabled,
    /// Admin API: PromQL asked for without `admin.prometheus_url`.
    PrometheusNotConfigured,
    /// Admin API: Prometheus did not answer.
    PrometheusUnavailable,
    /// A WebSocket handshake on a route without `websocket`.
    WebSocketNotAllowed,
    /// `forward_auth`: the authorisation service did not answer (in time).
    AuthUnavailable,
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
            Self::InvalidConfig => 400,
            Self::CacheDisabled => 409,
            Self::UpstreamOverloaded => 503,
            Self::WebSocketNotAllowed => 400,
            Self::AuthUnavailable => 503,
            Self::PrometheusNotConfigured | Self::PrometheusUnavailable => 503,
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
            Self::InvalidConfig => "invalid_config",
            Self::CacheDisabled => "cache_disabled",
            Self::UpstreamOverloaded => "upstream_overloaded",
            Self::WebSocketNotAllowed => "websocket_not_allowed",
            Self::AuthUnavailable => "auth_unavailable",
            Self::PrometheusNotConfigured => "prometheus_not_configured",
            Self::PrometheusUnavailable => "prometheus_unavailable",
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
            Self::InvalidConfig => "The config file has problems; the running config stays",
            Self::CacheDisabled => "This gateway has no cache",
            Self::UpstreamOverloaded => "The upstream is overloaded or failing; try again shortly",
            Self::PrometheusNotConfigured => "No admin.prometheus_url is configured",
            Self::PrometheusUnavailable => "Prometheus did not answer",
            Self::WebSocketNotAllowed => "WebSocket is not enabled on this route",
            Self::AuthUnavailable => "The authorisation service did not answer, try again",
        }
    }

    /// The gRPC status code this error is answered with on gRPC requests.
    pub fn grpc_status(self) -> u8 {
        match self {
            Self::BadRequest | Self::WebSocketNotAllowed => 3, // INVALID_ARGUMENT
            Self::UpstreamTimeout => 4,                        // DEADLINE_EXCEEDED
            Self::Forbidden => 7,                              // PERMISSION_DENIED
            Self::RateLimited | Self::PayloadTooLarge => 8,    // RESOURCE_EXHAUSTED
            Self::RouteNotFound | Self::MethodNotAllowed => 12, // UNIMPLEMENTED
            Self::BadGateway
            | Self::NoHealthyUpstream
            | Self::UpstreamOverloaded
            | Self::StoreUnavailable
            | Self::AuthUnavailable
            | Self::PrometheusUnavailable => 14, // UNAVAILABLE
            Self::Unauthorized
            | Self::InvalidToken
            | Self::TokenExpired
            | Self::InvalidCredentials => 16, // UNAUTHENTICATED
            Self::Internal
            | Self::InvalidConfig
            | Self::CacheDisabled
            | Self::PrometheusNotConfigured => 13, // INTERNAL
        }
    }

    /// The `WWW-Authenticate` challenge (RFC 6750) that goes with a 401.
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

    /// The JSON body of an error answer, ending in a newline (so a terminal's prompt starts on
    /// a line of its own after `curl`).
    pub fn body(self, request_id: &str) -> Bytes {
        // Codes and messages are fixed ASCII and request ids are [A-Za-z0-9._-]: nothing to escape.
        Bytes::from(format!(
            "{{\"error\":{{\"code\":\"{}\",\"message\":\"{}\",\"request_id\":\"{}\"}}}}\n",
            self.code(),
            self.message(),
            request_id
        ))
    }
}

/// Extra headers of an answer, names and values already checked.
pub type Headers = Vec<(HeaderName, HeaderValue)>;

/// A refusal: one of the contract's errors and the headers that go with it (`Allow`,
/// `Retry-After`, a role challenge). The JSON body and the request id are added by the writer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub code: ErrorCode,
    pub headers: Headers,
}

impl Denial {
    pub fn new(code: ErrorCode) -> Denial {
        Denial {
            code,
            headers: Vec::new(),
        }
    }

    /// Adds a header; `value` is a fixed string or a number, always a valid header value.
    pub fn with(mut self, name: HeaderName, value: impl Into<HeaderValue>) -> Denial {
        self.headers.push((name, value.into()));
        self
    }

    /// A 429 or 503 with `Retry-After: secs`.
    pub fn retry_after(code: ErrorCode, secs: u64) -> Denial {
        Denial::new(code).with(http::header::RETRY_AFTER, secs)
    }
}

/// An answer the gateway gives itself that is not an error: `/health`, tokens, a logout, a CORS
/// preflight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub status: u16,
    /// JSON, or empty.
    pub body: Bytes,
    pub headers: Headers,
    /// `Cache-Control: no-store` (answers carrying tokens or live state).
    pub no_store: bool,
}

impl Reply {
    /// A JSON answer that no cache may keep.
    pub fn json(status: u16, body: impl Into<Bytes>) -> Reply {
        Reply {
            status,
            body: body.into(),
            headers: Vec::new(),
            no_store: true,
        }
    }

    /// An answer without a body and without `Cache-Control` (a preflight).
    pub fn empty(status: u16, headers: Headers) -> Reply {
        Reply {
            status,
            body: Bytes::new(),
            headers,
            no_store: false,
        }
    }
}

/// What a step of request handling decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Go on to the next step, and in the end to the backend.
    Continue,
    /// Refuse with an error answer.
    Deny(Denial),
    /// Answer locally.
    Reply(Reply),
}

impl From<Denial> for Flow {
    fn from(d: Denial) -> Flow {
        Flow::Deny(d)
    }
}

impl From<ErrorCode> for Flow {
    fn from(code: ErrorCode) -> Flow {
        Flow::Deny(Denial::new(code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_is_the_contract_json() {
        let body = ErrorCode::RateLimited.body("abc");
        let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert!(body.ends_with(b"}\n"));
        assert_eq!(v["error"]["code"], "rate_limited");
        assert_eq!(v["error"]["message"], "Too many requests");
        assert_eq!(v["error"]["request_id"], "abc");
        for status in [400, 403, 404, 405, 413, 429, 502, 503, 504] {
            assert_eq!(ErrorCode::from_status(status).status(), status);
        }
        assert_eq!(ErrorCode::from_status(418), ErrorCode::Internal);
    }

    #[test]
    fn challenges_only_on_401() {
        for code in [
            ErrorCode::Unauthorized,
            ErrorCode::InvalidToken,
            ErrorCode::TokenExpired,
            ErrorCode::InvalidCredentials,
        ] {
            assert_eq!(code.status(), 401);
            assert!(code.challenge().is_some(), "{code:?}");
        }
        assert!(ErrorCode::Forbidden.challenge().is_none());
        assert!(ErrorCode::RateLimited.challenge().is_none());
    }
}
