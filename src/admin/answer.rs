//! What an admin handler returns, and the one place it becomes an HTTP answer: the contract's
//! JSON errors with the request id, and the headers every admin answer carries (a strict CSP,
//! no sniffing, no framing).

use crate::outcome::{Denial, ErrorCode, Flow};
use bytes::Bytes;
use http::{header, HeaderValue, Response};

/// Same-origin everything, no inline script; styles may be set from script (the dashboard's
/// charts position elements), never from markup.
pub const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; \
frame-ancestors 'none'; form-action 'self'";

/// An admin answer before it is written.
pub enum Answer {
    /// JSON: an error, or a reply.
    Flow(Flow),
    /// Anything else (exposition text, dashboard files).
    Body {
        status: u16,
        content_type: &'static str,
        cache_control: &'static str,
        body: Bytes,
    },
}

impl From<Flow> for Answer {
    fn from(flow: Flow) -> Answer {
        Answer::Flow(flow)
    }
}

impl From<ErrorCode> for Answer {
    fn from(code: ErrorCode) -> Answer {
        Answer::Flow(code.into())
    }
}

impl From<Denial> for Answer {
    fn from(d: Denial) -> Answer {
        Answer::Flow(d.into())
    }
}

/// Writes `answer` for a request with id `request_id`; no body for HEAD.
pub fn write(answer: Answer, request_id: &str, head: bool) -> Response<Vec<u8>> {
    let (status, content_type, cache_control, body, extra) = match answer {
        Answer::Flow(Flow::Deny(Denial { code, mut headers })) => {
            if let Some(challenge) = code.challenge() {
                headers.push((
                    header::WWW_AUTHENTICATE,
                    HeaderValue::from_static(challenge),
                ));
            }
            let body = code.body(request_id);
            (code.status(), "application/json", "no-store", body, headers)
        }
        Answer::Flow(Flow::Reply(reply)) => (
            reply.status,
            "application/json",
            "no-store",
            reply.body,
            reply.headers,
        ),
        Answer::Flow(Flow::Continue) => {
            let code = ErrorCode::Internal;
            (
                code.status(),
                "application/json",
                "no-store",
                code.body(request_id),
                Vec::new(),
            )
        }
        Answer::Body {
            status,
            content_type,
            cache_control,
            body,
        } => (status, content_type, cache_control, body, Vec::new()),
    };
    let mut resp = Response::builder()
        .status(status)
        .header(header::CACHE_CONTROL, cache_control)
        .header(header::CONTENT_SECURITY_POLICY, CSP)
        .header(header::X_CONTENT_TYPE_OPTIONS, "nosniff")
        .header(header::X_FRAME_OPTIONS, "DENY")
        .header(header::REFERRER_POLICY, "no-referrer")
        .header("x-request-id", request_id);
    if status != 204 {
        resp = resp
            .header(header::CONTENT_LENGTH, body.len())
            .header(header::CONTENT_TYPE, content_type);
    }
    for (name, value) in extra {
        resp = resp.header(name, value);
    }
    let body = if head || status == 204 {
        Vec::new()
    } else {
        body.to_vec()
    };
    resp.body(body).unwrap_or_default()
}
