//! `security.cors`: preflights answered by the gateway, CORS headers on actual answers for
//! allowed origins, nothing at all for other origins.

use super::SecurityError;
use crate::config::file::CorsConfig;
use crate::config::ConfigErrors;
use crate::header_edit::HeaderEdit;
use crate::method_set::MethodSet;
use crate::outcome::Reply;
use http::{header, HeaderValue};
use pingora::OrErr;

const DEFAULT_METHODS: &str = "GET, HEAD, POST, PUT, PATCH, DELETE";

#[derive(Debug, Clone)]
pub struct Cors {
    any_origin: bool,
    origins: Vec<String>,
    allow_methods: HeaderValue,
    allow_headers: Option<HeaderValue>,
    expose_headers: Option<HeaderValue>,
    max_age: Option<HeaderValue>,
    credentials: bool,
}

fn joined(list: &[String]) -> Result<Option<HeaderValue>, SecurityError> {
    if list.is_empty() {
        return Ok(None);
    }
    let text = list.join(", ");
    HeaderValue::from_str(&text)
        .map(Some)
        .map_err(|_| SecurityError::HeaderValue(text))
}

impl Cors {
    /// Checks and builds `security.cors`; `None` when it has problems (all reported).
    pub fn build(cfg: &CorsConfig, errors: &mut ConfigErrors) -> Option<Cors> {
        let before = errors.len();
        if cfg.allow_credentials && cfg.allow_origins.iter().any(|o| o == "*") {
            errors.push(
                "security.cors.allow_origins",
                SecurityError::AnyOriginWithCredentials,
            );
        }
        for (i, m) in cfg.allow_methods.iter().enumerate() {
            if MethodSet::bit(m).is_none() {
                errors.push(
                    format!("security.cors.allow_methods[{i}]"),
                    SecurityError::Method(m.clone()),
                );
            }
        }
        let mut field = |name: &str, r: Result<Option<HeaderValue>, SecurityError>| {
            r.unwrap_or_else(|e| {
                errors.push(format!("security.cors.{name}"), e);
                None
            })
        };
        let allow_methods = field("allow_methods", joined(&cfg.allow_methods))
            .unwrap_or(HeaderValue::from_static(DEFAULT_METHODS));
        let allow_headers = field("allow_headers", joined(&cfg.allow_headers));
        let expose_headers = field("expose_headers", joined(&cfg.expose_headers));
        let cors = Cors {
            any_origin: cfg.allow_origins.iter().any(|o| o == "*"),
            origins: cfg
                .allow_origins
                .iter()
                .filter(|o| *o != "*")
                .cloned()
                .collect(),
            allow_methods,
            allow_headers,
            expose_headers,
            max_age: cfg.max_age.map(|d| HeaderValue::from(d.0.as_secs())),
            credentials: cfg.allow_credentials,
        };
        (errors.len() == before).then_some(cors)
    }

    /// The `Access-Control-Allow-Origin` value for `origin`, or `None` when it is not allowed.
    fn allow_origin(&self, origin: &HeaderValue) -> Option<HeaderValue> {
        let text = origin.to_str().ok()?;
        if self.origins.iter().any(|o| o == text) {
            Some(origin.clone())
        } else if self.any_origin {
            Some(HeaderValue::from_static("*"))
        } else {
            None
        }
    }

    /// Adds the CORS headers of an actual (non-preflight) answer. Nothing for other origins.
    pub fn apply<H: HeaderEdit>(
        &self,
        origin: Option<&HeaderValue>,
        resp: &mut H,
    ) -> pingora::Result<()> {
        let Some(allowed) = origin.and_then(|o| self.allow_origin(o)) else {
            return Ok(());
        };
        self.common(allowed, resp)?;
        if let Some(expose) = &self.expose_headers {
            resp.set(header::ACCESS_CONTROL_EXPOSE_HEADERS, expose.clone())?;
        }
        Ok(())
    }

    /// The answer to a preflight: 204, with the CORS headers when the origin is allowed and
    /// none at all when it is not (the browser then refuses the actual request).
    pub fn preflight(&self, origin: Option<&HeaderValue>) -> Reply {
        let mut headers = Vec::with_capacity(6);
        if let Some(allowed) = origin.and_then(|o| self.allow_origin(o)) {
            let echoed = allowed != "*";
            headers.push((header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed));
            if self.credentials {
                headers.push((
                    header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                    HeaderValue::from_static("true"),
                ));
            }
            if echoed {
                headers.push((header::VARY, HeaderValue::from_static("Origin")));
            }
            headers.push((
                header::ACCESS_CONTROL_ALLOW_METHODS,
                self.allow_methods.clone(),
            ));
            if let Some(h) = &self.allow_headers {
                headers.push((header::ACCESS_CONTROL_ALLOW_HEADERS, h.clone()));
            }
            if let Some(age) = &self.max_age {
                headers.push((header::ACCESS_CONTROL_MAX_AGE, age.clone()));
            }
        }
        Reply::empty(204, headers)
    }

    fn common<H: HeaderEdit>(&self, allowed: HeaderValue, resp: &mut H) -> pingora::Result<()> {
        let echoed = allowed != "*";
        resp.set(header::ACCESS_CONTROL_ALLOW_ORIGIN, allowed)?;
        if self.credentials {
            resp.set(
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            )?;
        }
        if echoed {
            let vary = match resp
                .headers()
                .get(http::header::VARY)
                .and_then(|v| v.to_str().ok())
            {
                Some(v)
                    if v.split(',')
                        .any(|p| p.trim().eq_ignore_ascii_case("origin")) =>
                {
                    None
                }
                Some(v) => Some(
                    HeaderValue::try_from(format!("{v}, Origin"))
                        .or_err(pingora::ErrorType::InvalidHTTPHeader, "vary")?,
                ),
                None => Some(HeaderValue::from_static("Origin")),
            };
            if let Some(vary) = vary {
                resp.set(http::header::VARY, vary)?;
            }
        }
        Ok(())
    }
}

/// True for a CORS preflight: `OPTIONS` with `Origin` and `Access-Control-Request-Method`.
pub fn is_preflight(req: &pingora::http::RequestHeader) -> bool {
    req.method == http::Method::OPTIONS
        && req.headers.contains_key(http::header::ORIGIN)
        && req
            .headers
            .contains_key(http::header::ACCESS_CONTROL_REQUEST_METHOD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pingora::http::ResponseHeader;

    fn cors(yaml: &str) -> Cors {
        let cfg: CorsConfig = serde_yaml::from_str(yaml).expect("cors");
        let mut errors = ConfigErrors::default();
        let built = Cors::build(&cfg, &mut errors);
        assert!(errors.is_empty(), "{errors}");
        built.expect("valid cors")
    }

    fn answer(c: &Cors, origin: &str, vary: Option<&str>) -> ResponseHeader {
        let mut resp = ResponseHeader::build(200, None).expect("response");
        if let Some(v) = vary {
            resp.insert_header("vary", v).expect("vary");
        }
        c.apply(
            Some(&HeaderValue::from_str(origin).expect("origin")),
            &mut resp,
        )
        .expect("apply");
        resp
    }

    fn get<'a>(resp: &'a ResponseHeader, name: &str) -> Option<&'a str> {
        resp.headers.get(name).and_then(|v| v.to_str().ok())
    }

    #[test]
    fn listed_origins_are_echoed_others_get_nothing() {
        let c = cors("{allow_origins: [https://app.example.com], allow_credentials: true, expose_headers: [X-Request-Id]}");
        let ok = answer(&c, "https://app.example.com", None);
        assert_eq!(
            get(&ok, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(get(&ok, "access-control-allow-credentials"), Some("true"));
        assert_eq!(
            get(&ok, "access-control-expose-headers"),
            Some("X-Request-Id")
        );
        assert_eq!(get(&ok, "vary"), Some("Origin"));
        for other in [
            "https://app.example.com.evil.com",
            "https://APP.example.com",
            "http://app.example.com",
            "null",
        ] {
            let resp = answer(&c, other, None);
            assert!(resp.headers.is_empty(), "{other} got CORS headers");
        }
    }

    #[test]
    fn wildcard_answers_star_without_vary() {
        let c = cors("{allow_origins: ['*']}");
        let resp = answer(&c, "https://anyone.example", None);
        assert_eq!(get(&resp, "access-control-allow-origin"), Some("*"));
        assert!(get(&resp, "access-control-allow-credentials").is_none());
        assert!(get(&resp, "vary").is_none());
    }

    #[test]
    fn vary_is_extended_not_replaced() {
        let c = cors("{allow_origins: [https://a.example]}");
        let resp = answer(&c, "https://a.example", Some("Accept-Encoding"));
        assert_eq!(get(&resp, "vary"), Some("Accept-Encoding, Origin"));
        let resp = answer(&c, "https://a.example", Some("origin"));
        assert_eq!(
            get(&resp, "vary"),
            Some("origin"),
            "already varies on Origin"
        );
    }

    #[test]
    fn preflight_lists_what_is_allowed() {
        let c = cors("{allow_origins: [https://a.example], allow_methods: [GET, POST], allow_headers: [Authorization], max_age: 10m}");
        let reply = c.preflight(Some(&HeaderValue::from_static("https://a.example")));
        assert_eq!(reply.status, 204);
        let find = |name: header::HeaderName| {
            reply
                .headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_str().expect("ascii"))
        };
        assert_eq!(
            find(header::ACCESS_CONTROL_ALLOW_METHODS),
            Some("GET, POST")
        );
        assert_eq!(
            find(header::ACCESS_CONTROL_ALLOW_HEADERS),
            Some("Authorization")
        );
        assert_eq!(find(header::ACCESS_CONTROL_MAX_AGE), Some("600"));
        let refused = c.preflight(Some(&HeaderValue::from_static("https://b.example")));
        assert_eq!(refused.status, 204);
        assert!(refused.headers.is_empty());
        assert!(c.preflight(None).headers.is_empty());
    }

    #[test]
    fn star_with_credentials_and_bad_methods_are_config_errors() {
        let cfg: CorsConfig = serde_yaml::from_str(
            "{allow_origins: ['*'], allow_credentials: true, allow_methods: [GET, FETCH]}",
        )
        .expect("cors");
        let mut errors = ConfigErrors::default();
        assert!(Cors::build(&cfg, &mut errors).is_none());
        let text = errors.to_string();
        assert!(
            text.contains(
                "security.cors.allow_origins: \"*\" is not allowed with allow_credentials"
            ),
            "{text}"
        );
        assert!(
            text.contains("security.cors.allow_methods[1]: unknown method \"FETCH\""),
            "{text}"
        );
    }
}
