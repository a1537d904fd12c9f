//! Which requests may use the cache, and the key they use. The key is readable
//! (`<key_prefix>:GET:<path>:<query>`), so a purge can name a URL or a path prefix; the method
//! is left out (HEAD and PURGE find the GET entry). A request with credentials gets the
//! caller's identity appended after `#`, so one caller never sees another's answer; a route that
//! splits its traffic appends the upstream the same way.

use crate::auth::Caller;
use pingora::http::RequestHeader;
use sha2::{Digest, Sha256};
use std::fmt::Write;
use std::time::Duration;

/// A route's caching, compiled.
#[derive(Debug, Clone)]
pub struct RoutePolicy {
    /// Freshness when the origin says nothing (replaces `cache.default_ttl`).
    pub ttl: Option<Duration>,
    /// Answers to requests with credentials are cached too, one entry per caller.
    pub authenticated: bool,
}

/// What a request does with the cache.
#[derive(Debug, PartialEq, Eq)]
pub enum Admission {
    /// Not a GET or HEAD, or credentials on a route that does not cache them.
    Bypass,
    /// Looked up and filled under this primary key.
    Use(String),
}

impl RoutePolicy {
    /// Whether `req` (for the normalized `path`) may use the cache, and its key.
    pub fn admit(
        &self,
        key_prefix: &str,
        req: &RequestHeader,
        path: &str,
        caller: Option<&Caller>,
    ) -> Admission {
        if !matches!(req.method, http::Method::GET | http::Method::HEAD) {
            return Admission::Bypass;
        }
        let identity = identity(req, caller);
        if identity.is_some() && !self.authenticated {
            return Admission::Bypass;
        }
        let mut key = url_key(key_prefix, path, req.uri.query());
        if let Some(id) = identity {
            key.push('#');
            key.push_str(&id);
        }
        Admission::Use(key)
    }
}

/// The key of one URL for every caller: `<key_prefix>:GET:<path>:<query>`, the query with its
/// escapes normalized ([`push_query`]).
pub fn url_key(key_prefix: &str, path: &str, query: Option<&str>) -> String {
    let query = query.unwrap_or("");
    let mut key = String::with_capacity(key_prefix.len() + path.len() + query.len() + 6);
    key.push_str(key_prefix);
    key.push_str(":GET:");
    key.push_str(path);
    key.push(':');
    push_query(&mut key, query);
    key
}

/// `query` with `%XX` escapes normalized as RFC 3986 (6.2.2) allows: an escaped unreserved
/// character (`%41` for `A`) written as itself, other escapes in upper case (`%2f` as `%2F`), so
/// spellings of one query share an entry. The order of parameters is kept: a backend may read it.
fn push_query(key: &mut String, query: &str) {
    if !query.contains('%') {
        key.push_str(query);
        return;
    }
    let bytes = query.as_bytes();
    let hex = |b: u8| (b as char).to_digit(16);
    let mut i = 0;
    while i < bytes.len() {
        let escaped = match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) => hex(h).zip(hex(l)).map(|(h, l)| (h * 16 + l) as u8),
            _ => None,
        };
        match escaped {
            Some(b) if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') => {
                key.push(b as char);
                i += 3;
            }
            Some(b) => {
                let _ = write!(key, "%{b:02X}");
                i += 3;
            }
            None => {
                // Not an escape: the character as it is (a query is ASCII or UTF-8).
                let len = query[i..].chars().next().map_or(1, char::len_utf8);
                key.push_str(&query[i..i + len]);
                i += len;
            }
        }
    }
}

/// Marks `key` as the answer of one upstream of a route that splits its traffic, so each
/// side's clients get that side's answers. A URL purge still takes every side.
pub fn for_upstream(key: &mut String, upstream: &str) {
    key.push(if key.contains('#') { ';' } else { '#' });
    key.push_str("up=");
    key.push_str(upstream);
}

/// Who is asking, when the request carries credentials (`Authorization`,
/// `Proxy-Authorization`, `Cookie`, `X-API-Key`): the authenticated subject when the gateway checked one, and a digest of every
/// credential header, so callers the gateway did not authenticate are told apart as well.
fn identity(req: &RequestHeader, caller: Option<&Caller>) -> Option<String> {
    let mut digest = Sha256::new();
    let mut any = false;
    for name in [
        "authorization",
        "proxy-authorization",
        "cookie",
        "x-api-key",
        "x_api_key",
    ] {
        for value in req.headers.get_all(name) {
            any = true;
            digest.update(name.as_bytes());
            digest.update([0]);
            digest.update(value.as_bytes());
            digest.update([0]);
        }
    }
    if !any && caller.is_none() {
        return None;
    }
    let mut id = String::with_capacity(80);
    if let Some(c) = caller {
        id.push_str("u=");
        id.push_str(&c.subject);
        id.push(';');
    }
    id.push_str("c=");
    for b in &digest.finalize()[..16] {
        let _ = write!(id, "{b:02x}");
    }
    Some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(method: &str, uri: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, uri.as_bytes(), None).expect("request");
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).expect("header");
        }
        r
    }

    fn policy(authenticated: bool) -> RoutePolicy {
        RoutePolicy {
            ttl: None,
            authenticated,
        }
    }

    #[test]
    fn keys_are_readable_and_leave_the_method_out() {
        let p = policy(false);
        let get = p.admit("gw", &req("GET", "/a/b?page=2", &[]), "/a/b", None);
        assert_eq!(get, Admission::Use("gw:GET:/a/b:page=2".into()));
        let head = p.admit("gw", &req("HEAD", "/a/b?page=2", &[]), "/a/b", None);
        assert_eq!(head, get);
        let bare = p.admit("gw", &req("GET", "/a/b", &[]), "/a/b", None);
        assert_eq!(bare, Admission::Use("gw:GET:/a/b:".into()));
        assert_eq!(
            p.admit("gw", &req("POST", "/a/b", &[]), "/a/b", None),
            Admission::Bypass
        );
    }

    #[test]
    fn spellings_of_one_query_share_a_key() {
        let key = |q: &str| url_key("gw", "/a", Some(q));
        assert_eq!(key("name=%41b%7e"), key("name=Ab~"));
        assert_eq!(key("p=%2f"), key("p=%2F"));
        assert_eq!(key("p=%2F"), "gw:GET:/a:p=%2F");
        assert_ne!(key("a=1&b=2"), key("b=2&a=1"), "order is kept");
        assert_ne!(key("p=%2F"), key("p=/"), "reserved escapes stay escaped");
        assert_eq!(key("bad=%zz&é=1"), "gw:GET:/a:bad=%zz&é=1");
        assert_eq!(key("tail=%4"), "gw:GET:/a:tail=%4");
    }

    #[test]
    fn credentials_bypass_unless_the_route_opts_in_and_then_split_callers() {
        let alice = [("authorization", "Bearer a")];
        let bob = [("authorization", "Bearer b")];
        let cookie = [("cookie", "session=1")];
        let proxy = [("proxy-authorization", "Basic eDp5")];
        for h in [
            &alice[..],
            &cookie[..],
            &[("x-api-key", "k")][..],
            &proxy[..],
        ] {
            assert_eq!(
                policy(false).admit("gw", &req("GET", "/x", h), "/x", None),
                Admission::Bypass
            );
        }
        let p = policy(true);
        let key = |h: &[(&str, &str)], c: Option<&Caller>| match p.admit(
            "gw",
            &req("GET", "/x", h),
            "/x",
            c,
        ) {
            Admission::Use(k) => k,
            Admission::Bypass => panic!("opted in"),
        };
        let a = key(&alice, None);
        assert!(a.starts_with("gw:GET:/x:#c="), "{a}");
        assert_ne!(a, key(&bob, None));
        let caller = Caller::new("alice".into(), vec![]).expect("caller");
        let named = key(&alice, Some(&caller));
        assert!(named.starts_with("gw:GET:/x:#u=alice;c="), "{named}");
        assert_eq!(key(&[], None), "gw:GET:/x:");
    }

    #[test]
    fn each_upstream_of_a_split_gets_its_own_entry_that_a_url_purge_takes() {
        let p = policy(true);
        let mut plain = match p.admit("gw", &req("GET", "/a?x=1", &[]), "/a", None) {
            Admission::Use(k) => k,
            Admission::Bypass => panic!("cached"),
        };
        let mut with_id = match p.admit(
            "gw",
            &req("GET", "/a?x=1", &[("cookie", "s=1")]),
            "/a",
            None,
        ) {
            Admission::Use(k) => k,
            Admission::Bypass => panic!("cached"),
        };
        for_upstream(&mut plain, "v2");
        for_upstream(&mut with_id, "v2");
        assert_eq!(plain, "gw:GET:/a:x=1#up=v2");
        assert!(with_id.starts_with("gw:GET:/a:x=1#c=") && with_id.ends_with(";up=v2"));
        let purge = crate::cache::Purge::url("gw", "/a", Some("x=1"));
        assert!(purge.matches(&plain) && purge.matches(&with_id));
    }
}
