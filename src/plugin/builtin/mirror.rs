//! `request_mirror`: a sampled copy of the route's requests to a shadow service, sent after the
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
    /// The shadow service: `http://host:port` (or https); the request's path and query follow.
    url: String,
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

pub struct Mirror {
    base: String,
    sample: f64,
    timeout: Duration,
    in_flight: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl Middleware for Mirror {
    type Settings = Settings;
    const LOGGING_PHASE: bool = false;

    fn build(s: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        http_client::check_url(&s.url).map_err(|e| BuildError::at("url", e.to_string()))?;
        let uri: http::Uri = s
            .url
            .parse()
            .map_err(|_| BuildError::at("url", "not a URL"))?;
        if uri.path_and_query().is_some_and(|p| p.as_str() != "/") {
            return Err(BuildError::at(
                "url",
                "only scheme, host and port: the request's path follows",
            ));
        }
        let sample = s.sample.unwrap_or(1.0);
        if !(sample > 0.0 && sample <= 1.0) {
            return Err(BuildError::at("sample", "must be above 0 and at most 1"));
        }
        let max = s.max_in_flight.unwrap_or(256);
        if max == 0 {
            return Err(BuildError::at("max_in_flight", "must be at least 1"));
        }
        Ok(Mirror {
            base: s.url.trim_end_matches('/').to_owned(),
            sample,
            timeout: s.timeout.map_or(Duration::from_secs(5), |d| d.0),
            in_flight: Arc::new(Semaphore::new(max)),
        })
    }

    async fn request(&self, req: &mut RequestView<'_>) -> Flow {
        if req.has_body || (self.sample < 1.0 && fastrand::f64() >= self.sample) {
            return Flow::Continue;
        }
        let Ok(permit) = Arc::clone(&self.in_flight).try_acquire_owned() else {
            log::debug!(
                "request_mirror: {} copies under way, one skipped",
                self.base
            );
            return Flow::Continue;
        };
        let target = req.header.uri.path_and_query().map_or("/", |p| p.as_str());
        let url = format!("{}{target}", self.base);
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
