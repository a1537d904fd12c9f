//! Metric handles bound to their labels once, so recording a request is a few atomic adds
//! instead of hashing the label values and taking the vector's lock for every series touched.
//!
//! Handles are bound on first use, not when a route is compiled: a series appears in `/metrics`
//! only once something was counted in it, as with `with_label_values`. Statuses outside the
//! common set fall back to the lookup.

use super::{get, method_label, status_label, Metrics};
use prometheus::{Histogram, IntCounter};
use std::sync::OnceLock;
use std::time::Duration;

/// The methods of [`method_label`], in slot order.
const METHODS: usize = 10;

/// Status labels with a slot of their own: the answers a gateway gives most, and the words
/// `backend_requests_total` uses for tries without a status.
const STATUSES: usize = 24;

fn status_slot(label: &str) -> Option<usize> {
    Some(match label {
        "200" => 0,
        "201" => 1,
        "204" => 2,
        "206" => 3,
        "301" => 4,
        "302" => 5,
        "304" => 6,
        "400" => 7,
        "401" => 8,
        "403" => 9,
        "404" => 10,
        "405" => 11,
        "413" => 12,
        "429" => 13,
        "500" => 14,
        "502" => 15,
        "503" => 16,
        "504" => 17,
        "0" => 18,
        "error" => 19,
        "connect_error" => 20,
        "timeout" => 21,
        "408" => 22,
        "431" => 23,
        _ => return None,
    })
}

fn method_slot(method: &http::Method) -> usize {
    match method_label(method) {
        "GET" => 0,
        "HEAD" => 1,
        "POST" => 2,
        "PUT" => 3,
        "DELETE" => 4,
        "PATCH" => 5,
        "OPTIONS" => 6,
        "CONNECT" => 7,
        "TRACE" => 8,
        _ => 9,
    }
}

/// The bound `http_requests_total`, `http_request_duration_seconds` and
/// `rate_limit_requests_total` series of one route name.
pub struct RouteMetrics {
    route: Box<str>,
    /// Allocated at the route's first request or limit decision, so that a large route table
    /// costs one pointer per route for routes that see no traffic.
    series: OnceLock<Box<RouteSeries>>,
}

struct RouteSeries {
    /// Method × status slots.
    requests: [OnceLock<IntCounter>; METHODS * STATUSES],
    duration: [OnceLock<Histogram>; METHODS],
    limits: [OnceLock<IntCounter>; 2],
}

impl RouteMetrics {
    pub fn new(route: &str) -> RouteMetrics {
        RouteMetrics {
            route: route.into(),
            series: OnceLock::new(),
        }
    }

    fn series(&self) -> &RouteSeries {
        self.series.get_or_init(|| {
            Box::new(RouteSeries {
                requests: std::array::from_fn(|_| OnceLock::new()),
                duration: Default::default(),
                limits: Default::default(),
            })
        })
    }

    /// Counts an answered request and its duration.
    pub fn request(&self, method: &http::Method, status: u16, elapsed: Duration) {
        let Some(m) = get() else {
            return;
        };
        let route = &*self.route;
        let series = self.series();
        let method_label = method_label(method);
        let m_slot = method_slot(method);
        let status = status_label(status);
        match status_slot(status) {
            Some(s) => series.requests[m_slot * STATUSES + s]
                .get_or_init(|| {
                    m.http_requests
                        .with_label_values(&[route, method_label, status])
                })
                .inc(),
            None => m
                .http_requests
                .with_label_values(&[route, method_label, status])
                .inc(),
        }
        series.duration[m_slot]
            .get_or_init(|| m.http_duration.with_label_values(&[route, method_label]))
            .observe(elapsed.as_secs_f64());
    }

    /// Counts a rate-limit decision.
    pub fn rate_limit(&self, limited: bool) {
        let Some(m) = get() else {
            return;
        };
        let result = if limited { "limited" } else { "allowed" };
        self.series().limits[usize::from(limited)]
            .get_or_init(|| {
                m.rate_limit_requests
                    .with_label_values(&[&self.route, result])
            })
            .inc();
    }
}

/// The bound `backend_requests_total` series of one backend of one upstream.
#[derive(Default)]
pub struct BackendCounters {
    statuses: [OnceLock<IntCounter>; STATUSES],
}

impl std::fmt::Debug for BackendCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BackendCounters")
    }
}

impl std::fmt::Debug for RouteMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RouteMetrics")
            .field("route", &self.route)
            .finish()
    }
}

impl BackendCounters {
    /// Counts a try on the backend labelled `backend` of `upstream` (always the same two for
    /// one set of counters) that ended as `status`.
    pub fn count(&self, upstream: &str, backend: &str, status: &str) {
        let Some(m) = get() else {
            return;
        };
        let bind = |m: &Metrics| {
            m.backend_requests
                .with_label_values(&[upstream, backend, status])
        };
        match status_slot(status) {
            Some(s) => self.statuses[s].get_or_init(|| bind(m)).inc(),
            None => bind(m).inc(),
        }
    }
}

/// Counts an authentication outcome (`auth_requests_total`) through a per-thread list of bound
/// handles: the results and reasons are a small fixed set of words.
pub fn auth(result: &'static str, reason: &'static str) {
    use std::cell::RefCell;
    thread_local! {
        static BOUND: RefCell<Vec<(&'static str, &'static str, IntCounter)>> =
            const { RefCell::new(Vec::new()) };
    }
    let Some(m) = get() else {
        return;
    };
    BOUND.with_borrow_mut(|bound| {
        if let Some((_, _, c)) = bound
            .iter()
            .find(|(res, rea, _)| *res == result && *rea == reason)
        {
            c.inc();
            return;
        }
        let c = m.auth_requests.with_label_values(&[result, reason]);
        c.inc();
        bound.push((result, reason, c));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_slot_is_used_once_and_matches_its_label() {
        let mut seen = [false; STATUSES];
        for code in 0..600u16 {
            if let Some(s) = status_slot(status_label(code)) {
                assert!(!seen[s], "slot {s} twice");
                seen[s] = true;
            }
        }
        for word in ["error", "connect_error", "timeout"] {
            let s = status_slot(word).expect("slot");
            assert!(!seen[s], "slot {s} twice");
            seen[s] = true;
        }
        assert!(seen.iter().all(|s| *s), "unused slots: {seen:?}");
        let all = [
            http::Method::GET,
            http::Method::HEAD,
            http::Method::POST,
            http::Method::PUT,
            http::Method::DELETE,
            http::Method::PATCH,
            http::Method::OPTIONS,
            http::Method::CONNECT,
            http::Method::TRACE,
        ];
        let mut slots: Vec<usize> = all.iter().map(method_slot).collect();
        slots.push(method_slot(
            &http::Method::from_bytes(b"PURGE").expect("method"),
        ));
        slots.sort_unstable();
        assert_eq!(slots, (0..METHODS).collect::<Vec<_>>());
    }

    #[test]
    fn an_unused_route_costs_its_name_and_a_pointer() {
        // Ten thousand routes must not cost MiBs of series before any traffic.
        assert!(std::mem::size_of::<RouteMetrics>() <= 32);
        let r = RouteMetrics::new("unused");
        assert!(r.series.get().is_none());
        r.rate_limit(false);
        assert!(r.series.get().is_some());
    }

    #[test]
    fn bound_and_looked_up_series_are_the_same() {
        let Some(m) = get() else {
            panic!("metrics registered");
        };
        let r = RouteMetrics::new("bound-test");
        for _ in 0..3 {
            r.request(&http::Method::GET, 200, Duration::from_millis(1));
        }
        r.request(&http::Method::GET, 418, Duration::from_millis(1));
        r.rate_limit(true);
        let requests = |status: &str| {
            m.http_requests
                .with_label_values(&["bound-test", "GET", status])
                .get()
        };
        assert_eq!((requests("200"), requests("418")), (3, 1));
        let h = m.http_duration.with_label_values(&["bound-test", "GET"]);
        assert_eq!(h.get_sample_count(), 4);
        let limited = m
            .rate_limit_requests
            .with_label_values(&["bound-test", "limited"]);
        assert_eq!(limited.get(), 1);

        let b = BackendCounters::default();
        b.count("bound-up", "127.0.0.1:1", "connect_error");
        b.count("bound-up", "127.0.0.1:1", "connect_error");
        b.count("bound-up", "127.0.0.1:1", "599");
        let backend = |s: &str| {
            m.backend_requests
                .with_label_values(&["bound-up", "127.0.0.1:1", s])
                .get()
        };
        assert_eq!((backend("connect_error"), backend("599")), (2, 1));

        auth("success", "bound-test");
        auth("success", "bound-test");
        let a = m
            .auth_requests
            .with_label_values(&["success", "bound-test"]);
        assert_eq!(a.get(), 2);
    }
}
