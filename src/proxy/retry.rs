//! Which failed tries are tried again: on another backend, within the route's `retry` policy (or
//! the upstream's connect-failure `retries` without one) and the upstream's retry budget. A try
//! that reached a backend is retried only for idempotent methods whose body can be replayed.

use super::ctx::RequestCtx;
use crate::balance::Upstream;
use crate::metrics::{self, status_label};
use crate::routing::Route;
use pingora::proxy::Session;
use std::sync::Arc;

/// How a try failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// Nothing reached the backend.
    Connect,
    Timeout,
    Status(u16),
}

impl Failure {
    fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect",
            Failure::Timeout => "timeout",
            Failure::Status(s) => status_label(s),
        }
    }
}

/// Whether the try that just failed gets another; when it does, the backend of the failed try
/// is set aside (counted as failed, skipped by the next pick) and the retry is counted.
pub fn again(session: &Session, ctx: &mut RequestCtx, failure: Failure) -> bool {
    let Some(route) = ctx.route.clone() else {
        return false;
    };
    let upstream = route.upstream(ctx.arm.unwrap_or(0));
    let tries = ctx.attempt.count;
    let allowed = match (&route.retry, failure) {
        (None, Failure::Connect) => tries <= upstream.retries,
        (None, _) => false,
        (Some(p), f) => {
            tries < p.attempts
                && match f {
                    Failure::Connect => p.on_connect,
                    Failure::Timeout => p.on_timeout && replayable(session),
                    Failure::Status(s) => p.statuses.contains(&s) && replayable(session),
                }
        }
    };
    let granted = allowed && budget(&route, upstream, failure);
    // A refused connection sent nothing: its backend is skipped from now on either way. A timeout
    // or status that is not retried stays the request's answer, its backend held.
    if granted || failure == Failure::Connect {
        if let Some(held) = ctx.attempt.in_flight.take() {
            ctx.attempt.failed.push(Arc::clone(held.stats()));
            ctx.attempt.failed_as.push(match failure {
                Failure::Connect => "connect_error",
                other => other.label(),
            });
        }
    }
    granted
}

/// Takes the retry from the upstream's budget, counting it either way.
fn budget(route: &Route, upstream: &Upstream, failure: Failure) -> bool {
    let m = metrics::get();
    if !upstream.take_retry() {
        if let Some(m) = m {
            m.retry_budget_exhausted
                .with_label_values(&[upstream.name.as_str()])
                .inc();
        }
        return false;
    }
    if let Some(m) = m {
        m.retries
            .with_label_values(&[route.name.as_str(), failure.label()])
            .inc();
    }
    true
}

/// An idempotent method whose body (if any) is still whole in pingora's retry buffer.
fn replayable(session: &Session) -> bool {
    session.req_header().method.is_idempotent() && !session.as_ref().retry_buffer_truncated()
}
