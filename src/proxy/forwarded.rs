//! Client identity through trusted proxies, and the headers the backend receives about it.

use super::ctx::RequestCtx;
use crate::routing::Snapshot;
use pingora::http::RequestHeader;
use pingora::prelude::*;
use std::net::IpAddr;

/// The client address: the TCP peer, or, when the peer is a trusted proxy, the right-most
/// address in `X-Forwarded-For` that is not itself a trusted proxy.
pub fn client_ip(peer: IpAddr, peer_trusted: bool, req: &RequestHeader, snap: &Snapshot) -> IpAddr {
    if !peer_trusted {
        return peer;
    }
    let mut client = peer;
    for value in req.headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = value.to_str() else {
            return client;
        };
        for hop in text.rsplit(',') {
            match hop.trim().parse::<IpAddr>() {
                Ok(ip) => {
                    client = ip;
                    if !snap.is_trusted_proxy(ip) {
                        return client;
                    }
                }
                Err(_) => return client,
            }
        }
    }
    client
}

/// Sets `X-Forwarded-For/-Proto/-Host` and `X-Request-Id` on the upstream request and removes
/// every client-sent `X-User-*` header.
pub fn apply(req: &mut RequestHeader, ctx: &RequestCtx, peer: Option<IpAddr>) -> Result<()> {
    remove_user_headers(req);
    if let Some(peer) = peer {
        let xff = match req.headers.get("x-forwarded-for").map(|v| v.to_str()) {
            Some(Ok(prev)) if ctx.peer_trusted && !prev.is_empty() => format!("{prev}, {peer}"),
            _ => peer.to_string(),
        };
        req.insert_header("x-forwarded-for", xff)?;
    }
    if !(ctx.peer_trusted && req.headers.contains_key("x-forwarded-proto")) {
        req.insert_header("x-forwarded-proto", "http")?;
    }
    if !(ctx.peer_trusted && req.headers.contains_key("x-forwarded-host")) {
        match req.headers.get(http::header::HOST).cloned() {
            Some(host) => req.insert_header("x-forwarded-host", host)?,
            None => {
                req.remove_header("x-forwarded-host");
            }
        }
    }
    req.insert_header("x-request-id", ctx.request_id.as_str())?;
    if let Some(caller) = &ctx.caller {
        req.insert_header("x-user-id", caller.subject.as_str())?;
        req.insert_header("x-user-roles", caller.roles_header.as_str())?;
    }
    Ok(())
}

fn remove_user_headers(req: &mut RequestHeader) {
    let has_user_header = |req: &RequestHeader| {
        req.headers
            .keys()
            .find(|k| k.as_str().starts_with("x-user-"))
            .cloned()
    };
    while let Some(name) = has_user_header(req) {
        req.remove_header(&name);
    }
}
