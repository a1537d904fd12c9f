//! The per-request pieces the proxy runs around the features: recording the request's metrics
//! (handles bound once per route and backend, beside looking every series up by its labels as
//! before) and rewriting the headers sent to the backend. Each prints its allocations per call.

#[path = "common/alloc.rs"]
mod alloc;

use api_gateway::internals::{rewrite_headers, BackendCounters, RouteMetrics};
use api_gateway::{compile, parse_str};
use criterion::{criterion_group, criterion_main, Criterion};
use pingora::http::RequestHeader;
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, Opts};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn metrics(c: &mut Criterion) {
    let route = RouteMetrics::new("bench");
    let backend = BackendCounters::default();
    let bound = || {
        route.request(
            black_box(&http::Method::GET),
            200,
            Duration::from_micros(250),
        );
        backend.count("u", "127.0.0.1:9001", black_box("200"));
    };
    // The same three series looked up by their labels on every request.
    let requests =
        IntCounterVec::new(Opts::new("r", "r"), &["route", "method", "status"]).expect("metric");
    let duration =
        HistogramVec::new(HistogramOpts::new("d", "d"), &["route", "method"]).expect("metric");
    let backends = IntCounterVec::new(Opts::new("b", "b"), &["upstream", "backend", "status"])
        .expect("metric");
    let looked_up = || {
        requests
            .with_label_values(&[black_box("bench"), "GET", "200"])
            .inc();
        duration
            .with_label_values(&[black_box("bench"), "GET"])
            .observe(0.00025);
        backends
            .with_label_values(&[black_box("u"), "127.0.0.1:9001", "200"])
            .inc();
    };
    c.bench_function("metrics_recording/bound", |b| b.iter(bound));
    c.bench_function("metrics_recording/label_lookup", |b| b.iter(looked_up));
    alloc::report("metrics_recording/bound", bound);
    alloc::report("metrics_recording/label_lookup", looked_up);
}

fn headers(c: &mut Criterion) {
    let yaml = "upstreams: {u: {backends: [{addr: 127.0.0.1:9}]}}\nroutes: [{name: r, path: /, upstream: u}]\n";
    let snapshot = Arc::new(compile(parse_str(yaml, |_| None), None).expect("config"));
    let peer: IpAddr = "203.0.113.7".parse().expect("ip");
    let mut base = RequestHeader::build("GET", b"/api/items", None).expect("request");
    base.insert_header("host", "api.example.com")
        .expect("header");
    base.insert_header("user-agent", "wrk").expect("header");
    base.insert_header("accept", "*/*").expect("header");
    let mut with_id = base.clone();
    with_id
        .insert_header("x-request-id", "7f9c2ba4e88f827d616045507605853e")
        .expect("header");
    for (name, req) in [("generated id", &base), ("client id kept", &with_id)] {
        let rewrite = || {
            let mut r = req.clone();
            rewrite_headers(&snapshot, &mut r, peer).expect("rewrite");
            black_box(r);
        };
        let clone_only = || {
            black_box(req.clone());
        };
        c.bench_function(&format!("header_rewrite/{name}"), |b| b.iter(rewrite));
        alloc::report(
            &format!("header_rewrite/{name} (with the request's clone)"),
            rewrite,
        );
        alloc::report(
            &format!("header_rewrite/{name}: the clone alone"),
            clone_only,
        );
    }
}

criterion_group!(benches, metrics, headers);
criterion_main!(benches);
