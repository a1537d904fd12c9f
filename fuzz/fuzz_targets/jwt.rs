//! Any bearer token, and any claims signed with the right key: authentication answers accept
//! or refuse, never panics; a token signed with the key is accepted only if its claims are.
#![no_main]

use api_gateway::fuzzing::RequestHeader;
use api_gateway::{compile, parse_str, Snapshot};
use jsonwebtoken::{encode, EncodingKey, Header};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

const SECRET: &str = "fuzz-secret-0123456789abcdef0123456789";

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let yaml = format!("auth:\n  jwt: {{algorithm: HS256, secret: {SECRET}, issuer: gw, audience: api}}\n  api_keys: [{{name: k, key_hash: \"sha256:{}\", roles: [user]}}]\nupstreams: {{u: {{backends: [{{addr: \"127.0.0.1:9\"}}]}}}}\nroutes: [{{name: r, path: /, upstream: u, auth: {{required: true}}}}]\n", "0".repeat(64));
    compile(parse_str(&yaml, |_| None), None).expect("the fuzz config compiles")
});

fuzz_target!(|data: &[u8]| {
    let auth = SNAPSHOT.auth.as_deref().expect("auth");
    let mut req = RequestHeader::build("GET", b"/", None).expect("request");
    // As sent: whatever bytes make a header value.
    if let Ok(value) = http::HeaderValue::from_bytes(&[b"Bearer ", data].concat()) {
        req.insert_header("authorization", value).expect("header");
        let _ = auth.authenticate(&req);
    }
    // As claims: signed with the right key, accepted only with a subject, iss, aud and a
    // future exp.
    if let Ok(claims) = serde_json::from_slice::<serde_json::Value>(data) {
        let Ok(token) = encode(
            &Header::default(),
            &claims,
            &EncodingKey::from_secret(SECRET.as_bytes()),
        ) else {
            return;
        };
        let mut req = RequestHeader::build("GET", b"/", None).expect("request");
        req.insert_header("authorization", format!("Bearer {token}"))
            .expect("header");
        if auth.authenticate(&req).is_ok() {
            assert!(claims["sub"].is_string(), "{claims}");
            assert_eq!(claims["iss"], "gw", "{claims}");
            assert!(claims["exp"].is_u64() || claims["exp"].is_f64(), "{claims}");
        }
    }
});
