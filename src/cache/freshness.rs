//! Whether an origin answer may be kept, and for how long: `Cache-Control` (`no-store`,
//! `private`, `no-cache`, `max-age`, `s-maxage`, `stale-while-revalidate`, `stale-if-error`),
//! then `Expires`, then the route's `ttl` or `default_ttl`. Answers with `Set-Cookie` or
//! `Vary: *`, and statuses that are not cacheable by default, are never kept.

use super::Cache;
use pingora::cache::cache_control::{CacheControl, Cacheable, InterpretCacheControl};
use pingora::cache::filters::calculate_expires_header_time;
use pingora::cache::key::HashBinary;
use pingora::cache::{CacheMeta, NoCacheReason, RespCacheable, VarianceBuilder};
use pingora::http::{RequestHeader, ResponseHeader};
use std::time::{Duration, SystemTime};

/// Statuses a cache may keep without explicit freshness (RFC 9110 §15.1), less 206 (ranges are
/// fetched whole) and the rarely cached ones.
const CACHEABLE_STATUS: [u16; 9] = [200, 203, 204, 300, 301, 308, 404, 410, 501];

/// The meta to store `resp` under, or why not.
pub fn decide(resp: &ResponseHeader, cache: &Cache, route_ttl: Option<Duration>) -> RespCacheable {
    use RespCacheable::Uncacheable;
    if !CACHEABLE_STATUS.contains(&resp.status.as_u16()) {
        return Uncacheable(NoCacheReason::Custom("status"));
    }
    if resp.headers.contains_key(http::header::SET_COOKIE) {
        return Uncacheable(NoCacheReason::Custom("set-cookie"));
    }
    if vary_names(resp).any(|n| n == "*") {
        return Uncacheable(NoCacheReason::Custom("vary"));
    }
    let cc = CacheControl::from_resp_headers(resp);
    if cc
        .as_ref()
        .is_some_and(|cc| cc.is_cacheable() == Cacheable::No)
    {
        return Uncacheable(NoCacheReason::OriginNotCache);
    }
    let now = SystemTime::now();
    let fresh_until = match cc.as_ref().and_then(|cc| cc.fresh_duration()) {
        // `no-cache` and `max-age=0`: kept, but revalidated before every use.
        Some(d) if d.is_zero() => now.checked_sub(Duration::from_secs(1)),
        Some(d) => now.checked_add(d),
        None => calculate_expires_header_time(resp)
            .or_else(|| now.checked_add(route_ttl.unwrap_or(cache.default_ttl))),
    };
    let Some(fresh_until) = fresh_until else {
        return Uncacheable(NoCacheReason::OriginNotCache);
    };
    let stale = |d: Option<Duration>, default: u32| {
        d.map_or(default, |d| u32::try_from(d.as_secs()).unwrap_or(u32::MAX))
    };
    let swr = stale(
        cc.as_ref()
            .and_then(|cc| cc.serve_stale_while_revalidate_duration()),
        cache.stale_while_revalidate,
    );
    let sie = stale(
        cc.as_ref()
            .and_then(|cc| cc.serve_stale_if_error_duration()),
        cache.stale_if_error,
    );
    let mut header = resp.clone();
    if let Some(cc) = &cc {
        cc.strip_private_headers(&mut header);
    }
    RespCacheable::Cacheable(CacheMeta::new(fresh_until, now, swr, sie, header))
}

/// The variance of a request for a stored answer: the `Host` it was asked under (routes match
/// on the path only, so an origin that builds links from `X-Forwarded-Host` must not hand one
/// client's host to another), and the values of the request headers named in `Vary`.
pub fn variance(meta: &CacheMeta, req: &RequestHeader, origin: &Origin) -> Option<HashBinary> {
    let mut builder = VarianceBuilder::new();
    builder.add_value(":scheme", origin.scheme);
    if let Some(host) = origin.forwarded_host {
        builder.add_value(":forwarded-host", host);
    }
    let host = req
        .headers
        .get(http::header::HOST)
        .map(|h| h.as_bytes())
        .or_else(|| req.uri.authority().map(|a| a.as_str().as_bytes()))
        .unwrap_or_default();
    builder.add_value(":host", host);
    for name in vary_names(meta.response_header()) {
        let value = req
            .headers
            .get_all(name.as_str())
            .iter()
            .flat_map(|v| [v.as_bytes(), b"\n"])
            .flatten()
            .copied()
            .collect();
        builder.add_owned_name_value(name, value);
    }
    builder.finalize()
}

/// What the backend is told about the request's origin, beside its own `Host`.
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    /// `X-Forwarded-Proto` as sent to the backend.
    pub scheme: &'a [u8],
    /// `X-Forwarded-Host`, when kept from a trusted proxy (else it is the `Host`).
    pub forwarded_host: Option<&'a [u8]>,
}

/// The header names listed in `Vary`, lowercase.
fn vary_names(resp: &ResponseHeader) -> impl Iterator<Item = String> + '_ {
    resp.headers
        .get_all(http::header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|n| n.trim().to_ascii_lowercase())
        .filter(|n| !n.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Store;
    use std::sync::Arc;

    fn cache() -> Cache {
        Cache {
            key_prefix: "gw".into(),
            default_ttl: Duration::from_secs(60),
            max_object_size: 1 << 20,
            lock_timeout: Duration::from_secs(1),
            stale_while_revalidate: 5,
            stale_if_error: 7,
            store: Arc::new(Store::new("gw", 1 << 20, None)),
        }
    }

    fn resp(status: u16, headers: &[(&str, &str)]) -> ResponseHeader {
        let mut r = ResponseHeader::build(status, None).expect("response");
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).expect("header");
        }
        r
    }

    fn fresh_secs(r: &ResponseHeader, route_ttl: Option<Duration>) -> Option<(i64, u32, u32)> {
        match decide(r, &cache(), route_ttl) {
            RespCacheable::Cacheable(m) => {
                let now = SystemTime::now();
                let secs = match m.fresh_until().duration_since(now) {
                    Ok(d) => d.as_secs_f64().round() as i64,
                    Err(e) => -(e.duration().as_secs_f64().round() as i64),
                };
                Some((secs, m.stale_while_revalidate_sec(), m.stale_if_error_sec()))
            }
            RespCacheable::Uncacheable(_) => None,
        }
    }

    #[test]
    fn origin_freshness_wins_then_expires_then_the_route_then_the_default() {
        assert_eq!(fresh_secs(&resp(200, &[]), None), Some((60, 5, 7)));
        assert_eq!(
            fresh_secs(&resp(200, &[]), Some(Duration::from_secs(9))),
            Some((9, 5, 7))
        );
        let cc = [(
            "cache-control",
            "max-age=30, stale-while-revalidate=3, stale-if-error=4",
        )];
        assert_eq!(fresh_secs(&resp(200, &cc), None), Some((30, 3, 4)));
        let both = [("cache-control", "max-age=30, s-maxage=20")];
        assert_eq!(fresh_secs(&resp(200, &both), None).map(|f| f.0), Some(20));
        let expires = httpdate(SystemTime::now() + Duration::from_secs(100));
        let e = [("expires", expires.as_str())];
        let got = fresh_secs(&resp(200, &e), None).map(|f| f.0);
        assert!(got.is_some_and(|s| (98..=101).contains(&s)), "{got:?}");
        let no_cache = [("cache-control", "no-cache")];
        assert!(fresh_secs(&resp(200, &no_cache), None).is_some_and(|f| f.0 < 0));
    }

    #[test]
    fn never_kept() {
        for h in [
            ("cache-control", "no-store"),
            ("cache-control", "private, max-age=60"),
            ("set-cookie", "a=b"),
            ("vary", "Accept, *"),
        ] {
            assert!(fresh_secs(&resp(200, &[h]), None).is_none(), "{h:?}");
        }
        for status in [201, 206, 302, 400, 403, 500, 502, 503] {
            assert!(fresh_secs(&resp(status, &[]), None).is_none(), "{status}");
        }
        for status in [203, 204, 301, 404, 410] {
            assert!(fresh_secs(&resp(status, &[]), None).is_some(), "{status}");
        }
    }

    #[test]
    fn variance_follows_the_named_request_headers() {
        let meta = |vary: &[(&str, &str)]| match decide(&resp(200, vary), &cache(), None) {
            RespCacheable::Cacheable(m) => m,
            RespCacheable::Uncacheable(r) => panic!("{r:?}"),
        };
        let plain = meta(&[]);
        let req = |lang: &str| {
            let mut r = RequestHeader::build("GET", b"/", None).expect("request");
            r.insert_header("accept-language", lang.to_owned())
                .expect("header");
            r
        };
        let http = Origin {
            scheme: b"http",
            forwarded_host: None,
        };
        let v = |meta: &CacheMeta, req: &RequestHeader| variance(meta, req, &http);
        assert_eq!(v(&plain, &req("en")), v(&plain, &req("fr")));
        let mut other_host = req("en");
        other_host
            .insert_header("host", "elsewhere")
            .expect("header");
        assert_ne!(v(&plain, &req("en")), v(&plain, &other_host));
        let varies = meta(&[("vary", "Accept-Language")]);
        assert_ne!(v(&varies, &req("en")), v(&varies, &req("fr")));
        assert_eq!(v(&varies, &req("en")), v(&varies, &req("en")));
        // The scheme and the forwarded host the backend is told make entries of their own.
        let https = Origin {
            scheme: b"https",
            ..http
        };
        assert_ne!(v(&plain, &req("en")), variance(&plain, &req("en"), &https));
        let forwarded = Origin {
            forwarded_host: Some(b"public.example"),
            ..http
        };
        assert_ne!(
            v(&plain, &req("en")),
            variance(&plain, &req("en"), &forwarded)
        );
    }

    fn httpdate(t: SystemTime) -> String {
        httpdate::fmt_http_date(t)
    }
}
