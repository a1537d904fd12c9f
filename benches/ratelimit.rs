//! Local limiter decisions: one hot key, and keys spread over 1M distinct clients (the store's
//! size and the process' resident memory after the flood are printed); and a token of a shared
//! (Redis) bucket spent from this instance's lease, the path 19 requests in 20 take.

#[path = "common/alloc.rs"]
mod alloc;
#[path = "common/lease.rs"]
mod lease;

use api_gateway::internals::{Leases, LEASE_TTL};
use api_gateway::{Algorithm, LocalStore, MAX_KEYS};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::Instant;

const BUCKET: Algorithm = Algorithm::TokenBucket {
    rate: 1e9,
    burst: 1e9,
};

/// A naive baseline: one map behind one lock, no bound.
struct GlobalLock(Mutex<std::collections::HashMap<Vec<u8>, (f64, Instant)>>);

impl GlobalLock {
    fn check(&self, key: &[u8], now: Instant) -> bool {
        let mut map = self.0.lock().expect("lock");
        let e = map.entry(key.to_vec()).or_insert((1e9, now));
        e.0 -= 1.0;
        e.0 >= 0.0
    }
}

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(str::to_owned)
        })
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let store = LocalStore::new(MAX_KEYS);
    let naive = GlobalLock(Mutex::new(Default::default()));
    let now = Instant::now();
    c.bench_function("limiter/hot_key/sharded", |b| {
        b.iter(|| store.check(BUCKET, black_box(b"203.0.113.7"), now).allowed)
    });
    c.bench_function("limiter/hot_key/global_lock_baseline", |b| {
        b.iter(|| naive.check(black_box(b"203.0.113.7"), now))
    });
    alloc::report("limiter/hot_key/sharded", || {
        black_box(store.check(BUCKET, black_box(b"203.0.113.7"), now).allowed);
    });

    let flood = LocalStore::new(MAX_KEYS);
    let before = rss_kib();
    for i in 0u32..1_000_000 {
        flood.check(BUCKET, &i.to_le_bytes(), now);
    }
    println!(
        "1M distinct keys: {} kept (bound {MAX_KEYS}), resident memory +{} KiB",
        flood.len(),
        rss_kib().saturating_sub(before)
    );
    let mut i = 0u32;
    c.bench_function("limiter/1M_keys/sharded", |b| {
        b.iter(|| {
            i = (i + 7919) % 1_000_000;
            flood.check(BUCKET, &i.to_le_bytes(), now).allowed
        })
    });
}

fn bench_leases(c: &mut Criterion) {
    let leases = Leases::new(MAX_KEYS);
    let key = [7u8; 16];
    let start = Instant::now();
    let mut n = 0u32;
    // The clock moves on a lease's lifetime every 20 000 calls, so leases also expire.
    let mut now = || {
        n = n.wrapping_add(1);
        start + LEASE_TTL * (n / 20_000)
    };
    c.bench_function("limiter/redis_lease/hot_key", |b| {
        b.iter(|| lease::spend_leased(&leases, black_box(&key), now()))
    });
    alloc::report("limiter/redis_lease/hot_key", || {
        black_box(lease::spend_leased(&leases, black_box(&key), start));
    });
}

criterion_group!(benches, bench, bench_leases);
criterion_main!(benches);
