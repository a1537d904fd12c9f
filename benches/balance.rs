//! Backend pick cost per strategy, with 3 and 100 backends, beside pingora's own
//! `LoadBalancer<RoundRobin>::select` (which allocates a de-duplication set per pick).

#[path = "common/alloc.rs"]
mod alloc;

use api_gateway::Upstream;
use api_gateway::UpstreamConfig;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use pingora::lb::selection::RoundRobin;
use pingora::lb::LoadBalancer;
use std::hint::black_box;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn addrs(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| format!("127.0.0.1:{}", 10_000 + i))
        .collect()
}

fn upstream(strategy: &str, n: usize) -> Upstream {
    let list: Vec<String> = addrs(n)
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{addr: \"{a}\", weight: {}}}", 1 + i % 3))
        .collect();
    let yaml = format!("strategy: {strategy}\nbackends: [{}]", list.join(", "));
    let cfg: UpstreamConfig = serde_yaml::from_str(&yaml).expect("valid upstream");
    Upstream::build("u", &cfg, None).expect("builds")
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("select");
    for n in [3usize, 100] {
        for strategy in [
            "round_robin",
            "weighted_round",
            "least_conn",
            "ip_hash",
            "random",
        ] {
            let up = upstream(strategy, n);
            let key = [192u8, 0, 2, 7];
            group.bench_with_input(BenchmarkId::new(strategy, n), &n, |b, _| {
                b.iter(|| up.select(black_box(&key), &[]).map(|p| p.addr))
            });
            alloc::report(&format!("select/{strategy}/{n}"), || {
                black_box(up.select(black_box(&key), &[]).map(|p| p.addr));
            });
        }
        let lb = LoadBalancer::<RoundRobin>::try_from_iter(addrs(n)).expect("pingora lb");
        group.bench_with_input(BenchmarkId::new("pingora_round_robin", n), &n, |b, _| {
            b.iter(|| lb.select(black_box(b""), 256).map(|be| be.addr))
        });
        alloc::report(&format!("select/pingora_round_robin/{n}"), || {
            black_box(lb.select(black_box(b""), 256).map(|be| be.addr));
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
