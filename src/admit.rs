//! Whether the running config admits a request, from a plain description of it: the route it
//! takes (a CORS preflight by the method it asks about), the route's checks (`chain`), and the
//! upstream of a route that splits its traffic. No socket and no pingora session: the proxy
//! describes the request ([`Inbound`]) and writes the answer; tests drive this directly.

use crate::chain::{Admitted, Request};
use crate::outcome::{Denial, ErrorCode, Flow};
use crate::routing::{Client, Lookup, Route};
use crate::security::is_preflight;
use crate::snapshot::Snapshot;
use http::HeaderValue;
use pingora::http::RequestHeader;
use std::net::IpAddr;
use std::sync::Arc;

/// What admission reads of a request.
pub struct Inbound<'a> {
    pub header: &'a RequestHeader,
    /// The normalized path.
    pub path: &'a str,
    /// The client, behind trusted proxies.
    pub client_ip: Option<IpAddr>,
    /// It came over TLS, or a trusted proxy in front terminated TLS.
    pub secure: bool,
}

/// What admission decided.
pub struct Admission {
    /// `Continue`: proxy it; anything else is the answer.
    pub flow: Flow,
    /// The route it matched, also when a check refused it (for metrics and logs).
    pub route: Option<Arc<Route>>,
    /// The upstream of a route that splits its traffic, picked for this request.
    pub arm: Option<usize>,
}

/// Looks the route up and runs its checks; what they learn of the caller (identity, limit,
/// WebSocket) goes to `out`.
pub async fn admit(snapshot: &Snapshot, req: &Inbound<'_>, out: &mut Admitted) -> Admission {
    let header = req.header;
    let cors = snapshot.edge.cors.as_ref().filter(|_| is_preflight(header));
    let requested = cors
        .and_then(|_| {
            header
                .headers
                .get(http::header::ACCESS_CONTROL_REQUEST_METHOD)
        })
        .and_then(|m| http::Method::from_bytes(m.as_bytes()).ok());
    let method = requested.as_ref().unwrap_or(&header.method);
    let route = match snapshot.table.lookup(req.path, method) {
        Lookup::Found(route) => Arc::clone(route),
        Lookup::MethodNotAllowed(_) if cors.is_some() => {
            let origin = header.headers.get(http::header::ORIGIN);
            let flow = cors.map_or(Flow::Continue, |c| Flow::Reply(c.preflight(origin)));
            return refused(flow);
        }
        Lookup::MethodNotAllowed(allow) => {
            let allow = HeaderValue::from_str(allow).unwrap_or(HeaderValue::from_static(""));
            let denial = Denial::new(ErrorCode::MethodNotAllowed);
            return refused(denial.with(http::header::ALLOW, allow).into());
        }
        Lookup::NotFound => return refused(ErrorCode::RouteNotFound.into()),
    };
    let request = Request {
        header,
        path: req.path,
        client_ip: req.client_ip,
        preflight: cors.is_some(),
        secure: req.secure,
        route: &route.name,
        auth: snapshot.auth.as_deref(),
    };
    let flow = route.chain.run(&request, out).await;
    let arm = (flow == Flow::Continue && route.split.is_split()).then(|| {
        route.split.pick(&Client {
            header,
            ip: req.client_ip,
            user: out.caller.as_deref().map(|c| c.subject.as_str()),
        })
    });
    Admission {
        flow,
        route: Some(route),
        arm,
    }
}

fn refused(flow: Flow) -> Admission {
    Admission {
        flow,
        route: None,
        arm: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::outcome::Reply;

    fn snapshot(yaml: &str) -> Snapshot {
        let parsed = crate::config::parse_str(yaml, |_| None);
        crate::snapshot::compile(parsed, None).expect("config")
    }

    fn request(method: &str, path: &str, headers: &[(&str, &str)]) -> RequestHeader {
        let mut r = RequestHeader::build(method, path.as_bytes(), None).expect("request");
        r.insert_header("host", "api.example").expect("host");
        for (k, v) in headers {
            r.append_header(k.to_string(), *v).expect("header");
        }
        r
    }

    async fn run(s: &Snapshot, req: &RequestHeader, secure: bool) -> (Admission, Admitted) {
        let mut out = Admitted::default();
        let inbound = Inbound {
            header: req,
            path: req.uri.path(),
            client_ip: "192.0.2.7".parse().ok(),
            secure,
        };
        (admit(s, &inbound, &mut out).await, out)
    }

    const UPSTREAMS: &str =
        "upstreams: {a: {backends: [{addr: 127.0.0.1:1}]}, b: {backends: [{addr: 127.0.0.1:2}]}}\n";

    #[tokio::test]
    async fn lookup_misses_and_wrong_methods_are_answered() {
        let s = snapshot(&format!(
            "{UPSTREAMS}routes: [{{name: r, path: /r, upstream: a, methods: [GET]}}]\n"
        ));
        let (a, _) = run(&s, &request("GET", "/nowhere", &[]), false).await;
        assert_eq!(a.flow, ErrorCode::RouteNotFound.into());
        let (a, _) = run(&s, &request("DELETE", "/r", &[]), false).await;
        let Flow::Deny(denial) = a.flow else {
            panic!("405 expected");
        };
        assert_eq!(denial.code, ErrorCode::MethodNotAllowed);
        assert_eq!(denial.headers[0].1, "GET");
        let (a, _) = run(&s, &request("GET", "/r/1", &[]), false).await;
        assert_eq!(a.flow, Flow::Continue);
        assert_eq!(a.route.map(|r| r.name.clone()).as_deref(), Some("r"));
    }

    #[tokio::test]
    async fn semicolons_redirects_and_websockets_are_checks_of_the_route() {
        let s = snapshot(&format!(
            "{UPSTREAMS}routes:\n  - {{name: plain, path: /plain, upstream: a}}\n  - {{name: matrix, path: /matrix, upstream: a, allow_semicolon: true}}\n  - {{name: ws, path: /ws, upstream: a, websocket: {{idle_timeout: 60s}}}}\n"
        ));
        let (a, _) = run(&s, &request("GET", "/plain/x;y=1", &[]), false).await;
        assert_eq!(a.flow, ErrorCode::BadRequest.into());
        assert!(a.route.is_some(), "the route is known, for the metrics");
        let (a, _) = run(&s, &request("GET", "/matrix/x;y=1", &[]), false).await;
        assert_eq!(a.flow, Flow::Continue);
        let upgrade = [("upgrade", "websocket"), ("connection", "upgrade")];
        let (a, out) = run(&s, &request("GET", "/plain", &upgrade), false).await;
        assert_eq!(a.flow, ErrorCode::WebSocketNotAllowed.into());
        assert!(!out.websocket);
        let (a, out) = run(&s, &request("GET", "/ws", &upgrade), false).await;
        assert_eq!(a.flow, Flow::Continue);
        assert!(out.websocket);
    }

    #[tokio::test]
    async fn plain_requests_are_sent_to_https_and_secure_ones_pass() {
        let folder = certificate_dir();
        let dir = folder.path();
        let s = snapshot(&format!(
            "{UPSTREAMS}listen: {{proxy_tls: {{addr: \"127.0.0.1:8443\", certificates: [{{cert: \"{d}/c.pem\", key: \"{d}/k.pem\"}}]}}}}\nroutes: [{{name: r, path: /, upstream: a, https_redirect: true}}]\n",
            d = dir.display()
        ));
        let (a, _) = run(&s, &request("GET", "/x?y=1", &[]), false).await;
        let location = HeaderValue::from_static("https://api.example:8443/x?y=1");
        let expected = Reply::empty(308, vec![(http::header::LOCATION, location)]);
        assert_eq!(a.flow, Flow::Reply(expected));
        let (a, _) = run(&s, &request("GET", "/x", &[]), true).await;
        assert_eq!(a.flow, Flow::Continue);
    }

    #[tokio::test]
    async fn a_split_route_picks_an_upstream_only_for_admitted_requests() {
        let s = snapshot(&format!(
            "{UPSTREAMS}auth: {{jwt: {{algorithm: HS256, secret: \"0123456789abcdef0123456789abcdef\"}}}}\nroutes:\n  - {{name: s, path: /s, upstreams: [{{name: a, weight: 1}}, {{name: b, weight: 1}}]}}\n  - {{name: locked, path: /locked, upstreams: [{{name: a, weight: 1}}, {{name: b, weight: 1}}], auth: {{required: true}}}}\n"
        ));
        let (a, _) = run(&s, &request("GET", "/s", &[]), false).await;
        assert!(a.arm.is_some_and(|arm| arm < 2));
        let (a, out) = run(&s, &request("GET", "/locked", &[]), false).await;
        assert_eq!(a.arm, None);
        assert!(matches!(a.flow, Flow::Deny(ref d) if d.code == ErrorCode::Unauthorized));
        assert!(
            out.auth.is_some(),
            "the auth outcome is kept for the metrics"
        );
    }

    /// A folder (removed when dropped) with a self-signed certificate for the HTTPS listener the
    /// redirect needs.
    fn certificate_dir() -> tempfile::TempDir {
        use openssl::{asn1::Asn1Time, ec, hash::MessageDigest, nid::Nid, pkey::PKey, x509};
        let folder = tempfile::tempdir().expect("dir");
        let dir = folder.path();
        let group = ec::EcGroup::from_curve_name(Nid::X9_62_PRIME256V1).expect("curve");
        let key = PKey::from_ec_key(ec::EcKey::generate(&group).expect("ec")).expect("key");
        let mut name = x509::X509NameBuilder::new().expect("name");
        name.append_entry_by_text("CN", "api.example").expect("cn");
        let name = name.build();
        let mut cert = x509::X509Builder::new().expect("cert");
        cert.set_version(2).expect("version");
        cert.set_subject_name(&name).expect("subject");
        cert.set_issuer_name(&name).expect("issuer");
        cert.set_pubkey(&key).expect("pubkey");
        cert.set_not_before(&Asn1Time::days_from_now(0).expect("t"))
            .expect("nb");
        cert.set_not_after(&Asn1Time::days_from_now(1).expect("t"))
            .expect("na");
        cert.sign(&key, MessageDigest::sha256()).expect("sign");
        let cert = cert.build();
        std::fs::write(dir.join("c.pem"), cert.to_pem().expect("pem")).expect("write");
        std::fs::write(
            dir.join("k.pem"),
            key.private_key_to_pem_pkcs8().expect("pem"),
        )
        .expect("write");
        folder
    }
}
