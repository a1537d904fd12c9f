//! `/auth/login|refresh|logout`: the one entry point both listeners (proxy and admin) use, so
//! they cannot disagree on who may call them.

use crate::auth::endpoints::{handle, Call, Endpoint, Handled, MAX_BODY};
use crate::outcome::ErrorCode;
use crate::snapshot::Snapshot;
use pingora::protocols::http::ServerSession;
use std::net::IpAddr;

/// The endpoint's answer, or `None` when the gateway issues no tokens (the path is then nobody's
/// here). The global IP rules come first (only `/health` is exempt from them), then the body (at
/// most [`MAX_BODY`]), then the endpoint. `client_ip` is the client as `crate::client` finds it
/// (IPv4-mapped addresses as IPv4, trusted proxies' `X-Forwarded-For` followed).
pub async fn serve(
    snapshot: &Snapshot,
    endpoint: Endpoint,
    session: &mut ServerSession,
    client_ip: Option<IpAddr>,
) -> Option<Handled> {
    let auth = snapshot.auth.as_ref().filter(|a| a.issues_tokens())?;
    if !snapshot.edge.ip_rules.admit(client_ip) {
        return Some(Handled::deny(ErrorCode::Forbidden, None));
    }
    let body = match crate::body::read_limited(session, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return Some(Handled::deny(ErrorCode::BadRequest, None)),
    };
    let req = session.req_header();
    let call = Call {
        method: &req.method,
        body: body.as_deref(),
        client_ip,
        bearer: crate::auth::bearer(req),
    };
    Some(handle(auth, endpoint, call).await)
}
