//! `forward_auth`: asks an authorisation service about each request (nginx `auth_request`,
//! Envoy `ext_authz`, Traefik `forwardAuth`). A 2xx admits it and copies the configured headers
//! of that answer to the backend; any other answer goes back to the client as it came (a 302 to
//! a sign-in page, a 401 with its challenge). A timeout, a refused connection or a broken answer
//! is a denial (503 `auth_unavailable`), never an admission.

use super::framing;
use crate::config::units::PositiveDuration;
use crate::http_client;
use crate::plugin::{
    BuildContext, BuildError, ErrorCode, Flow, Middleware, Reply, RequestView, UpstreamView,
};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::time::Duration;

/// The largest answer body read from the service (its denials are sent to the client).
const MAX_ANSWER: usize = 64 * 1024;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The service's URL (`http://` or `https://`); the request is a GET to it.
    url: String,
    /// The whole exchange with the service, at most. Default 2s.
    #[serde(default)]
    timeout: Option<PositiveDuration>,
    /// Client headers sent to the service. Default `[authorization, cookie]`.
    #[serde(default)]
    request_headers: Option<Vec<String>>,
    /// Headers of the service's 2xx answer that the backend gets (any the client sent under
    /// these names are removed first).
    #[serde(default)]
    upstream_headers: Vec<String>,
}

pub struct ForwardAuth {
    url: String,
    timeout: Duration,
    request_headers: Vec<HeaderName>,
    upstream_headers: Vec<HeaderName>,
}

/// What the services of a request's `forward_auth` entries said the backend should get.
#[derive(Clone, Default)]
struct Granted(Vec<(HeaderName, HeaderValue)>);

const X_FORWARDED_METHOD: HeaderName = HeaderName::from_static("x-forwarded-method");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_URI: HeaderName = HeaderName::from_static("x-forwarded-uri");
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

fn names(at: &str, list: &[String]) -> Result<Vec<HeaderName>, BuildError> {
    list.iter()
        .enumerate()
        .map(|(i, n)| {
            HeaderName::try_from(n.as_str()).map_err(|_| {
                BuildError::at(format!("{at}[{i}]"), format!("{n:?} is not a header name"))
            })
        })
        .collect()
}

#[async_trait::async_trait]
impl Middleware for ForwardAuth {
    type Settings = Settings;
    const LOGGING_PHASE: bool = false;

    fn build(s: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        http_client::check_url(&s.url).map_err(|e| BuildError::at("url", e.to_string()))?;
        let default = ["authorization".to_owned(), "cookie".to_owned()];
        Ok(ForwardAuth {
            url: s.url,
            timeout: s.timeout.map_or(Duration::from_secs(2), |t| t.0),
            request_headers: names(
                "request_headers",
                s.request_headers.as_deref().unwrap_or(&default),
            )?,
            upstream_headers: names("upstream_headers", &s.upstream_headers)?,
        })
    }

    async fn request(&self, req: &mut RequestView<'_>) -> Flow {
        let mut headers = Vec::with_capacity(self.request_headers.len() + 6);
        for name in &self.request_headers {
            for v in req.header.headers.get_all(name) {
                headers.push((name.clone(), v.clone()));
            }
        }
        let vars = &req.vars;
        let uri = req.header.uri.path_and_query().map_or("/", |p| p.as_str());
        let described = [
            (X_FORWARDED_METHOD, Some(vars.method())),
            (X_FORWARDED_PROTO, Some(vars.scheme())),
            (X_FORWARDED_HOST, vars.host()),
            (X_FORWARDED_URI, Some(uri)),
            (X_REQUEST_ID, Some(vars.request_id())),
        ];
        for (name, value) in described {
            if let Some(v) = value.and_then(|v| HeaderValue::from_str(v).ok()) {
                headers.push((name, v));
            }
        }
        if let Some(ip) = vars.client_ip() {
            if let Ok(v) = HeaderValue::from_str(&ip.to_string()) {
                headers.push((X_FORWARDED_FOR, v));
            }
        }
        let call = http_client::get_with(&self.url, &headers, self.timeout, MAX_ANSWER);
        let answer = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(e)) => {
                log::warn!("forward_auth {}: {e}", self.url);
                return ErrorCode::AuthUnavailable.into();
            }
            Err(_) => {
                log::warn!("forward_auth {}: no answer in {:?}", self.url, self.timeout);
                return ErrorCode::AuthUnavailable.into();
            }
        };
        if (200..300).contains(&answer.status) {
            let mut granted = req.slot.get::<Granted>().cloned().unwrap_or_default();
            for name in &self.upstream_headers {
                for v in answer.headers.get_all(name) {
                    granted.0.push((name.clone(), v.clone()));
                }
            }
            req.slot.insert(granted);
            return Flow::Continue;
        }
        if !(300..600).contains(&answer.status) {
            return ErrorCode::AuthUnavailable.into();
        }
        let headers = answer
            .headers
            .iter()
            .filter(|(n, _)| !framing(n) && *n != http::header::PROXY_AUTHENTICATE)
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        Flow::Reply(Reply {
            status: answer.status,
            body: Bytes::from(answer.body),
            headers,
            no_store: false,
        })
    }

    fn upstream_request(&self, req: &mut UpstreamView<'_>) -> Result<(), BuildError> {
        for name in &self.upstream_headers {
            req.head.remove_header(name);
        }
        if let Some(granted) = req.slot.get::<Granted>() {
            for (name, value) in &granted.0 {
                if self.upstream_headers.contains(name) {
                    req.head.append_header(name.clone(), value.clone());
                }
            }
        }
        Ok(())
    }
}
