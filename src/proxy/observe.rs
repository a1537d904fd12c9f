//! What `logging` records once per request: every metric of the contract that a request moves,
//! and the access-log line. The one place they are written.

use super::access_log::{self, AccessRecord};
use super::cache;
use super::ctx::{RequestCtx, Verdict};
use super::errors;
use super::span;
use crate::balance::{CircuitState, Ejection, Upstream};
use crate::metrics::{self, status_label, RouteMetrics};
use pingora::prelude::*;
use pingora::proxy::Session;
use std::sync::LazyLock;

/// The series of requests that matched no route.
static UNMATCHED: LazyLock<RouteMetrics> = LazyLock::new(|| RouteMetrics::new("unmatched"));

pub fn record(session: &Session, e: Option<&Error>, ctx: &RequestCtx) {
    let status = match (ctx.peer.grpc, ctx.outcome.verdict) {
        // A gRPC error answer is an HTTP 200: count it as the error it stands for.
        (true, Verdict::Rejected(code)) => code.status(),
        _ => session.response_written().map_or(0, |r| r.status.as_u16()),
    };
    let req = session.req_header();
    let route = ctx.route.as_ref().map(|r| r.name.as_str());
    let upstream = ctx.upstream().map(|u| u.name.as_str());
    let elapsed = ctx.peer.started.elapsed();
    let cache_result = cache::result(session, ctx).map(|(_, result)| result);

    if let Some(upstream) = ctx.upstream() {
        let held = ctx.attempt.in_flight.as_ref().map(|held| {
            let failed = match ctx.attempt.upstream_status {
                Some(status) => status >= 500,
                None => e.is_some_and(|e| !errors::client_gone(e)),
            };
            (held.stats().as_ref(), failed)
        });
        let settled = upstream.settle(&ctx.attempt.failed, held, ctx.attempt.slot.as_ref());
        for ejection in settled.ejections {
            ejected(upstream, ejection);
        }
        circuit_moved(upstream, settled.circuit);
    }

    let route_metrics = ctx.route.as_ref().map_or(&*UNMATCHED, |r| &r.metrics);
    route_metrics.request(&req.method, status, elapsed);
    if let Some(limited) = ctx.admitted.limited {
        route_metrics.rate_limit(limited);
    }
    if let Some(upstream) = upstream {
        for (failed, status) in ctx.attempt.failed.iter().zip(&ctx.attempt.failed_as) {
            failed.count_try(upstream, status);
        }
        if let Some(held) = &ctx.attempt.in_flight {
            let backend_status = ctx.attempt.upstream_status.map_or("error", status_label);
            held.stats().count_try(upstream, backend_status);
        }
    }
    if let Some(event) = ctx.admitted.auth.or(ctx.outcome.endpoint_auth) {
        metrics::auth(event.result, event.reason);
    }
    if let Some(m) = metrics::get() {
        if let (Some(route), Some(upstream), Some(_)) = (route, upstream, ctx.arm) {
            m.canary_requests
                .with_label_values(&[route, upstream])
                .inc();
        }
        if let (Some(result), Some(route)) = (cache_result, route) {
            m.cache_requests.with_label_values(&[route, result]).inc();
        }
    }

    let sampled = ctx.trace.as_ref().filter(|t| t.context.sampled);
    let access_log = ctx.snapshot.file.log.access_log;
    if !access_log && sampled.is_none() {
        return;
    }
    let outcome = match ctx.outcome.verdict {
        Verdict::Rejected(code) => code.code(),
        Verdict::Local => "local",
        Verdict::Proxied => match e {
            Some(e) => errors::classify(e).map_or("error", |code| code.code()),
            None => "proxied",
        },
    };
    // The backend of the last attempt, whether it answered or refused the connection.
    let backend = match &ctx.attempt.in_flight {
        Some(held) => Some(held.stats().addr()),
        None => ctx.attempt.failed.last().map(|f| f.addr()),
    };
    let record = AccessRecord {
        request_id: ctx.peer.request_id.as_str(),
        client_ip: ctx.peer.client_ip,
        method: req.method.as_str(),
        path: req.uri.path(),
        route,
        status,
        upstream: upstream.filter(|_| backend.is_some()),
        backend,
        attempts: ctx.attempt.count,
        duration_ms: elapsed.as_secs_f64() * 1000.0,
        bytes_sent: session.body_bytes_sent(),
        cache: cache_result.unwrap_or("-"),
        user: ctx.admitted.caller.as_ref().map(|c| c.subject.as_str()),
        outcome,
        trace: ctx.trace.as_ref().map(|t| &t.context),
    };
    if access_log {
        access_log::write(&record);
    }
    if let Some(trace) = sampled {
        span::record(&record, trace, elapsed);
    }
}

/// Logs and counts an ejection by outlier detection.
fn ejected(upstream: &Upstream, e: Ejection) {
    log::warn!(
        "backend {} of upstream {} ejected for {:?} after {} failed requests in a row",
        e.addr,
        upstream.name,
        e.duration,
        upstream.outlier_threshold()
    );
    if let Some(m) = metrics::get() {
        m.backend_ejections
            .with_label_values(&[upstream.name.as_str(), &e.addr.to_string()])
            .inc();
    }
}

/// Logs and counts a circuit breaker transition.
pub fn circuit_moved(upstream: &Upstream, moved: Option<CircuitState>) {
    let Some(state) = moved else {
        return;
    };
    log::warn!(
        "circuit breaker of upstream {} is now {}",
        upstream.name,
        state.name()
    );
    if let Some(m) = metrics::get() {
        let name = upstream.name.as_str();
        m.circuit_state.with_label_values(&[name]).set(state as i64);
        m.circuit_transitions
            .with_label_values(&[name, state.name()])
            .inc();
    }
}
