//! The span of a finished request, from what its access line holds.

use super::access_log::AccessRecord;
use super::ctx::RequestTrace;
use crate::trace::{Attr, Span};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The most of a path a span keeps: spans wait in memory until exported, and a path may be
/// up to pingora's head limit.
const MAX_PATH: usize = 512;

/// The first `max` bytes of `s` at most, cut at a character boundary.
fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Queues the request's span with the tracer.
pub fn record(r: &AccessRecord<'_>, trace: &RequestTrace, elapsed: Duration) {
    let Some(tracer) = crate::trace::get() else {
        return;
    };
    let end = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
    let start = end.saturating_sub(u64::try_from(elapsed.as_nanos()).unwrap_or(u64::MAX));
    let text = |s: &str| Attr::Str(s.to_owned());
    let mut attributes = vec![
        ("http.request.method", text(r.method)),
        ("url.path", text(clip(r.path, MAX_PATH))),
        ("http.response.status_code", Attr::Int(i64::from(r.status))),
        ("gateway.outcome", text(r.outcome)),
        ("gateway.attempts", Attr::Int(r.attempts as i64)),
    ];
    let optional = [
        ("http.route", r.route.map(text)),
        ("gateway.upstream", r.upstream.map(text)),
        (
            "gateway.backend",
            r.backend.map(|b| Attr::Str(b.to_string())),
        ),
        (
            "client.address",
            r.client_ip.map(|ip| Attr::Str(ip.to_string())),
        ),
        ("enduser.id", r.user.map(text)),
        ("gateway.cache", (r.cache != "-").then(|| text(r.cache))),
        ("gateway.request_id", Some(text(r.request_id))),
    ];
    attributes.extend(optional.into_iter().filter_map(|(k, v)| Some((k, v?))));
    tracer.record(Span {
        context: trace.context,
        parent: trace.parent,
        name: format!("{} {}", r.method, r.route.unwrap_or("unmatched")),
        start_unix_ns: start,
        end_unix_ns: end,
        attributes,
        error: r.status == 0 || r.status >= 500,
    });
}

#[cfg(test)]
mod tests {
    use super::clip;

    #[test]
    fn clipping_keeps_whole_characters() {
        assert_eq!(clip("/short", 512), "/short");
        assert_eq!(clip("/ééé", 4), "/é");
        assert_eq!(clip(&"a".repeat(1000), 512).len(), 512);
    }
}
