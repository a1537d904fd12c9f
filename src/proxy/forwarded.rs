//! Client identity through trusted proxies, and the headers the backend receives about it.

use super::ctx::RequestCtx;
use crate::header_edit::HeaderEdit;
use crate::ip_text::IpText;
use crate::request_id;
use http::{HeaderName, HeaderValue};
use pingora::prelude::*;
use std::net::IpAddr;

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
pub const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");
const X_USER_ID: HeaderName = HeaderName::from_static("x-user-id");
const X_USER_ROLES: HeaderName = HeaderName::from_static("x-user-roles");

/// Sets `X-Forwarded-For/-Proto/-Host` and `X-Request-Id` on the upstream request and removes
/// every client-sent `X-User-*` header.
pub fn apply<H: HeaderEdit>(req: &mut H, ctx: &RequestCtx, peer: Option<IpAddr>) -> Result<()> {
    remove_client_headers(req, ctx.peer.trusted, ctx.admitted.auth.is_some());
    if let Some(peer) = peer {
        let text = IpText::new(peer);
        let peer = text.as_str();
        let xff = match req.headers().get(X_FORWARDED_FOR).map(|v| v.to_str()) {
            Some(Ok(prev)) if ctx.peer.trusted && !prev.is_empty() => {
                // Sized exactly, so the header value takes the buffer without another allocation.
                let mut all = String::with_capacity(prev.len() + 2 + peer.len());
                all.push_str(prev);
                all.push_str(", ");
                all.push_str(peer);
                HeaderValue::try_from(all)
            }
            _ => HeaderValue::from_bytes(peer.as_bytes()),
        };
        req.set(X_FORWARDED_FOR, xff.or_err(InternalError, "forwarded-for")?)?;
    }
    if !(ctx.peer.trusted && req.headers().contains_key(X_FORWARDED_PROTO)) {
        let proto = if ctx.peer.tls { "https" } else { "http" };
        req.set(X_FORWARDED_PROTO, HeaderValue::from_static(proto))?;
    }
    if !(ctx.peer.trusted && req.headers().contains_key(X_FORWARDED_HOST)) {
        match req.headers().get(http::header::HOST).cloned() {
            Some(host) => req.set(X_FORWARDED_HOST, host)?,
            None => req.unset(&X_FORWARDED_HOST),
        }
    }
    // A request that already carries exactly this id (the client's, kept) is left as it is.
    let id = ctx.peer.request_id.as_str();
    let mut sent = req.headers().get_all(request_id::HEADER).iter();
    let carried =
        matches!((sent.next(), sent.next()), (Some(v), None) if v.as_bytes() == id.as_bytes());
    if !carried {
        req.set(request_id::HEADER, ctx.peer.request_id.header_value())?;
    }
    if let Some(t) = &ctx.trace {
        // The gateway's span is the backend's parent; an untrusted caller's context is replaced.
        let parent =
            HeaderValue::try_from(t.context.traceparent()).or_err(InternalError, "traceparent")?;
        req.set(TRACEPARENT, parent)?;
        match &t.tracestate {
            Some(state) => req.set(TRACESTATE, state.clone())?,
            None => req.unset(&TRACESTATE),
        }
    }
    if let Some(caller) = &ctx.admitted.caller {
        req.set(X_USER_ID, caller.subject_header.clone())?;
        req.set(X_USER_ROLES, caller.roles_header.clone())?;
    }
    Ok(())
}

/// Identity and routing headers a client must not set for the backend: `X-User-*` (also written
/// with `_`, which CGI, WSGI, PHP and Rack read as `-`) and the method-override headers always;
/// from an untrusted peer also the headers a backend may take for a proxy's word about the
/// client, its user or the original URL; and `X-API-Key` once the gateway has checked it.
fn remove_client_headers<H: HeaderEdit>(req: &mut H, trusted: bool, key_checked: bool) {
    let unwanted = |name: &str| {
        if name.as_bytes().contains(&b'_') {
            // CGI, WSGI, PHP and Rack read `_` as `-`: such a name is judged as that spelling,
            // and must not shadow a header the gateway sets or checks.
            let dashed = name.replace('_', "-");
            return set_by_gateway(&dashed) || unwanted_name(&dashed, trusted, false);
        }
        unwanted_name(name, trusted, key_checked)
    };
    let found: Vec<http::HeaderName> = req
        .headers()
        .keys()
        .filter(|k| unwanted(k.as_str()))
        .cloned()
        .collect();
    for name in found {
        req.unset(&name);
    }
}

/// A header (lower case, spelled with `-`) a client must not send the backend: `X-User-*` and
/// the method overrides from anyone, the proxy headers from an untrusted peer, `X-API-Key` once
/// checked.
fn unwanted_name(name: &str, trusted: bool, key_checked: bool) -> bool {
    // Every name below starts with one of these letters: the common headers (`host`, `accept`,
    // `user-agent`, ...) are passed after one comparison.
    match name.as_bytes().first() {
        Some(b'x') => {
            (name.len() > 7 && name.starts_with("x-user-"))
                || (!trusted && proxy_header(name))
                // Frameworks (Symfony, Laravel, Express's method-override, ...) take these for
                // the method, which would get past a route's `methods`.
                || matches!(
                    name,
                    "x-http-method-override" | "x-http-method" | "x-method-override"
                )
                || (key_checked && name == "x-api-key")
        }
        Some(b'f' | b't' | b'c' | b'r') => !trusted && proxy_header(name),
        _ => false,
    }
}

/// A proxy's word about the client, its user or the original URL (a `match` on strings
/// compares lengths first: a few instructions per name).
fn proxy_header(name: &str) -> bool {
    matches!(
        name,
        "forwarded"
            | "x-real-ip"
            | "x-forwarded-port"
            | "x-forwarded-prefix"
            | "x-original-url"
            | "x-rewrite-url"
            | "x-client-ip"
            | "true-client-ip"
            | "cf-connecting-ip"
            | "x-cluster-client-ip"
            | "remote-user"
            | "x-remote-user"
            | "x-forwarded-user"
            | "x-forwarded-email"
            | "x-forwarded-groups"
            | "x-auth-request-user"
            | "x-auth-request-email"
            | "x-auth-request-groups"
            | "x-authenticated-user"
    )
}

/// The headers the gateway sets or checks itself.
fn set_by_gateway(name: &str) -> bool {
    matches!(
        name,
        "x-forwarded-for" | "x-forwarded-proto" | "x-forwarded-host" | "x-request-id" | "x-api-key"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::client_ip;
    use crate::client::tests::{ip, req, trusted};
    use pingora::http::RequestHeader;

    /// Every value of a header, in order.
    fn values<'r>(r: &'r RequestHeader, name: &str) -> Vec<&'r [u8]> {
        r.headers
            .get_all(name)
            .iter()
            .map(|v| v.as_bytes())
            .collect()
    }

    /// A snapshot with one route, for a request context.
    fn one_route() -> std::sync::Arc<crate::snapshot::Snapshot> {
        let yaml = "upstreams: {u: {backends: [{addr: 127.0.0.1:9}]}}\nroutes: [{name: r, path: /, upstream: u}]\n";
        let parsed = crate::config::parse_str(yaml, |_| None);
        std::sync::Arc::new(crate::snapshot::compile(parsed, None).expect("config"))
    }

    #[test]
    fn the_backend_gets_one_request_id_and_the_peer_as_forwarded_for() {
        use crate::proxy::RequestCtx;
        use crate::request_id::RequestId;
        let snapshot = one_route();
        for sent in [&[][..], &["abc"], &["abc", "def"], &["bad id"]] {
            let mut r = req(&[]);
            for id in sent {
                r.append_header("x-request-id", *id).expect("header");
            }
            let mut ctx = RequestCtx::new(std::sync::Arc::clone(&snapshot));
            ctx.peer.request_id = RequestId::from_request(&r.headers);
            apply(&mut r, &ctx, Some(ip("2001:db8::7"))).expect("apply");
            let ids = values(&r, "x-request-id");
            assert_eq!(ids, [ctx.peer.request_id.as_str().as_bytes()], "{sent:?}");
            let kept = sent.first().filter(|s| **s == "abc");
            assert_eq!(kept.is_some(), ctx.peer.request_id.as_str() == "abc");
            let xff = r.headers.get("x-forwarded-for").map(|v| v.as_bytes());
            assert_eq!(xff, Some(&b"2001:db8::7"[..]));
            let proto = r.headers.get("x-forwarded-proto").map(|v| v.as_bytes());
            assert_eq!(proto, Some(&b"http"[..]));
        }
    }

    #[test]
    fn forwarded_for_is_the_peer_or_a_trusted_peers_list_and_the_peer() {
        use crate::proxy::RequestCtx;
        let snapshot = one_route();
        let cases: [(&[&str], bool, &str, &str); 7] = [
            (&[], false, "100.7.30.205", "100.7.30.205"),
            (&[], false, "192.0.2.1", "192.0.2.1"),
            (&["10.1.2.3"], false, "255.255.255.255", "255.255.255.255"),
            (&["10.1.2.3"], true, "10.0.0.1", "10.1.2.3, 10.0.0.1"),
            (
                &["10.1.2.3, 10.9.9.9"],
                true,
                "0.0.0.0",
                "10.1.2.3, 10.9.9.9, 0.0.0.0",
            ),
            (&[""], true, "10.0.0.1", "10.0.0.1"),
            (&["10.1.2.3"], true, "2001:db8::7", "10.1.2.3, 2001:db8::7"),
        ];
        for (sent, trusted, peer, want) in cases {
            let mut r = req(sent);
            let mut ctx = RequestCtx::new(std::sync::Arc::clone(&snapshot));
            ctx.peer.trusted = trusted;
            apply(&mut r, &ctx, Some(ip(peer))).expect("apply");
            let all = values(&r, "x-forwarded-for");
            assert_eq!(all, [want.as_bytes()], "{sent:?} from {peer}");
        }
    }

    #[test]
    fn ipv6_peers_and_hops() {
        let t = trusted(&["2001:db8::/32"]);
        let r = req(&["2001:db8::5, 2a00:1450::1, 2001:db8::1"]);
        assert_eq!(client_ip(ip("2001:db8::9"), &t, &r), ip("2a00:1450::1"));
        assert_eq!(client_ip(ip("2a00::1"), &t, &r), ip("2a00::1"));
    }
}
