//! Route lookup with 10, 1 000 and 10 000 routes: the segment trie against a linear longest-prefix scan.

#[path = "common/alloc.rs"]
mod alloc;

use api_gateway::parse_str;
use api_gateway::{compile, Lookup, Route, Snapshot};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use http::Method;
use std::hint::black_box;
use std::sync::Arc;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn snapshot(routes: usize) -> Snapshot {
    let mut yaml = String::from("upstreams:\n  u: {backends: [{addr: 127.0.0.1:9}]}\nroutes:\n");
    for i in 0..routes {
        yaml.push_str(&format!(
            "  - {{name: r{i}, path: /svc{}/v{}/res{i}, upstream: u}}\n",
            i % 50,
            i % 3
        ));
    }
    compile(parse_str(&yaml, |_| None), None).expect("bench config compiles")
}

/// What a gateway without an index does: test every route, keep the longest match.
fn linear<'a>(routes: &'a [Arc<Route>], path: &str) -> Option<&'a Arc<Route>> {
    routes
        .iter()
        .filter(|r| {
            path.starts_with(r.prefix.as_str())
                && matches!(path.as_bytes().get(r.prefix.len()), None | Some(b'/'))
        })
        .max_by_key(|r| r.prefix.len())
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("route_lookup");
    for n in [10usize, 1000, 10_000] {
        let snap = snapshot(n);
        let path = format!(
            "/svc{}/v{}/res{}/items/42",
            (n - 1) % 50,
            (n - 1) % 3,
            n - 1
        );
        assert!(matches!(
            snap.table.lookup(&path, &Method::GET),
            Lookup::Found(_)
        ));
        assert!(linear(&snap.routes, &path).is_some());
        group.bench_with_input(BenchmarkId::new("trie", n), &path, |b, p| {
            b.iter(|| {
                matches!(
                    snap.table.lookup(black_box(p), &Method::GET),
                    Lookup::Found(_)
                )
            })
        });
        group.bench_with_input(BenchmarkId::new("linear_scan", n), &path, |b, p| {
            b.iter(|| linear(&snap.routes, black_box(p)).is_some())
        });
        alloc::report(&format!("route_lookup/trie/{n}"), || {
            black_box(matches!(
                snap.table.lookup(black_box(&path), &Method::GET),
                Lookup::Found(_)
            ));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
