//! A route's checks, compiled once at load time into the order they run in: `;` in the path,
//! the redirect to HTTPS, WebSocket handshakes, client IP rules, CORS preflight, authentication
//! and roles, rate limit, body limit. It holds every per-route decision about a request. Each step calls into its
//! own feature module and returns a [`Flow`]; the first step that does not continue decides.
//! Adding a check means a variant here, an arm in [`Chain::run`], and its own module.

use crate::auth::{Auth, AuthEvent, AuthPolicy, Caller};
use crate::outcome::{ErrorCode, Flow, Reply};
use crate::ratelimit::{Decision, KeyInputs, Limiter};
use crate::security::{Cors, IpRules};
use http::HeaderValue;
use pingora::http::RequestHeader;
use std::net::IpAddr;
use std::sync::Arc;

/// One check of a route.
#[derive(Debug)]
enum Check {
    /// Paths with `;` get 400 (the route does not set `allow_semicolon`).
    NoSemicolon,
    /// Plain-HTTP requests are sent to HTTPS on this port (`https_redirect`).
    HttpsRedirect(u16),
    /// WebSocket handshakes: proxied when the route allows them (`true`), else refused.
    WebSocket(bool),
    /// Client IP allow/deny lists (global, group and route combined).
    IpRules(IpRules),
    /// Answers CORS preflights for the route's path.
    Preflight(Arc<Cors>),
    /// `auth.required`, with the roles the caller needs.
    Auth(AuthPolicy),
    RateLimit(Arc<Limiter>),
    /// A declared `Content-Length` over this many bytes is refused (streamed bodies are counted
    /// by the proxy as they arrive).
    BodyLimit(u64),
}

/// What a route's chain is built from; a part left out adds no step.
#[derive(Default)]
pub struct ChainParts {
    pub allow_semicolon: bool,
    pub https_redirect: Option<u16>,
    pub websocket: bool,
    pub ip_rules: IpRules,
    pub cors: Option<Arc<Cors>>,
    pub auth: AuthPolicy,
    pub limiter: Option<Arc<Limiter>>,
    pub max_body_size: Option<u64>,
}

/// The checks of one route, in order.
#[derive(Debug, Default)]
pub struct Chain {
    checks: Box<[Check]>,
}

/// What the chain reads of a request.
pub struct Request<'a> {
    pub header: &'a RequestHeader,
    /// The normalized path the route matched.
    pub path: &'a str,
    pub client_ip: Option<IpAddr>,
    /// A CORS preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`).
    pub preflight: bool,
    /// It came over TLS, or a trusted proxy in front terminated TLS (`X-Forwarded-Proto: https`).
    pub secure: bool,
    pub route: &'a str,
    /// The snapshot's `auth` section.
    pub auth: Option<&'a Auth>,
}

/// What the chain learnt about the caller; written only by [`Chain::run`].
#[derive(Debug, Default)]
pub struct Admitted {
    /// Who the request authenticated as.
    pub caller: Option<Arc<Caller>>,
    /// The authentication outcome, when the route requires it.
    pub auth: Option<AuthEvent>,
    /// The rate-limit decision, for the `RateLimit-*` headers.
    pub rate_limit: Option<Decision>,
    /// `Some(true)` when the limit refused the request, `Some(false)` when it let it through.
    pub limited: Option<bool>,
    /// A WebSocket handshake the route proxies.
    pub websocket: bool,
}

impl Chain {
    pub fn build(parts: ChainParts) -> Chain {
        let mut checks = Vec::with_capacity(8);
        if !parts.allow_semicolon {
            checks.push(Check::NoSemicolon);
        }
        if let Some(port) = parts.https_redirect {
            checks.push(Check::HttpsRedirect(port));
        }
        checks.push(Check::WebSocket(parts.websocket));
        if !parts.ip_rules.is_empty() {
            checks.push(Check::IpRules(parts.ip_rules));
        }
        if let Some(cors) = parts.cors {
            checks.push(Check::Preflight(cors));
        }
        if parts.auth.required {
            checks.push(Check::Auth(parts.auth));
        }
        if let Some(limiter) = parts.limiter {
            checks.push(Check::RateLimit(limiter));
        }
        if let Some(limit) = parts.max_body_size {
            checks.push(Check::BodyLimit(limit));
        }
        Chain {
            checks: checks.into_boxed_slice(),
        }
    }

    /// The route's limiter, so a reload with the same policy can keep its counters.
    pub fn limiter(&self) -> Option<&Arc<Limiter>> {
        self.checks.iter().find_map(|c| match c {
            Check::RateLimit(l) => Some(l),
            _ => None,
        })
    }

    /// The route's checks as they apply, every level merged and defaults filled in: `auth`
    /// (null when open), `rate_limit` (null when none), `ip_rules`, `max_body_size`.
    pub fn effective(&self) -> serde_json::Value {
        let mut out = serde_json::json!({
            "auth": null,
            "rate_limit": null,
            "ip_rules": false,
            "max_body_size": null,
        });
        for check in self.checks.iter() {
            let (key, value) = match check {
                Check::IpRules(_) => ("ip_rules", true.into()),
                Check::NoSemicolon
                | Check::HttpsRedirect(_)
                | Check::WebSocket(_)
                | Check::Preflight(_) => continue,
                Check::Auth(p) => ("auth", serde_json::json!({ "roles": p.roles })),
                Check::RateLimit(l) => ("rate_limit", l.effective()),
                Check::BodyLimit(n) => ("max_body_size", (*n).into()),
            };
            out[key] = value;
        }
        out
    }

    /// Runs the checks in order until one answers.
    pub async fn run(&self, req: &Request<'_>, out: &mut Admitted) -> Flow {
        for check in self.checks.iter() {
            let flow = match check {
                Check::NoSemicolon if req.path.contains(';') => ErrorCode::BadRequest.into(),
                Check::NoSemicolon => Flow::Continue,
                Check::HttpsRedirect(_) if req.secure => Flow::Continue,
                Check::HttpsRedirect(port) => https_redirect(req.header, *port),
                Check::WebSocket(allowed) => match (is_websocket(req.header), allowed) {
                    (false, _) => Flow::Continue,
                    (true, false) => ErrorCode::WebSocketNotAllowed.into(),
                    (true, true) => {
                        out.websocket = true;
                        Flow::Continue
                    }
                },
                Check::IpRules(rules) => ip_rules(rules, req.client_ip),
                Check::Preflight(cors) if req.preflight => {
                    Flow::Reply(cors.preflight(req.header.headers.get(http::header::ORIGIN)))
                }
                Check::Preflight(_) => Flow::Continue,
                Check::Auth(policy) => {
                    let checked = policy.check(req.auth, req.header);
                    out.auth = Some(checked.event);
                    match checked.caller {
                        Ok(caller) => {
                            out.caller = Some(caller);
                            Flow::Continue
                        }
                        Err(denial) => Flow::Deny(denial),
                    }
                }
                Check::RateLimit(limiter) => {
                    let inputs = KeyInputs {
                        client_ip: req.client_ip,
                        user: out.caller.as_ref().map(|c| c.subject.as_str()),
                        path: req.path,
                        route: req.route,
                        headers: &req.header.headers,
                    };
                    let admission = limiter.admit(&inputs).await;
                    out.rate_limit = admission.headers;
                    out.limited = Some(admission.denial.is_some());
                    admission.denial.map_or(Flow::Continue, Flow::Deny)
                }
                Check::BodyLimit(limit) => body_limit(*limit, req.header),
            };
            if flow != Flow::Continue {
                return flow;
            }
        }
        Flow::Continue
    }
}

/// 308 to `https://<host>[:port]<path>?<query>` for the request's own host (its `Host`, or the
/// URI's authority for HTTP/2); 400 when that is missing or not a plain host.
fn https_redirect(req: &RequestHeader, port: u16) -> Flow {
    match https_location(req, port) {
        Some(location) => Flow::Reply(Reply::empty(308, vec![(http::header::LOCATION, location)])),
        None => ErrorCode::BadRequest.into(),
    }
}

fn https_location(req: &RequestHeader, port: u16) -> Option<HeaderValue> {
    let authority = match req.headers.get(http::header::HOST) {
        Some(h) => http::uri::Authority::try_from(h.as_bytes()).ok()?,
        None => req.uri.authority()?.clone(),
    };
    if authority.as_str().contains('@') {
        return None;
    }
    let host = authority.host();
    let path = req.uri.path_and_query().map_or("/", |p| p.as_str());
    let location = if port == 443 {
        format!("https://{host}{path}")
    } else {
        format!("https://{host}:{port}{path}")
    };
    HeaderValue::from_str(&location).ok()
}

/// A WebSocket handshake: HTTP/1.1 with `Upgrade: websocket` (any case, possibly in a list).
fn is_websocket(req: &RequestHeader) -> bool {
    req.version == http::Version::HTTP_11
        && req
            .headers
            .get_all(http::header::UPGRADE)
            .iter()
            .flat_map(|v| v.as_bytes().split(|b| *b == b','))
            .any(|p| p.trim_ascii().eq_ignore_ascii_case(b"websocket"))
}

fn ip_rules(rules: &IpRules, client_ip: Option<IpAddr>) -> Flow {
    if rules.admit(client_ip) {
        Flow::Continue
    } else {
        ErrorCode::Forbidden.into()
    }
}

fn body_limit(limit: u64, req: &RequestHeader) -> Flow {
    let declared = req
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit) {
        ErrorCode::PayloadTooLarge.into()
    } else {
        Flow::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> RequestHeader {
        let mut req = RequestHeader::build("POST", b"/x", None).expect("request");
        for (n, v) in headers {
            req.insert_header(n.to_string(), *v).expect("header");
        }
        req
    }

    fn run(chain: &Chain, req: &RequestHeader, ip: &str) -> (Flow, Admitted) {
        let mut out = Admitted::default();
        let r = Request {
            header: req,
            path: "/x",
            client_ip: ip.parse().ok(),
            preflight: false,
            secure: false,
            route: "r",
            auth: None,
        };
        let flow = futures::executor::block_on(chain.run(&r, &mut out));
        (flow, out)
    }

    #[test]
    fn checks_run_in_order_and_the_first_refusal_wins() {
        let rules = IpRules {
            allow: vec!["10.0.0.0/8".parse().expect("cidr")],
            deny: vec![],
        };
        let chain = Chain::build(ChainParts {
            ip_rules: rules,
            auth: AuthPolicy {
                required: true,
                roles: vec![],
            },
            max_body_size: Some(10),
            ..ChainParts::default()
        });
        let big = request(&[("content-length", "11")]);
        let (flow, out) = run(&chain, &big, "192.168.0.1");
        assert_eq!(flow, ErrorCode::Forbidden.into(), "IP rules come first");
        assert!(out.auth.is_none(), "auth never ran");
        let (flow, out) = run(&chain, &big, "10.1.1.1");
        assert_eq!(flow, ErrorCode::Unauthorized.into(), "then auth");
        assert_eq!(out.auth, Some(AuthEvent::failure("missing")));
    }

    #[test]
    fn an_empty_chain_continues_and_body_limits_read_content_length() {
        let (flow, _) = run(&Chain::default(), &request(&[]), "1.2.3.4");
        assert_eq!(flow, Flow::Continue);
        let chain = Chain::build(ChainParts {
            max_body_size: Some(10),
            ..ChainParts::default()
        });
        let (flow, _) = run(&chain, &request(&[("content-length", "10")]), "1.2.3.4");
        assert_eq!(flow, Flow::Continue);
        let (flow, _) = run(&chain, &request(&[("content-length", "11")]), "1.2.3.4");
        assert_eq!(flow, ErrorCode::PayloadTooLarge.into());
    }
}
