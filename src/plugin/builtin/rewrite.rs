//! `path_rewrite`: a regular expression over the path the backend would get (normalised, and
//! without the route's prefix under `strip_prefix`), its target with `$1`..`$9` captures and
//! variables; optionally another `Host`. The client's query is kept.

use crate::plugin::{BuildContext, BuildError, Middleware, Template, UpstreamView};
use http::HeaderValue;
use regex::Regex;
use serde::Deserialize;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Matched against the path; a path it does not match goes unchanged.
    pattern: String,
    /// The new path: `$1`..`$9` (or `${1}`) for captures, `${variable}` for variables. It may
    /// carry a query, which goes before the client's.
    to: String,
    /// The `Host` the backend gets instead of the client's.
    #[serde(default)]
    host: Option<String>,
}

pub struct PathRewrite {
    pattern: Regex,
    to: Template,
    host: Option<HeaderValue>,
}

#[async_trait::async_trait]
impl Middleware for PathRewrite {
    type Settings = Settings;
    const REQUEST_PHASE: bool = false;
    const LOGGING_PHASE: bool = false;

    fn build(s: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        let pattern =
            Regex::new(&s.pattern).map_err(|e| BuildError::at("pattern", e.to_string()))?;
        let to =
            Template::parse_with(&s.to, true).map_err(|e| BuildError::at("to", e.to_string()))?;
        if to.max_capture() >= pattern.captures_len() {
            return Err(BuildError::at(
                "to",
                format!(
                    "uses ${} but the pattern has {} capture group(s)",
                    to.max_capture(),
                    pattern.captures_len() - 1
                ),
            ));
        }
        if !s.to.starts_with('/') && !s.to.starts_with("${") && !s.to.starts_with('$') {
            return Err(BuildError::at("to", "must start with /"));
        }
        let host = match s.host {
            Some(h) => Some(
                http::uri::Authority::try_from(h.as_str())
                    .ok()
                    .filter(|a| !a.as_str().contains('@'))
                    .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                    .ok_or_else(|| BuildError::at("host", format!("{h:?} is not a host[:port]")))?,
            ),
            None => None,
        };
        Ok(PathRewrite { pattern, to, host })
    }

    fn upstream_request(&self, req: &mut UpstreamView<'_>) -> Result<(), BuildError> {
        if let Some(host) = &self.host {
            req.head.insert_header(http::header::HOST, host.clone());
        }
        let uri = req.head.uri();
        let path = uri.path();
        let Some(caps) = self.pattern.captures(path) else {
            return Ok(());
        };
        let rendered = self
            .to
            .render_with(&req.vars, &|n| caps.get(n).map(|m| m.as_str()));
        let target = match (uri.query(), rendered.contains('?')) {
            (Some(q), true) => format!("{rendered}&{q}"),
            (Some(q), false) => format!("{rendered}?{q}"),
            (None, _) => rendered.into_owned(),
        };
        if !target.starts_with('/') {
            return Err(BuildError::new("the rewritten path does not start with /"));
        }
        let uri = http::Uri::try_from(target)
            .map_err(|_| BuildError::new("the rewritten path is not a valid URI"))?;
        req.head.set_uri(uri);
        Ok(())
    }
}
