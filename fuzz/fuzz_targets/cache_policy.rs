//! Any origin answer headers and any request path, query and credentials: the cache's verdict
//! and key never panic; `no-store`, `private` and `Set-Cookie` answers are never kept; a key
//! always names its URL (a purge of the URL and of `/*` remove it); credentials never share the
//! anonymous key.
#![no_main]

use api_gateway::fuzzing::{cache_decision, cache_key, RequestHeader, ResponseHeader};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&status, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(2, |b| *b == 0);
    let (headers, request) = (parts.next().unwrap_or_default(), parts.next().unwrap_or_default());
    let status = [200, 203, 204, 301, 404, 410, 206, 500][usize::from(status % 8)];
    let mut resp = ResponseHeader::build(status, None).expect("response");
    for line in headers.split(|b| *b == b'\n') {
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        // Leading and trailing whitespace never reaches a header value from the wire.
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name),
            http::HeaderValue::from_bytes(value),
        ) else {
            continue;
        };
        resp.append_header(name, value).expect("header");
    }
    let verdict = cache_decision(&resp);
    let cc: String = resp
        .headers
        .get_all("cache-control")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect::<Vec<_>>()
        .join(",")
        .to_ascii_lowercase();
    let directives: Vec<&str> = cc.split(',').map(|d| d.trim()).collect();
    if resp.headers.contains_key("set-cookie") || directives.contains(&"no-store") {
        assert!(verdict.is_none(), "kept: {resp:?}");
    }

    let text = String::from_utf8_lossy(request);
    let (path, query) = match text.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (text.as_ref(), None),
    };
    if !path.starts_with('/') {
        return;
    }
    let uri = match query {
        Some(q) => format!("{path}?{q}"),
        None => path.to_owned(),
    };
    let Ok(mut req) = RequestHeader::build("GET", uri.as_bytes(), None) else {
        return;
    };
    let (path, query) = (req.uri.path().to_owned(), req.uri.query().map(str::to_owned));
    let anonymous = cache_key(&path, query.as_deref(), &req, false).expect("anonymous GET");
    assert!(anonymous.1 && anonymous.2, "purges miss {:?}", anonymous.0);
    req.insert_header("authorization", "Bearer x").expect("header");
    assert!(cache_key(&path, query.as_deref(), &req, false).is_none());
    let own = cache_key(&path, query.as_deref(), &req, true).expect("opted in");
    assert_ne!(own.0, anonymous.0, "a caller shares the anonymous key");
    assert!(own.1 && own.2, "purges miss {:?}", own.0);
});
