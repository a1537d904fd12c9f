//! `security.cors`: preflights answered by the gateway, CORS headers on actual answers for
//! allowed origins, nothing at all for other origins.

use crate::config::file::CorsConfig;
use http::HeaderValue;
use pingora::http::ResponseHeader;

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

fn joined(list: &[String]) -> Result<Option<HeaderValue>, String> {
    if list.is_empty() {
        return Ok(None);
    }
    let text = list.join(", ");
    HeaderValue::from_str(&text)
        .map(Some)
        .map_err(|_| format!("invalid header value {text:?}"))
}

impl Cors {
    /// Problems are `(field, message)`; `compile` has checked `*` with credentials.
    pub fn build(cfg: &CorsConfig) -> Result<Cors, Vec<(String, String)>> {
        let mut problems = Vec::new();
        let mut field = |name: &str, r: Result<Option<HeaderValue>, String>| {
            r.unwrap_or_else(|e| {
                problems.push((name.to_owned(), e));
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
        if problems.is_empty() {
            Ok(cors)
        } else {
            Err(problems)
        }
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
    pub fn apply(
        &self,
        origin: Option<&HeaderValue>,
        resp: &mut ResponseHeader,
    ) -> pingora::Result<()> {
        let Some(allowed) = origin.and_then(|o| self.allow_origin(o)) else {
            return Ok(());
        };
        self.common(allowed, resp)?;
        if let Some(expose) = &self.expose_headers {
            resp.insert_header("access-control-expose-headers", expose.clone())?;
        }
        Ok(())
    }

    /// The headers of a preflight answer, or `None` when the origin is not allowed.
    pub fn preflight(
        &self,
        origin: Option<&HeaderValue>,
        resp: &mut ResponseHeader,
    ) -> pingora::Result<bool> {
        let Some(allowed) = origin.and_then(|o| self.allow_origin(o)) else {
            return Ok(false);
        };
        self.common(allowed, resp)?;
        resp.insert_header("access-control-allow-methods", self.allow_methods.clone())?;
        if let Some(h) = &self.allow_headers {
            resp.insert_header("access-control-allow-headers", h.clone())?;
        }
        if let Some(age) = &self.max_age {
            resp.insert_header("access-control-max-age", age.clone())?;
        }
        Ok(true)
    }

    fn common(&self, allowed: HeaderValue, resp: &mut ResponseHeader) -> pingora::Result<()> {
        let echoed = allowed != "*";
        resp.insert_header("access-control-allow-origin", allowed)?;
        if self.credentials {
            resp.insert_header("access-control-allow-credentials", "true")?;
        }
        if echoed {
            let vary = match resp
                .headers
                .get(http::header::VARY)
                .and_then(|v| v.to_str().ok())
            {
                Some(v)
                    if v.split(',')
                        .any(|p| p.trim().eq_ignore_ascii_case("origin")) =>
                {
                    None
                }
                Some(v) => Some(format!("{v}, Origin")),
                None => Some("Origin".to_owned()),
            };
            if let Some(vary) = vary {
                resp.insert_header(http::header::VARY, vary)?;
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
