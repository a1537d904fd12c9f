//! `GET /api/stats/history`: per-second aggregates of the last 15 minutes, kept in a fixed-size
//! ring. A background service reads the contract's metrics once a second and stores the
//! difference from the second before, so the request path does no extra work for it.

use crate::metrics::Metrics;
use async_trait::async_trait;
use pingora::server::ShutdownWatch;
use pingora::services::background::BackgroundService;
use prometheus::core::Collector;
use prometheus::proto::MetricFamily;
use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds kept: 15 minutes.
pub const CAPACITY: usize = 900;

/// One second of traffic.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Second {
    /// The end of the second, in Unix seconds.
    pub t: u64,
    pub requests: u64,
    pub errors_4xx: u64,
    pub errors_5xx: u64,
    pub rate_limited: u64,
    /// Milliseconds, interpolated within the latency histogram's buckets; `None` without requests.
    pub p50_ms: Option<f64>,
    pub p95_ms: Option<f64>,
    pub p99_ms: Option<f64>,
    /// Hits (fresh or stale) over cache lookups; `None` without lookups.
    pub cache_hit_ratio: Option<f64>,
    pub upstreams: BTreeMap<String, UpstreamSecond>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct UpstreamSecond {
    pub requests: u64,
    /// Refused connections, errors and 5xx answers.
    pub errors: u64,
}

/// The ring of seconds, oldest first.
#[derive(Default)]
pub struct History {
    seconds: Mutex<VecDeque<Second>>,
}

impl History {
    pub fn push(&self, second: Second) {
        let mut ring = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        if ring.len() == CAPACITY {
            ring.pop_front();
        }
        ring.push_back(second);
    }

    /// The seconds after `since` (Unix seconds), oldest first.
    pub fn since(&self, since: u64) -> Vec<Second> {
        let ring = self.seconds.lock().unwrap_or_else(|p| p.into_inner());
        ring.iter().filter(|s| s.t > since).cloned().collect()
    }
}

/// Running totals read from the metrics.
#[derive(Debug, Clone, Default, PartialEq)]
struct Totals {
    requests: u64,
    errors_4xx: u64,
    errors_5xx: u64,
    rate_limited: u64,
    cache_hits: u64,
    cache_lookups: u64,
    /// `(upper bound in seconds, cumulative count)`, summed over routes and methods.
    buckets: Vec<(f64, u64)>,
    upstreams: BTreeMap<String, UpstreamSecond>,
}

impl Totals {
    fn read(m: &Metrics) -> Totals {
        let mut t = Totals::default();
        for (labels, value) in counters(&m.http_requests.collect()) {
            let status = label(&labels, "status");
            t.requests += value;
            if status.starts_with('4') {
                t.errors_4xx += value;
            } else if status.starts_with('5') {
                t.errors_5xx += value;
            }
        }
        for (labels, value) in counters(&m.rate_limit_requests.collect()) {
            if label(&labels, "result") == "limited" {
                t.rate_limited += value;
            }
        }
        for (labels, value) in counters(&m.cache_requests.collect()) {
            match label(&labels, "result") {
                "hit" | "stale" => {
                    t.cache_hits += value;
                    t.cache_lookups += value;
                }
                "miss" | "expired" => t.cache_lookups += value,
                _ => {}
            }
        }
        for (labels, value) in counters(&m.backend_requests.collect()) {
            let up = t
                .upstreams
                .entry(label(&labels, "upstream").to_owned())
                .or_default();
            up.requests += value;
            let status = label(&labels, "status");
            if !(status.starts_with('1')
                || status.starts_with('2')
                || status.starts_with('3')
                || status.starts_with('4'))
            {
                up.errors += value;
            }
        }
        for family in m.http_duration.collect() {
            for metric in family.get_metric() {
                let h = metric.get_histogram();
                for (i, b) in h.get_bucket().iter().enumerate() {
                    if t.buckets.len() <= i {
                        t.buckets.push((b.upper_bound(), 0));
                    }
                    t.buckets[i].1 += b.cumulative_count();
                }
            }
        }
        t
    }

    /// The second that took the totals from `self` to `now`.
    fn second(&self, now: &Totals, t: u64) -> Second {
        let d = |a: u64, b: u64| b.saturating_sub(a);
        let buckets: Vec<(f64, u64)> = now
            .buckets
            .iter()
            .enumerate()
            .map(|(i, &(le, n))| (le, d(self.buckets.get(i).map_or(0, |b| b.1), n)))
            .collect();
        let requests = d(self.requests, now.requests);
        let quantile = |q: f64| quantile(&buckets, requests, q).map(|s| round(s * 1000.0));
        let lookups = d(self.cache_lookups, now.cache_lookups);
        Second {
            t,
            requests,
            errors_4xx: d(self.errors_4xx, now.errors_4xx),
            errors_5xx: d(self.errors_5xx, now.errors_5xx),
            rate_limited: d(self.rate_limited, now.rate_limited),
            p50_ms: quantile(0.5),
            p95_ms: quantile(0.95),
            p99_ms: quantile(0.99),
            cache_hit_ratio: (lookups > 0)
                .then(|| round(d(self.cache_hits, now.cache_hits) as f64 / lookups as f64)),
            upstreams: now
                .upstreams
                .iter()
                .map(|(name, up)| {
                    let before = self.upstreams.get(name).cloned().unwrap_or_default();
                    let second = UpstreamSecond {
                        requests: d(before.requests, up.requests),
                        errors: d(before.errors, up.errors),
                    };
                    (name.clone(), second)
                })
                .collect(),
        }
    }
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The `q` quantile of `total` observations in cumulative `buckets`, interpolated linearly
/// within the bucket it falls in (as PromQL's `histogram_quantile`). Past the last finite bound,
/// that bound.
pub fn quantile(buckets: &[(f64, u64)], total: u64, q: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut lower = (0.0, 0u64);
    for &(le, cumulative) in buckets {
        if cumulative as f64 >= rank {
            let in_bucket = (cumulative - lower.1) as f64;
            let within = if in_bucket > 0.0 {
                (rank - lower.1 as f64) / in_bucket
            } else {
                1.0
            };
            return Some(lower.0 + (le - lower.0) * within);
        }
        lower = (le, cumulative);
    }
    Some(lower.0)
}

fn counters(families: &[MetricFamily]) -> Vec<(Vec<(String, String)>, u64)> {
    let mut out = Vec::new();
    for family in families {
        for metric in family.get_metric() {
            let labels = metric
                .get_label()
                .iter()
                .map(|l| (l.name().to_owned(), l.value().to_owned()))
                .collect();
            out.push((labels, metric.get_counter().value() as u64));
        }
    }
    out
}

fn label<'a>(labels: &'a [(String, String)], name: &str) -> &'a str {
    labels
        .iter()
        .find(|(n, _)| n == name)
        .map_or("", |(_, v)| v.as_str())
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Samples the metrics into the ring once a second.
pub struct Sampler {
    history: Arc<History>,
}

impl Sampler {
    pub fn new(history: Arc<History>) -> Sampler {
        Sampler { history }
    }
}

#[async_trait]
impl BackgroundService for Sampler {
    async fn start(&self, mut shutdown: ShutdownWatch) {
        let Some(metrics) = crate::metrics::get() else {
            return;
        };
        let mut before = Totals::read(metrics);
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = shutdown.changed() => break,
            }
            let now = Totals::read(metrics);
            self.history.push(before.second(&now, unix_now()));
            before = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn second(t: u64) -> Second {
        Totals::default().second(&Totals::default(), t)
    }

    #[test]
    fn the_ring_keeps_the_last_fifteen_minutes() {
        let history = History::default();
        for t in 1..=(CAPACITY as u64 + 100) {
            history.push(second(t));
        }
        let all = history.since(0);
        assert_eq!(all.len(), CAPACITY);
        assert_eq!(all.first().map(|s| s.t), Some(101));
        assert_eq!(history.since(CAPACITY as u64 + 98).len(), 2);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        // 100 observations: 50 up to 10 ms, 40 more up to 100 ms, 10 more up to 1 s.
        let buckets = [(0.01, 50), (0.1, 90), (1.0, 100), (f64::INFINITY, 100)];
        assert_eq!(quantile(&buckets, 100, 0.5), Some(0.01));
        let p95 = quantile(&buckets, 100, 0.95).expect("some");
        assert!((p95 - 0.55).abs() < 1e-9, "{p95}");
        assert_eq!(quantile(&buckets, 0, 0.5), None);
        let p25 = quantile(&buckets, 100, 0.25).expect("some");
        assert!((p25 - 0.005).abs() < 1e-9, "{p25}");
    }

    #[test]
    fn a_second_is_the_difference_of_two_readings() {
        let mut before = Totals {
            requests: 10,
            errors_5xx: 1,
            cache_hits: 3,
            cache_lookups: 4,
            buckets: vec![(0.1, 10), (f64::INFINITY, 10)],
            ..Totals::default()
        };
        before.upstreams.insert(
            "u".into(),
            UpstreamSecond {
                requests: 9,
                errors: 1,
            },
        );
        let mut now = before.clone();
        now.requests = 14;
        now.errors_4xx = 2;
        now.cache_hits = 6;
        now.cache_lookups = 8;
        now.buckets = vec![(0.1, 14), (f64::INFINITY, 14)];
        now.upstreams.insert(
            "u".into(),
            UpstreamSecond {
                requests: 12,
                errors: 2,
            },
        );
        let s = before.second(&now, 7);
        assert_eq!((s.t, s.requests, s.errors_4xx, s.errors_5xx), (7, 4, 2, 0));
        assert_eq!(s.cache_hit_ratio, Some(0.75));
        assert_eq!(s.p50_ms, Some(50.0));
        assert_eq!(
            s.upstreams["u"],
            UpstreamSecond {
                requests: 3,
                errors: 1
            }
        );
    }
}
