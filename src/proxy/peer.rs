//! The backend of each attempt: the circuit breaker and connect cap of the route's upstream,
//! the wait before a retry, the pick (by client address for `ip_hash`), and the peer's TLS,
//! protocol and timeouts.

use super::ctx::RequestCtx;
use super::observe;
use crate::balance::InFlight;
use pingora::prelude::*;
use std::net::IpAddr;
use std::time::Duration;

/// How long an idle pooled upstream connection is kept.
pub const UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(60);

/// The peer for the request's next attempt; an error (503 or 502) when none can be had.
pub async fn pick(ctx: &mut RequestCtx) -> Result<Box<HttpPeer>> {
    let route = ctx
        .route
        .as_ref()
        .ok_or_else(|| Error::explain(InternalError, "no route selected"))?;
    let upstream = route.upstream(ctx.arm.unwrap_or(0));
    if ctx.attempt.count == 0 {
        // Only requests that may be retried feed the budget (and pay for its clock read).
        if route.retry.is_some() || upstream.retries > 0 {
            upstream.count_request();
        }
        match upstream.admit() {
            Ok(None) => {}
            Ok(Some((slot, moved))) => {
                ctx.attempt.slot = Some(slot);
                observe::circuit_moved(upstream, moved);
            }
            Err(refusal) => {
                ctx.attempt.refused = Some(refusal);
                return Err(Error::explain(HTTPStatus(503), "circuit breaker refused"));
            }
        }
    }
    if let (Some(policy), true) = (&route.retry, ctx.attempt.count > 0) {
        tokio::time::sleep(policy.wait_before(ctx.attempt.count + 1)).await;
    }
    match upstream.start_connect() {
        Ok(connecting) => ctx.attempt.connecting = connecting,
        Err(refusal) => {
            ctx.attempt.refused = Some(refusal);
            return Err(Error::explain(
                HTTPStatus(503),
                "too many connects under way",
            ));
        }
    }
    let mut key = [0; 16];
    let key = ip_key(ctx.peer.client_ip, &mut key);
    let Some(picked) = upstream.select(key, &ctx.attempt.failed) else {
        // Every backend left was tried and refused: that is the backend's failure.
        let status = if ctx.attempt.failed.is_empty() {
            503
        } else {
            502
        };
        return Err(Error::explain(HTTPStatus(status), "no backend available"));
    };
    let addr = picked.addr;
    ctx.attempt.count += 1;
    // Replacing the guard of a failed attempt releases that backend's count.
    ctx.attempt.in_flight = Some(InFlight::start(picked.stats));
    let mut peer = HttpPeer::new(addr, upstream.tls, upstream.sni.clone());
    peer.options.connection_timeout = upstream.connect_timeout;
    peer.options.ca = upstream.ca.clone();
    if upstream.h2 {
        // TLS: ALPN `h2` only; plaintext: h2c with prior knowledge.
        peer.options.set_http_version(2, 2);
    }
    let per_try = route.retry.as_ref().and_then(|p| p.per_try_timeout);
    let tunnel_idle = route.websocket.filter(|_| ctx.websocket);
    let timeout = tunnel_idle
        .or(per_try)
        .or(route.timeout)
        .or(upstream.read_timeout);
    // A gRPC call's own deadline, when shorter.
    let timeout = match (timeout, ctx.peer.grpc_timeout) {
        (Some(t), Some(g)) => Some(t.min(g)),
        (t, g) => t.or(g),
    };
    peer.options.read_timeout = timeout;
    peer.options.write_timeout = timeout;
    peer.options.idle_timeout = Some(UPSTREAM_IDLE_TIMEOUT);
    Ok(Box::new(peer))
}

/// The client address as hash key bytes (for `ip_hash`), written into `buf`.
fn ip_key(ip: Option<IpAddr>, buf: &mut [u8; 16]) -> &[u8] {
    match ip {
        Some(IpAddr::V4(v4)) => {
            buf[..4].copy_from_slice(&v4.octets());
            &buf[..4]
        }
        Some(IpAddr::V6(v6)) => {
            *buf = v6.octets();
            &buf[..]
        }
        None => &[],
    }
}
