//! Any request path: normalized (or refused), then looked up in a table of overlapping routes.
//! Never a panic; a normalized path is canonical (normalizing again changes nothing) and holds
//! no dot segment, no `//` and no encoded separator.
#![no_main]

use api_gateway::fuzzing::normalize;
use api_gateway::{compile, parse_str, Snapshot};
use libfuzzer_sys::fuzz_target;
use std::sync::LazyLock;

static SNAPSHOT: LazyLock<Snapshot> = LazyLock::new(|| {
    let yaml = "upstreams: {u: {backends: [{addr: \"127.0.0.1:9\"}]}}\nroutes:\n  - {name: root, path: /, upstream: u}\n  - {name: api, path: /api, upstream: u}\n  - {name: admin, path: /api/admin, upstream: u, case_insensitive: true}\n  - {name: get, path: /api/admin, upstream: u, methods: [GET]}\n  - {name: deep, path: /api/v1/items, upstream: u, methods: [POST, DELETE]}\n";
    compile(parse_str(yaml, |_| None), None).expect("the fuzz table compiles")
});

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = if text.starts_with('/') {
        text.to_owned()
    } else {
        format!("/{text}")
    };
    let Ok(normal) = normalize(&path) else {
        return;
    };
    assert_eq!(
        normalize(&normal).as_deref(),
        Ok(normal.as_ref()),
        "not idempotent"
    );
    assert!(!normal.contains("//"), "{normal}");
    assert!(!normal.contains('\\'), "{normal}");
    let lower = normal.to_ascii_lowercase();
    for encoded in ["%2f", "%5c", "%00", "%2e"] {
        assert!(!lower.contains(encoded), "{encoded} in {normal}");
    }
    assert!(
        normal[1..].split('/').all(|s| s != "." && s != ".."),
        "{normal}"
    );
    for method in [http::Method::GET, http::Method::POST, http::Method::PUT] {
        let _ = SNAPSHOT.table.lookup(&normal, &method);
    }
});
