//! `request_mirror`: a sampled copy of the route's requests to a shadow upstream (a backend of
//! a configured upstream, picked by its strategy among the healthy ones) or a URL, sent after the
//! request was admitted and never waited for: its answer is read and dropped, its failures are
//! logged at debug. Requests with a body are not copied (reading the body first would delay the
//! real request). At most `max_in_flight` copies are under way; past it, copies are skipped.

use super::framing;
use crate::config::units::PositiveDuration;
use crate::http_client;
use crate::plugin::{BuildContext, BuildError, Flow, Middleware, RequestView};
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The shadow upstream's name (spoken to over plain HTTP/1.1); or
    #[serde(default)]
    upstream: Option<String>,
    /// the shadow service's `http://host:port` (or https). The request's path and query follow.
    #[serde(default)]
    url: Option<String>,
    /// The share of requests copied, above 0 and at most 1. Default 1.
    #[serde(default)]
    sample: Option<f64>,
    /// How long a copy may take. Default 5s.
    #[serde(default)]
    timeout: Option<PositiveDuration>,
    /// Copies under way at most. Default 256.
    #[serde(default)]
    max_in_flight: Option<usize>,
}

/// Where copies go.
enum Shadow {
    Upstream(String),
    Url(String),
}

pub struct Mirror {
    shadow: Shadow,
    sample: f64,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl Middleware for Mirror {
    type Settings = Settings;
    const LOGGING_PHASE: bool = false;

    fn build(s: Settings, ctx: &BuildContext) -> Result<Self, BuildError> {
        let shadow = match (s.upstream, s.url) {
            (Some(name), None) => {
                if !ctx.has_upstream(&name) {
                    return Err(BuildError::at(
                        "upstream",
                        format!("unknown upstream {name:?}"),
                    ));
                }
                Shadow::Upstream(name)
            }
            (None, Some(url)) => {
                http_client::check_url(&url).map_err(|e| BuildError::at("url", e.to_string()))?;
                let uri: http::Uri = url
                    .parse()
                    .map_err(|_| BuildError::at("url", "not a URL"))?;
                if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
                    return Err(BuildError::at(
                        "url",
                        "only scheme, host and port: the request's path follows",
                    ));
                }
                Shadow::Url(url.trim_end_matches('/').to_owned())
            }
            _ => return Err(BuildError::new("set one of upstream and url")),
        };
        let sample = s.sample.unwrap_or(1.0);
        if !(sample > 0.0 && sample <= 1.0) {
            return Err(BuildError::at("sample", "must be above 0 and at most 1"));
        }
        let max = s.max_in_flight.unwrap_or(256);
        if max == 0 {
            return Err(BuildError::at("max_in_flight", "must be at least 1"));
        }
        Ok(Mirror {
            shadow,
            sample,
            timeout: s.timeout.map_or(Duration::from_secs(5), |d| d.0),
            in_flight: Arc::new(Semaphore::new(max)),
        })
    }

    async fn request(&self, req: &mut RequestView<'_>) -> Flow {
        if req.has_body || (self.sample < 1.0 && fastrand::f64() >= self.sample) {
            return Flow::Continue;
        }
        let base = match &self.shadow {
            Shadow::Url(url) => url.clone(),
            Shadow::Upstream(name) => match req.backend(name) {
                Some(b) if !b.tls => format!("http://{}", b.addr),
                Some(_) => {
                    log::debug!(
                        "request_mirror: {name} is spoken to over TLS; copies go over HTTP only"
                    );
                    return Flow::Continue;
                }
                None => {
                    log::debug!("request_mirror: no healthy backend in {name}, one copy skipped");
                    return Flow::Continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            log::debug!("request_mirror: {base}: copies under way at most, one skipped");
            return Flow::Continue;
        };
        let target = req.header.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{base}{target}");
        let mut headers: Vec<(HeaderName, HeaderValue)> = req
            .header
            .headers
            .iter()
            .filter(|(n, _)| !framing(n) && *n != http::header::HOST && *n != http::header::EXPECT)
            .map(|(n, v)| (n.clone(), v.clone()))
            .collect();
        if let Ok(id) = HeaderValue::from_str(req.vars.request_id()) {
            headers.retain(|(n, _)| n != "x-request-id");
            headers.push((HeaderName::from_static("x-request-id"), id));
        }
        let method = req.header.method.as_str().to_owned();
        let timeout = self.timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let copy = http_client::send_copy(&method, &url, &headers, timeout, 1 << 20);
            match tokio::time::timeout(timeout, copy).await {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => log::debug!("request_mirror {url}: {e}"),
                Err(_) => log::debug!("request_mirror {url}: no answer in {timeout:?}"),
            }
        });
        Flow::Continue
    }
}
