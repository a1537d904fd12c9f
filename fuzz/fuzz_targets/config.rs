//! Any config text: an error list or a snapshot, never a panic and never a hang. Inputs that
//! would reach outside the process (backend names to resolve, key files or a JWKS URL to read)
//! are skipped, so a run touches no network and no file.
#![no_main]

use api_gateway::{compile, parse_str};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let parsed = parse_str(text, |name| (name == "SET").then(|| "value".to_owned()));
    let reaches_out = parsed.file.upstreams.values().any(|u| {
        u.backends
            .iter()
            .any(|b| b.addr.parse::<std::net::SocketAddr>().is_err())
    }) || parsed
        .file
        .auth
        .as_ref()
        .and_then(|a| a.jwt.as_ref())
        .is_some_and(|j| {
            j.public_key_file.is_some() || j.private_key_file.is_some() || j.jwks_url.is_some()
        });
    if reaches_out {
        return;
    }
    let parse_errors = parsed.errors.len();
    match compile(parsed, None) {
        Ok(snapshot) => assert!(parse_errors == 0 && !snapshot.routes.is_empty()),
        Err(errors) => assert!(!errors.to_string().is_empty()),
    }
});
