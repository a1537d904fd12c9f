//! What `logging` records once per request: the contract's metrics and the access-log line.

use super::access_log::{self, AccessRecord};
use super::ctx::{RequestCtx, Verdict};
use crate::metrics::{self, method_label, status_label};
use pingora::prelude::*;
use pingora::proxy::Session;

pub fn record(session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
    let status = session.response_written().map_or(0, |r| r.status.as_u16());
    let req = session.req_header();
    let route = ctx.route.as_ref().map(|r| r.name.as_str());
    let upstream = ctx.route.as_ref().map(|r| r.upstream.name.as_str());
    let elapsed = ctx.started.elapsed();

    if let Some(m) = metrics::get() {
        let route_label = route.unwrap_or("unmatched");
        let method = method_label(&req.method);
        m.http_requests
            .with_label_values(&[route_label, method, status_label(status)])
            .inc();
        m.http_duration
            .with_label_values(&[route_label, method])
            .observe(elapsed.as_secs_f64());
        if let (Some(upstream), Some(held)) = (upstream, &ctx.in_flight) {
            let backend_status = ctx.upstream_status.map_or("error", status_label);
            m.backend_requests
                .with_label_values(&[upstream, held.stats().label(), backend_status])
                .inc();
        }
    }

    if !ctx.snapshot.file.log.access_log {
        return;
    }
    let outcome = match (ctx.verdict, e) {
        (Verdict::Rejected(code), _) => code.code(),
        (Verdict::Local, _) => "local",
        (Verdict::Proxied, Some(_)) => "error",
        (Verdict::Proxied, None) => "proxied",
    };
    access_log::write(&AccessRecord {
        request_id: ctx.request_id.as_str(),
        client_ip: ctx.client_ip,
        method: req.method.as_str(),
        path: req.uri.path(),
        route,
        status,
        upstream: upstream.filter(|_| ctx.backend.is_some()),
        backend: ctx.backend,
        attempts: ctx.attempts,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        bytes_sent: session.body_bytes_sent(),
        cache: "-",
        user: ctx.caller.as_ref().map(|c| c.subject.as_str()),
        outcome,
    });
}

/// Counts a refused or timed-out connect to a backend.
pub fn connect_failed(ctx: &RequestCtx) {
    if let (Some(m), Some(route), Some(held)) = (metrics::get(), &ctx.route, &ctx.in_flight) {
        let labels = [
            route.upstream.name.as_str(),
            held.stats().label(),
            "connect_error",
        ];
        m.backend_requests.with_label_values(&labels).inc();
    }
}
