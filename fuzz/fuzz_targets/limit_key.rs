//! Rate-limit keys: two requests share a key exactly when the key's parts are equal, whatever
//! bytes the parts hold (no `("ab", "c")` / `("a", "bc")` collisions).
#![no_main]

use api_gateway::fuzzing::limit_key;
use libfuzzer_sys::fuzz_target;

const PARTS: [&str; 4] = ["user", "path", "route", "header:x-tenant"];

/// Four parts of one request, from NUL-separated fields.
fn fields(data: &[u8]) -> [String; 4] {
    let mut it = data
        .split(|b| *b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned());
    std::array::from_fn(|_| it.next().unwrap_or_default())
}

fn key(f: &[String; 4]) -> Option<Vec<u8>> {
    let mut headers = http::HeaderMap::new();
    headers.insert("x-tenant", http::HeaderValue::from_str(&f[3]).ok()?);
    Some(limit_key(&PARTS, None, Some(&f[0]), &f[1], &f[2], &headers))
}

fuzz_target!(|data: &[u8]| {
    let Some(split) = data.iter().position(|b| *b == 0xff) else {
        return;
    };
    let (a, b) = (fields(&data[..split]), fields(&data[split + 1..]));
    if let (Some(ka), Some(kb)) = (key(&a), key(&b)) {
        assert_eq!(ka == kb, a == b, "{a:?} / {b:?}");
    }
});
