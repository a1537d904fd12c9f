//! Edge security: response hardening headers, CORS, client IP allow/deny rules, trusted
//! proxies and the body limit. [`build`] checks and compiles the `security` section.

mod cors;
mod headers;
mod ip;

pub use cors::{is_preflight, Cors};
pub use headers::SecurityHeaders;
pub use ip::{IpRules, TrustedProxies};

use crate::config::file::SecurityConfig;
use crate::config::ConfigErrors;
use crate::outcome::{Denial, ErrorCode, Flow};
use http::HeaderValue;
use pingora::http::RequestHeader;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

/// A problem in the `security` section (or a group's or route's security settings).
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    #[error("invalid header value {0:?}")]
    HeaderValue(String),
    #[error("\"*\" is not allowed with allow_credentials")]
    AnyOriginWithCredentials,
    #[error("unknown method {0:?}")]
    Method(String),
    #[error("invalid CIDR or address {0:?}")]
    Cidr(String),
}

/// The compiled `security` section.
#[derive(Debug, Default)]
pub struct Edge {
    /// Hardening headers for answers given before a route is known.
    pub headers: Arc<SecurityHeaders>,
    pub cors: Option<Arc<Cors>>,
    pub trusted_proxies: TrustedProxies,
    /// The global allow/deny lists, combined into each route's rules.
    pub ip_rules: IpRules,
    /// Largest request body accepted, in bytes.
    pub max_body_size: Option<u64>,
    /// The whole request head must arrive within this, from its first byte.
    pub request_head_timeout: Option<Duration>,
    /// Connections one client address may hold open at once, on all listeners together.
    pub max_connections_per_ip: Option<u32>,
    /// Connections the process holds open at once (below the file-descriptor bound).
    pub max_connections: Option<u32>,
}

/// The default `request_head_timeout`.
const HEAD_TIMEOUT: Duration = Duration::from_secs(10);

/// The default `max_connections_per_ip`.
const DEFAULT_CONNECTIONS_PER_IP: u32 = 1024;

/// Checks and builds the section; every problem is pushed with its path.
pub fn build(cfg: &SecurityConfig, errors: &mut ConfigErrors) -> Edge {
    Edge {
        headers: Arc::new(SecurityHeaders::build(
            "security.headers",
            cfg.headers.as_ref(),
            None,
            errors,
        )),
        cors: cfg
            .cors
            .as_ref()
            .and_then(|c| Cors::build(c, errors))
            .map(Arc::new),
        trusted_proxies: TrustedProxies::build(&cfg.trusted_proxies, errors),
        ip_rules: IpRules::build("security", &cfg.ip_allow, &cfg.ip_deny, errors),
        max_body_size: cfg.max_body_size.map(|s| s.0),
        // `0s` turns the deadline off.
        request_head_timeout: Some(cfg.request_head_timeout.map_or(HEAD_TIMEOUT, |d| d.0))
            .filter(|d| !d.is_zero()),
        max_connections_per_ip: Some(
            cfg.max_connections_per_ip
                .map_or(DEFAULT_CONNECTIONS_PER_IP, NonZeroU32::get),
        ),
        max_connections: cfg.max_connections.map(NonZeroU32::get),
    }
}

/// Refuses what no check after it could read unambiguously, before anything else looks at the
/// request: a repeated `Authorization` or `X-API-Key` (the gateway would check one value and
/// the backend might read the other), an HTTP/1.1 request without exactly one `Host`, header
/// lines ending in a bare LF (`raw_head`: the head as received, for HTTP/1), and `TRACE`
/// (it would echo credentials back to a script).
pub fn screen(req: &RequestHeader, raw_head: Option<&[u8]>) -> Flow {
    let count = |name: http::header::HeaderName| req.headers.get_all(name).iter().count();
    if count(http::header::AUTHORIZATION) > 1 || count(X_API_KEY) > 1 {
        return ErrorCode::BadRequest.into();
    }
    if req.version == http::Version::HTTP_11 && count(http::header::HOST) != 1 {
        return ErrorCode::BadRequest.into();
    }
    // The host the backend and the cache read: `Host`, or HTTP/2's `:authority` without one.
    let mut hosts = req.headers.get_all(http::header::HOST).iter().peekable();
    let bad_host = match hosts.peek() {
        Some(_) => hosts.any(|h| !is_host(h.as_bytes())),
        None => req
            .uri
            .authority()
            .is_some_and(|a| !is_host(a.as_str().as_bytes())),
    };
    if bad_host {
        return ErrorCode::BadRequest.into();
    }
    if raw_head.is_some_and(has_bare_lf) {
        return ErrorCode::BadRequest.into();
    }
    if req.method == http::Method::TRACE {
        let allow = HeaderValue::from_static("GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS");
        return Denial::new(ErrorCode::MethodNotAllowed)
            .with(http::header::ALLOW, allow)
            .into();
    }
    Flow::Continue
}

const X_API_KEY: http::header::HeaderName = http::header::HeaderName::from_static("x-api-key");

/// `Host` syntax (RFC 9110 7.2: `uri-host [ ":" port ]`): a registered name of unreserved,
/// sub-delimiter and percent characters, or a bracketed IPv6 literal, then an optional port.
/// Empty is allowed (a request target without an authority). No user information, path,
/// white space or control characters, which a backend or the cache key would take as given.
fn is_host(value: &[u8]) -> bool {
    let (host, port) = match value.iter().rposition(|b| *b == b':') {
        Some(i) if !value[i..].contains(&b']') => (&value[..i], Some(&value[i + 1..])),
        _ => (value, None),
    };
    if port.is_some_and(|p| p.len() > 5 || !p.iter().all(u8::is_ascii_digit)) {
        return false;
    }
    match host {
        [b'[', literal @ .., b']'] => literal
            .iter()
            .all(|b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.')),
        _ => host.iter().all(|b| HOST_BYTES[usize::from(*b)]),
    }
}

/// The bytes of a registered name: unreserved, sub-delimiters and `%` (one lookup a byte).
static HOST_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'%'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
            );
        b += 1;
    }
    table
};

/// A line feed not preceded by a carriage return.
fn has_bare_lf(head: &[u8]) -> bool {
    head.iter()
        .enumerate()
        .any(|(i, b)| *b == b'\n' && (i == 0 || head[i - 1] != b'\r'))
}

#[cfg(test)]
mod tests {
    use super::{is_host, screen};
    use crate::outcome::{ErrorCode, Flow};
    use pingora::http::RequestHeader;

    #[test]
    fn an_http2_authority_without_host_is_checked_too() {
        let h2 = |target: &'static str| {
            let mut r = RequestHeader::build("GET", b"/", None).expect("request");
            r.set_uri(http::Uri::from_static(target));
            r.set_version(http::Version::HTTP_2);
            screen(&r, None)
        };
        assert_eq!(h2("https://api.example:8443/p"), Flow::Continue);
        assert_eq!(
            h2("https://user@api.example/p"),
            ErrorCode::BadRequest.into()
        );
    }

    #[test]
    fn host_values_are_a_name_or_an_address_and_a_port() {
        for good in [
            "example.com",
            "example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[::1]:8443",
            "xn--bcher-kva.example",
            "",
        ] {
            assert!(is_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "x/../api/admin",
            "a\tb",
            "a b",
            "user@example.com",
            "example.com:80:80",
            "example.com:http",
            "example.com:123456",
            "[::1",
            "[zz::1]",
            "a\\b",
            "a?b",
            "a#b",
        ] {
            assert!(!is_host(bad.as_bytes()), "{bad}");
        }
    }
}
