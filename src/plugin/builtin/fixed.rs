//! `fixed_response`: answers the route's requests itself (a maintenance page, a stub).

use crate::plugin::{BuildContext, BuildError, Flow, Middleware, Reply, RequestView};
use bytes::Bytes;
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Default 200.
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    body: String,
    /// Default `text/plain; charset=utf-8` (when there is a body).
    #[serde(default)]
    content_type: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

fn ok() -> u16 {
    200
}

pub struct FixedResponse {
    status: u16,
    body: Bytes,
    headers: Vec<(HeaderName, HeaderValue)>,
}

#[async_trait::async_trait]
impl Middleware for FixedResponse {
    type Settings = Settings;
    const LOGGING_PHASE: bool = false;

    fn build(s: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        if !(200..=599).contains(&s.status) {
            return Err(BuildError::at("status", "must be between 200 and 599"));
        }
        let mut headers = Vec::with_capacity(s.headers.len() + 1);
        let content_type = s
            .content_type
            .or_else(|| (!s.body.is_empty()).then(|| "text/plain; charset=utf-8".to_owned()));
        if let Some(ct) = content_type {
            let v = HeaderValue::try_from(ct)
                .map_err(|_| BuildError::at("content_type", "not a header value"))?;
            headers.push((http::header::CONTENT_TYPE, v));
        }
        for (k, v) in &s.headers {
            let at = format!("headers.{k}");
            let name = HeaderName::try_from(k.as_str())
                .map_err(|_| BuildError::at(&at, "not a header name"))?;
            if name == http::header::CONTENT_LENGTH || name == http::header::TRANSFER_ENCODING {
                return Err(BuildError::at(at, "is set by the gateway"));
            }
            let value = HeaderValue::try_from(v.as_str())
                .map_err(|_| BuildError::at(&at, "not a header value"))?;
            headers.push((name, value));
        }
        Ok(FixedResponse {
            status: s.status,
            body: Bytes::from(s.body),
            headers,
        })
    }

    async fn request(&self, _req: &mut RequestView<'_>) -> Flow {
        Flow::Reply(Reply {
            status: self.status,
            body: self.body.clone(),
            headers: self.headers.clone(),
            no_store: false,
        })
    }
}
