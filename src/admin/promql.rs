//! `GET /api/promql?query=&time=` and `GET /api/promql/range?query=&start=&end=&step=`: passed
//! to `admin.prometheus_url`'s `/api/v1/query` and `/api/v1/query_range`. Prometheus' own answer
//! (success or its JSON error) comes back as it is; 503 when none is configured or it is down.

use super::answer::Answer;
use super::api::param;
use crate::outcome::{Denial, ErrorCode};
use bytes::Bytes;
use std::time::Duration;

/// Longest wait for Prometheus (a slow query is cut off, as `timeout` would).
const TIMEOUT: Duration = Duration::from_secs(10);
/// Largest answer passed on.
const MAX_ANSWER: usize = 8 << 20;

/// Instant (`range == false`) or range query.
pub async fn query(prometheus_url: Option<&str>, range: bool, query: Option<&str>) -> Answer {
    let Some(base) = prometheus_url else {
        return ErrorCode::PrometheusNotConfigured.into();
    };
    let (api, names): (&str, &[&str]) = if range {
        ("query_range", &["query", "start", "end", "step", "timeout"])
    } else {
        ("query", &["query", "time", "timeout"])
    };
    if param(query, "query").is_none_or(|q| q.trim().is_empty()) {
        return ErrorCode::BadRequest.into();
    }
    // Only the parameters Prometheus takes, re-encoded: nothing else reaches it.
    let mut url = format!("{}/api/v1/{api}?", base.trim_end_matches('/'));
    for name in names {
        if let Some(value) = param(query, name).filter(|v| !v.is_empty()) {
            url.push_str(name);
            url.push('=');
            encode_into(&value, &mut url);
            url.push('&');
        }
    }
    url.pop();
    match crate::http_client::get(&url, "application/json", TIMEOUT, MAX_ANSWER).await {
        Ok(answer) if answer.status >= 200 && answer.status < 600 => Answer::Body {
            status: answer.status,
            content_type: "application/json",
            cache_control: "no-store",
            body: Bytes::from(answer.body),
        },
        Ok(answer) => {
            log::warn!("prometheus answered status {}", answer.status);
            Denial::retry_after(ErrorCode::PrometheusUnavailable, 5).into()
        }
        Err(e) => {
            log::warn!("prometheus did not answer: {e}");
            Denial::retry_after(ErrorCode::PrometheusUnavailable, 5).into()
        }
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode_into(value: &str, out: &mut String) {
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_encoded_for_the_query_string() {
        let mut out = String::new();
        encode_into("sum(rate(x{a=\"b\"}[1m])) & 1", &mut out);
        assert_eq!(
            out,
            "sum%28rate%28x%7Ba%3D%22b%22%7D%5B1m%5D%29%29%20%26%201"
        );
    }
}
