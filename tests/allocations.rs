//! Heap allocations of the per-request pieces, counted by a global allocator: a backend pick,
//! a route lookup, a limiter decision (also a token spent from a Redis lease) and metrics
//! recording allocate nothing; the auth check and the header rewrite stay within their
//! budgets. Allocations are counted per thread, so the harness's own threads do not count.

#[path = "../benches/common/alloc.rs"]
mod alloc;
#[path = "../benches/common/lease.rs"]
mod lease;

use api_gateway::internals::{rewrite_headers, BackendCounters, Leases, RouteMetrics};
use api_gateway::UpstreamConfig;
use api_gateway::{compile, parse_str, Algorithm, Auth, LocalStore, Lookup, Upstream};
use jsonwebtoken::{encode, EncodingKey, Header};
use pingora::http::RequestHeader;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn picks() {
    for strategy in [
        "round_robin",
        "weighted_round",
        "least_conn",
        "ip_hash",
        "random",
    ] {
        for n in [3usize, 100] {
            let backends: Vec<String> = (0..n)
                .map(|i| {
                    format!(
                        "{{addr: \"127.0.0.1:{}\", weight: {}}}",
                        10_000 + i,
                        1 + i % 3
                    )
                })
                .collect();
            let yaml = format!("strategy: {strategy}\nbackends: [{}]", backends.join(", "));
            let cfg: UpstreamConfig = serde_yaml::from_str(&yaml).expect("valid upstream");
            let up = Upstream::build("u", &cfg, None).expect("builds");
            let excluded = [up.select(b"", &[]).expect("pick").stats];
            let mut i = 0u32;
            let per_pick = alloc::per_call(|| {
                i += 1;
                let picked = up.select(&i.to_be_bytes(), &excluded).expect("pick");
                assert_ne!(picked.addr, excluded[0].addr());
            });
            assert_eq!(per_pick, 0.0, "{strategy} with {n} backends");
        }
    }
}

const CONFIG: &str = "auth:\n  jwt: {algorithm: HS256, secret: test-secret-0123456789abcdef, issuer: gw, audience: api}\nupstreams: {u: {backends: [{addr: 127.0.0.1:9}]}}\nroutes:\n  - {name: items, path: /api/items, upstream: u, auth: {required: true}}\n  - {name: other, path: /api/other, upstream: u}\n";

fn lookups_limits_and_metrics() {
    let snapshot = compile(parse_str(CONFIG, |_| None), None).expect("config");
    let lookup = alloc::per_call(|| {
        let found = snapshot
            .table
            .lookup(black_box("/api/items/42"), &http::Method::GET);
        assert!(matches!(found, Lookup::Found(_)));
    });
    assert_eq!(lookup, 0.0, "route lookup");

    let store = LocalStore::new(1000);
    let bucket = Algorithm::TokenBucket {
        rate: 1e9,
        burst: 1e9,
    };
    let now = Instant::now();
    let decision = alloc::per_call(|| {
        assert!(
            store
                .check(bucket, black_box(b"203.0.113.7|alice|/api/items"), now)
                .allowed
        );
    });
    assert_eq!(decision, 0.0, "limiter decision on a known key");

    let leases = Leases::new(1000);
    let key = [7u8; 16];
    let leased = alloc::per_call(|| {
        // Nobody else asks, so every request passes: from the lease, or by storing a new one.
        assert!(lease::spend_leased(&leases, black_box(&key), now));
    });
    assert_eq!(leased, 0.0, "a token spent from a Redis lease");

    let route = RouteMetrics::new("allocations");
    let backend = BackendCounters::default();
    let recording = alloc::per_call(|| {
        route.request(&http::Method::GET, 200, Duration::from_micros(300));
        route.rate_limit(false);
        backend.count("u", "127.0.0.1:9", "200");
    });
    assert_eq!(
        recording, 0.0,
        "metrics recording once the handles are bound"
    );
}

fn auth_and_headers() {
    let snapshot = Arc::new(compile(parse_str(CONFIG, |_| None), None).expect("config"));
    let auth: &Auth = snapshot.auth.as_deref().expect("auth");
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs()
        + 3600;
    let claims = serde_json::json!({"sub": "alice", "roles": ["user"], "iss": "gw", "aud": "api", "exp": exp});
    let key = EncodingKey::from_secret(b"test-secret-0123456789abcdef");
    let token = encode(&Header::default(), &claims, &key).expect("token");
    let mut req = RequestHeader::build("GET", b"/api/items", None).expect("request");
    req.insert_header("authorization", format!("Bearer {token}"))
        .expect("header");
    let warm = alloc::per_call(|| assert!(auth.authenticate(black_box(&req)).is_ok()));
    println!("auth check, warm: {warm} allocations");
    assert!(warm <= AUTH_WARM, "auth check, warm: {warm} allocations");

    let peer = "203.0.113.7".parse().expect("ip");
    let mut base = RequestHeader::build("GET", b"/api/items", None).expect("request");
    base.insert_header("host", "api.example.com")
        .expect("header");
    base.insert_header("x-request-id", "client-id-1")
        .expect("header");
    let clone = alloc::per_call(|| {
        black_box(base.clone());
    });
    let rewrite = alloc::per_call(|| {
        let mut r = base.clone();
        rewrite_headers(&snapshot, &mut r, peer).expect("rewrite");
        black_box(r);
    }) - clone;
    println!("header rewrite: {rewrite} allocations");
    assert!(
        rewrite <= HEADER_REWRITE,
        "header rewrite: {rewrite} allocations"
    );
}

/// Budgets as measured when they were set; a change that allocates more shows here first.
/// The rewrite's allocations are the header values it makes (`X-Forwarded-For`, the request id)
/// and the list of client headers to remove. Through pingora's header API
/// (`server.header_case: preserve`) each name set is parsed into a new `HeaderName` and copied
/// into the spelling map as well.
const AUTH_WARM: f64 = 0.0;
const HEADER_REWRITE: f64 = 3.0;

#[test]
fn per_request_pieces_stay_within_their_allocation_budgets() {
    picks();
    lookups_limits_and_metrics();
    auth_and_headers();
}
