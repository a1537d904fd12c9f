//! Token verification cost per algorithm (the signature alone on both backends, then the whole
//! token), and the whole per-request auth check (header parse, verify, revocation lookup,
//! caller) with the verified-token cache (warm) and without it (cold).

#[path = "common/alloc.rs"]
mod alloc;

use api_gateway::parse_str;
use api_gateway::Auth;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion};
use jsonwebtoken::crypto::rust_crypto;
use jsonwebtoken::{encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use pingora::http::RequestHeader;
use serde_json::json;
use std::hint::black_box;
use std::process::Command;

#[global_allocator]
static GLOBAL: alloc::Counting = alloc::Counting;

fn pem(args: &[&str], dir: &std::path::Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    let ok = Command::new("openssl")
        .args(args)
        .arg("-out")
        .arg(&path)
        .status()
        .expect("openssl for bench keys");
    assert!(ok.success());
    std::fs::read(path).expect("pem")
}

fn public(private: &[u8], dir: &std::path::Path, name: &str) -> Vec<u8> {
    let src = dir.join(format!("{name}.src"));
    std::fs::write(&src, private).expect("write");
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&src)
        .arg("-out")
        .arg(dir.join(name))
        .status()
        .expect("openssl");
    assert!(ok.success());
    std::fs::read(dir.join(name)).expect("pem")
}

fn claims() -> serde_json::Value {
    json!({"sub": "bench", "roles": ["user"], "iss": "gw", "aud": "api", "exp": 4_000_000_000u64, "iat": 1, "typ": "access", "jti": "j", "fam": "f"})
}

fn bench(c: &mut Criterion) {
    // Before any token is made: the first use fixes jsonwebtoken's backend for the process.
    api_gateway::install_jwt_crypto();
    let dir = tempfile::tempdir().expect("dir");
    let rsa = pem(
        &[
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ],
        dir.path(),
        "rsa.pem",
    );
    let ec = pem(
        &[
            "genpkey",
            "-algorithm",
            "EC",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ],
        dir.path(),
        "ec.pem",
    );
    let cases = [
        (
            "HS256",
            Algorithm::HS256,
            EncodingKey::from_secret(b"bench-secret-0123456789abcdef"),
            DecodingKey::from_secret(b"bench-secret-0123456789abcdef"),
        ),
        (
            "RS256",
            Algorithm::RS256,
            EncodingKey::from_rsa_pem(&rsa).expect("rsa"),
            DecodingKey::from_rsa_pem(&public(&rsa, dir.path(), "rsa.pub")).expect("rsa pub"),
        ),
        (
            "ES256",
            Algorithm::ES256,
            EncodingKey::from_ec_pem(&ec).expect("ec"),
            DecodingKey::from_ec_pem(&public(&ec, dir.path(), "ec.pub")).expect("ec pub"),
        ),
    ];
    // The signature check alone, on jsonwebtoken's pure-Rust backend (the baseline) and on the
    // OpenSSL one the gateway installs.
    let mut group = c.benchmark_group("jwt_signature");
    for (name, alg, enc, dec) in &cases {
        let token = encode(&Header::new(*alg), &claims(), enc).expect("encode");
        let (message, signature) = token.rsplit_once('.').expect("three parts");
        let sig = URL_SAFE_NO_PAD.decode(signature).expect("base64");
        let pure = (rust_crypto::DEFAULT_PROVIDER.verifier_factory)(alg, dec).expect("verifier");
        group.bench_function(format!("{name}/rust_crypto"), |b| {
            b.iter(|| pure.verify(black_box(message.as_bytes()), &sig).is_ok())
        });
    }
    for (name, alg, enc, dec) in &cases {
        let token = encode(&Header::new(*alg), &claims(), enc).expect("encode");
        let (message, signature) = token.rsplit_once('.').expect("three parts");
        group.bench_function(format!("{name}/gateway"), |b| {
            b.iter(|| {
                jsonwebtoken::crypto::verify(signature, black_box(message.as_bytes()), dec, *alg)
                    .unwrap_or(false)
            })
        });
    }
    group.finish();

    // The whole token check: signature, JSON claims, validation.
    let mut group = c.benchmark_group("jwt_verify");
    for (name, alg, enc, dec) in &cases {
        let token = encode(&Header::new(*alg), &claims(), enc).expect("encode");
        let mut validation = Validation::new(*alg);
        validation.set_audience(&["api"]);
        group.bench_function(*name, |b| {
            b.iter(|| {
                jsonwebtoken::decode::<serde_json::Value>(black_box(&token), dec, &validation)
                    .is_ok()
            })
        });
    }
    group.finish();

    let yaml = "auth:\n  jwt: {algorithm: HS256, secret: bench-secret-0123456789abcdef, issuer: gw, audience: api}\nupstreams: {u: {backends: [{addr: 127.0.0.1:9}]}}\nroutes: [{name: r, path: /, upstream: u, auth: {required: true}}]\n";
    let snapshot = api_gateway::compile(parse_str(yaml, |_| None), None).expect("config");
    let auth: &Auth = snapshot.auth.as_deref().expect("auth");
    let token = encode(&Header::new(Algorithm::HS256), &claims(), &cases[0].2).expect("encode");
    let mut req = RequestHeader::build("GET", b"/orders", None).expect("request");
    req.insert_header("authorization", format!("Bearer {token}"))
        .expect("header");
    c.bench_function("auth_check_per_request/HS256 warm", |b| {
        b.iter(|| auth.authenticate(black_box(&req)).is_ok())
    });
    alloc::report("auth_check_per_request/HS256 warm", || {
        black_box(auth.authenticate(black_box(&req)).is_ok());
    });
    // Cold: no verified-token cache, so every call checks the signature and parses the claims.
    let cold = yaml.replace("audience: api}", "audience: api, verified_cache: 0}");
    let snapshot = api_gateway::compile(parse_str(&cold, |_| None), None).expect("config");
    let auth: &Auth = snapshot.auth.as_deref().expect("auth");
    c.bench_function("auth_check_per_request/HS256 cold", |b| {
        b.iter(|| auth.authenticate(black_box(&req)).is_ok())
    });
    alloc::report("auth_check_per_request/HS256 cold", || {
        black_box(auth.authenticate(black_box(&req)).is_ok());
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
