//! The contract's Prometheus metrics, registered once in prometheus' default registry (the one
//! pingora-prometheus serves), and the metrics listener.

mod bound;
mod fleet;
mod server;

pub use fleet::{discovery, etcd_connected, etcd_revision};

pub use bound::{auth, BackendCounters, RouteMetrics};
pub use server::MetricsApp;

use prometheus::{
    register_histogram_vec, register_int_counter_vec, register_int_gauge, register_int_gauge_vec,
    HistogramVec, IntCounterVec, IntGauge, IntGaugeVec,
};
use std::sync::LazyLock;

/// Every metric of the contract. Labels are bounded: route and upstream names, backend
/// addresses from the config, status codes, fixed reason words; never raw paths.
pub struct Metrics {
    pub http_requests: IntCounterVec,
    pub http_duration: HistogramVec,
    pub backend_requests: IntCounterVec,
    pub rate_limit_requests: IntCounterVec,
    pub active_connections: IntGauge,
    pub auth_requests: IntCounterVec,
    pub config_reloads: IntCounterVec,
    pub cache_requests: IntCounterVec,
    pub cache_store_errors: IntCounterVec,
    pub redis_backoffs: prometheus::IntCounter,
    pub backend_ejections: IntCounterVec,
    pub circuit_state: IntGaugeVec,
    pub circuit_transitions: IntCounterVec,
    pub retries: IntCounterVec,
    pub retry_budget_exhausted: IntCounterVec,
    pub canary_requests: IntCounterVec,
    pub websocket_connections: IntGaugeVec,
    pub tracing_spans_dropped: IntCounterVec,
}

static METRICS: LazyLock<Option<Metrics>> = LazyLock::new(|| match register() {
    Ok(m) => Some(m),
    Err(e) => {
        log::error!("metrics registration failed, metrics are off: {e}");
        None
    }
});

/// The registered metrics; `None` only if registration failed (logged once).
pub fn get() -> Option<&'static Metrics> {
    METRICS.as_ref()
}

fn register() -> prometheus::Result<Metrics> {
    let m = Metrics {
        http_requests: register_int_counter_vec!(
            "http_requests_total",
            "Requests answered, by route, method and status",
            &["route", "method", "status"]
        )?,
        http_duration: register_histogram_vec!(
            "http_request_duration_seconds",
            "Time from request head to the end of the answer",
            &["route", "method"]
        )?,
        backend_requests: register_int_counter_vec!(
            "backend_requests_total",
            "Requests sent to backends, by upstream, backend and status (connect_error when refused)",
            &["upstream", "backend", "status"]
        )?,
        rate_limit_requests: register_int_counter_vec!(
            "rate_limit_requests_total",
            "Rate limit decisions, by route and result",
            &["route", "result"]
        )?,
        circuit_state: register_int_gauge_vec!(
            "circuit_state",
            "Circuit breaker state by upstream: 0 closed, 1 open, 2 half-open",
            &["upstream"]
        )?,
        retries: register_int_counter_vec!(
            "retries_total",
            "Tries made again on another backend, by route and what failed",
            &["route", "reason"]
        )?,
        retry_budget_exhausted: register_int_counter_vec!(
            "retry_budget_exhausted_total",
            "Retries refused because the upstream's retry budget was spent",
            &["upstream"]
        )?,
        tracing_spans_dropped: register_int_counter_vec!(
            "tracing_spans_dropped_total",
            "Spans not exported: the queue was full, or the collector failed",
            &["reason"]
        )?,
        websocket_connections: register_int_gauge_vec!(
            "websocket_connections",
            "WebSocket tunnels open, by route",
            &["route"]
        )?,
        canary_requests: register_int_counter_vec!(
            "canary_requests_total",
            "Requests to routes with several upstreams, by route and the upstream they were given",
            &["route", "upstream"]
        )?,
        circuit_transitions: register_int_counter_vec!(
            "circuit_transitions_total",
            "Circuit breaker transitions, by upstream and the state entered",
            &["upstream", "state"]
        )?,
        backend_ejections: register_int_counter_vec!(
            "backend_ejections_total",
            "Backends ejected by outlier detection, by upstream and backend",
            &["upstream", "backend"]
        )?,
        active_connections: register_int_gauge!(
            "active_connections",
            "Requests in flight in the gateway"
        )?,
        auth_requests: register_int_counter_vec!(
            "auth_requests_total",
            "Authentication outcomes, by result and reason",
            &["result", "reason"]
        )?,
        config_reloads: register_int_counter_vec!(
            "config_reloads_total",
            "Config reloads, by result",
            &["result"]
        )?,
        cache_requests: register_int_counter_vec!(
            "cache_requests_total",
            "Requests on cache-enabled routes, by route and cache result",
            &["route", "result"]
        )?,
        cache_store_errors: register_int_counter_vec!(
            "cache_store_errors_total",
            "Cache operations Redis failed (lookups served as misses, writes dropped), by operation",
            &["op"]
        )?,
        redis_backoffs: prometheus::register_int_counter!(
            "redis_backoffs_total",
            "Times a Redis timeout or connection failure made every Redis-backed feature skip Redis for a while"
        )?,
    };
    prometheus::register(Box::new(health::BackendHealth))?;
    prometheus::register(Box::new(cache_memory::CacheMemory))?;
    Ok(m)
}

/// Counts a cache operation Redis failed.
pub fn cache_store_error(op: &'static str) {
    if let Some(m) = get() {
        m.cache_store_errors.with_label_values(&[op]).inc();
    }
}

/// Sets where `cache_memory_bytes` reads `(weight, limit)` of the in-process cache tier from.
pub fn set_cache_memory_source(source: cache_memory::Source) {
    cache_memory::set_source(source);
}

/// Counts the start of a Redis back-off.
pub fn redis_backoff() {
    if let Some(m) = get() {
        m.redis_backoffs.inc();
    }
}

/// Sets `circuit_state` of an upstream.
pub fn circuit_state(upstream: &str, state: i64) {
    if let Some(m) = get() {
        m.circuit_state.with_label_values(&[upstream]).set(state);
    }
}

/// Counts a config reload.
pub fn reload(ok: bool) {
    if let Some(m) = get() {
        m.config_reloads
            .with_label_values(&[if ok { "success" } else { "failure" }])
            .inc();
    }
}

/// The method label: standard methods by name, anything else as `OTHER` (bounded).
pub fn method_label(m: &http::Method) -> &'static str {
    match *m {
        http::Method::GET => "GET",
        http::Method::HEAD => "HEAD",
        http::Method::POST => "POST",
        http::Method::PUT => "PUT",
        http::Method::DELETE => "DELETE",
        http::Method::PATCH => "PATCH",
        http::Method::OPTIONS => "OPTIONS",
        http::Method::CONNECT => "CONNECT",
        http::Method::TRACE => "TRACE",
        _ => "OTHER",
    }
}

/// A status code as a label without allocating.
/// A status code as a label, from a bounded set: the registered codes (those with a reason
/// phrase) as themselves, any other code as its class (`2xx` .. `5xx`), and `other` outside
/// 100-599 (`0` stays: a try without a status). A backend's made-up codes cannot multiply
/// the series.
pub fn status_label(code: u16) -> &'static str {
    static LABELS: LazyLock<Vec<String>> = LazyLock::new(|| {
        (0..600u16)
            .map(|c| {
                let registered = http::StatusCode::from_u16(c)
                    .ok()
                    .and_then(|s| s.canonical_reason())
                    .is_some();
                match c {
                    0 => "0".to_owned(),
                    100..=599 if registered => c.to_string(),
                    100..=599 => format!("{}xx", c / 100),
                    _ => "other".to_owned(),
                }
            })
            .collect()
    });
    LABELS
        .get(usize::from(code))
        .map_or("other", String::as_str)
}

mod health {
    //! `backend_health_status`, read from the live snapshot at scrape time.

    use prometheus::core::{Collector, Desc};
    use prometheus::proto::MetricFamily;
    use prometheus::{IntGaugeVec, Opts};
    use std::sync::{Arc, OnceLock};

    type Source = Arc<dyn Fn() -> Vec<(String, String, bool)> + Send + Sync>;

    static SOURCE: OnceLock<Source> = OnceLock::new();

    /// Sets where the collector reads `(upstream, backend, healthy)` from.
    pub fn set_source(source: Source) {
        let _ = SOURCE.set(source);
    }

    pub struct BackendHealth;

    fn vec() -> IntGaugeVec {
        IntGaugeVec::new(
            Opts::new(
                "backend_health_status",
                "1 when the backend takes traffic, 0 when not",
            ),
            &["upstream", "backend"],
        )
        .expect("static metric definition is valid")
    }

    static DESC: std::sync::LazyLock<Vec<Desc>> =
        std::sync::LazyLock::new(|| vec().desc().into_iter().cloned().collect());

    impl Collector for BackendHealth {
        fn desc(&self) -> Vec<&Desc> {
            DESC.iter().collect()
        }

        fn collect(&self) -> Vec<MetricFamily> {
            let gauges = vec();
            if let Some(source) = SOURCE.get() {
                for (upstream, backend, healthy) in source() {
                    gauges
                        .with_label_values(&[upstream.as_str(), backend.as_str()])
                        .set(i64::from(healthy));
                }
            }
            gauges.collect()
        }
    }
}

pub use health::set_source as set_health_source;

mod cache_memory {
    //! `cache_memory_bytes{kind="used|limit"}`, read from the live snapshot at scrape time.

    use prometheus::core::{Collector, Desc};
    use prometheus::proto::MetricFamily;
    use prometheus::{IntGaugeVec, Opts};
    use std::sync::{Arc, LazyLock, OnceLock};

    pub type Source = Arc<dyn Fn() -> Option<(usize, usize)> + Send + Sync>;

    static SOURCE: OnceLock<Source> = OnceLock::new();

    pub fn set_source(source: Source) {
        let _ = SOURCE.set(source);
    }

    pub struct CacheMemory;

    fn vec() -> IntGaugeVec {
        IntGaugeVec::new(
            Opts::new(
                "cache_memory_bytes",
                "Weight of the in-process cache tier (used) and its bound (limit)",
            ),
            &["kind"],
        )
        .expect("static metric definition is valid")
    }

    static DESC: LazyLock<Vec<Desc>> =
        LazyLock::new(|| vec().desc().into_iter().cloned().collect());

    impl Collector for CacheMemory {
        fn desc(&self) -> Vec<&Desc> {
            DESC.iter().collect()
        }

        fn collect(&self) -> Vec<MetricFamily> {
            let Some((used, limit)) = SOURCE.get().and_then(|s| s()) else {
                return Vec::new();
            };
            let v = vec();
            v.with_label_values(&["used"]).set(used as i64);
            v.with_label_values(&["limit"]).set(limit as i64);
            v.collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::status_label;

    #[test]
    fn status_labels_are_a_bounded_set() {
        assert_eq!(status_label(200), "200");
        assert_eq!(status_label(429), "429");
        assert_eq!(status_label(0), "0");
        assert_eq!(status_label(299), "2xx");
        assert_eq!(status_label(599), "5xx");
        assert_eq!(status_label(600), "other");
        assert_eq!(status_label(999), "other");
        assert_eq!(status_label(42), "other");
        let distinct: std::collections::HashSet<&str> = (0..=u16::MAX).map(status_label).collect();
        assert!(distinct.len() < 80, "{} labels", distinct.len());
    }
}
