//! `redirect`: answers the route's requests with a redirect to a URL template.

use crate::plugin::{
    BuildContext, BuildError, ErrorCode, Flow, Middleware, Reply, RequestView, Template,
};
use http::HeaderValue;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// The target: a URL or a path, with `${variable}`s (`https://new.example${path}`).
    to: String,
    /// 301, 302, 307 or 308. Default 302.
    #[serde(default = "found")]
    status: u16,
    /// The request's query is appended (when the target has none). Default true.
    #[serde(default = "yes")]
    keep_query: bool,
}

fn found() -> u16 {
    302
}

fn yes() -> bool {
    true
}

pub struct Redirect {
    to: Template,
    status: u16,
    keep_query: bool,
}

#[async_trait::async_trait]
impl Middleware for Redirect {
    type Settings = Settings;
    const LOGGING_PHASE: bool = false;

    fn build(s: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        if ![301, 302, 307, 308].contains(&s.status) {
            return Err(BuildError::at("status", "must be 301, 302, 307 or 308"));
        }
        let to = Template::parse(&s.to).map_err(|e| BuildError::at("to", e.to_string()))?;
        if s.to.is_empty() {
            return Err(BuildError::at("to", "must not be empty"));
        }
        Ok(Redirect {
            to,
            status: s.status,
            keep_query: s.keep_query,
        })
    }

    async fn request(&self, req: &mut RequestView<'_>) -> Flow {
        let mut location = self.to.render(&req.vars).into_owned();
        if let (true, Some(q)) = (self.keep_query, req.vars.query()) {
            if !location.contains('?') {
                location.push('?');
                location.push_str(q);
            }
        }
        match HeaderValue::try_from(location) {
            Ok(v) => Flow::Reply(Reply::empty(self.status, vec![(http::header::LOCATION, v)])),
            Err(_) => ErrorCode::BadRequest.into(),
        }
    }
}
