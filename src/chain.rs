//! A route's checks, compiled once at load time into the order they run in: client IP rules,
//! CORS preflight, authentication and roles, rate limit, body limit. Each step calls into its
//! own feature module and returns a [`Flow`]; the first step that does not continue decides.
//! Adding a check means a variant here, an arm in [`Chain::run`], and its own module.

use crate::auth::{Auth, AuthEvent, AuthPolicy, Caller};
use crate::outcome::{ErrorCode, Flow};
use crate::ratelimit::{Decision, KeyInputs, Limiter};
use crate::security::{Cors, IpRules};
use pingora::http::RequestHeader;
use std::net::IpAddr;
use std::sync::Arc;

/// One check of a route.
#[derive(Debug)]
enum Check {
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
}

impl Chain {
    pub fn build(parts: ChainParts) -> Chain {
        let mut checks = Vec::with_capacity(5);
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
                Check::Preflight(_) => continue,
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
