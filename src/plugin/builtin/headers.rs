//! `request_headers` and `response_headers`: add, set, remove and rename headers of the request
//! the backend gets, or of the answer the client gets. Values are templates (`$client_ip`).

use crate::header_edit::HeaderEdit;
use crate::plugin::{
    BuildContext, BuildError, Middleware, ResponseView, Template, UpstreamView, Vars,
};
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The settings both share.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Values added beside any the message has.
    #[serde(default)]
    add: BTreeMap<String, String>,
    /// Values that replace any the message has.
    #[serde(default)]
    set: BTreeMap<String, String>,
    #[serde(default)]
    remove: Vec<String>,
    /// Old name to new name; the values move (beside any the new name has).
    #[serde(default)]
    rename: BTreeMap<String, String>,
}

/// The edits, checked: applied as rename, remove, set, add.
#[derive(Debug)]
pub struct Edits {
    rename: Vec<(HeaderName, HeaderName)>,
    remove: Vec<HeaderName>,
    set: Vec<(HeaderName, Value)>,
    add: Vec<(HeaderName, Value)>,
}

#[derive(Debug)]
enum Value {
    Fixed(HeaderValue),
    Template(Template),
}

fn name(at: String, text: &str) -> Result<HeaderName, BuildError> {
    HeaderName::from_bytes(text.as_bytes())
        .map_err(|_| BuildError::at(at, format!("{text:?} is not a header name")))
}

fn values(
    section: &str,
    map: &BTreeMap<String, String>,
) -> Result<Vec<(HeaderName, Value)>, BuildError> {
    map.iter()
        .map(|(k, v)| {
            let at = format!("{section}.{k}");
            let template = Template::parse(v).map_err(|e| BuildError::at(&at, e.to_string()))?;
            let value =
                match template.as_literal() {
                    Some(text) => Value::Fixed(HeaderValue::from_str(text).map_err(|_| {
                        BuildError::at(&at, "not a header value (control characters)")
                    })?),
                    None => Value::Template(template),
                };
            Ok((name(at, k)?, value))
        })
        .collect()
}

impl Edits {
    fn build(s: Settings) -> Result<Edits, BuildError> {
        Ok(Edits {
            rename: s
                .rename
                .iter()
                .map(|(from, to)| {
                    let at = format!("rename.{from}");
                    Ok((name(at.clone(), from)?, name(at, to)?))
                })
                .collect::<Result<_, BuildError>>()?,
            remove: s
                .remove
                .iter()
                .enumerate()
                .map(|(i, n)| name(format!("remove[{i}]"), n))
                .collect::<Result<_, _>>()?,
            set: values("set", &s.set)?,
            add: values("add", &s.add)?,
        })
    }

    /// Applies the edits to `message`.
    fn apply(&self, message: &mut dyn HeaderEdit, vars: &Vars<'_>) {
        for (from, to) in &self.rename {
            let moved: Vec<HeaderValue> = message.headers().get_all(from).iter().cloned().collect();
            if moved.is_empty() {
                continue;
            }
            message.unset(from);
            for v in moved {
                left_out(to, message.add(to.clone(), v));
            }
        }
        for n in &self.remove {
            message.unset(n);
        }
        let value = |v: &Value| match v {
            Value::Fixed(h) => Some(h.clone()),
            // Variables are header-safe (checked where they come from); a value that is not
            // is left out rather than sent broken.
            Value::Template(t) => HeaderValue::from_str(&t.render(vars)).ok(),
        };
        for (n, v) in &self.set {
            if let Some(v) = value(v) {
                left_out(n, message.set(n.clone(), v));
            }
        }
        for (n, v) in &self.add {
            if let Some(v) = value(v) {
                left_out(n, message.add(n.clone(), v));
            }
        }
    }
}

/// A header the message refused (past pingora's limits) is left out, as the phases allow.
fn left_out(name: &HeaderName, done: pingora::Result<()>) {
    if let Err(e) = done {
        log::debug!("header {name} left out: {e}");
    }
}

/// `request_headers`: edits the request the backend gets (after the gateway's own headers).
pub struct RequestHeaders(Edits);

#[async_trait::async_trait]
impl Middleware for RequestHeaders {
    type Settings = Settings;
    const REQUEST_PHASE: bool = false;
    const LOGGING_PHASE: bool = false;

    fn build(settings: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        Edits::build(settings).map(RequestHeaders)
    }

    fn upstream_request(&self, req: &mut UpstreamView<'_>) -> Result<(), BuildError> {
        self.0.apply(req.head.edit(), &req.vars);
        Ok(())
    }
}

/// `response_headers`: edits the answer the client gets (from the backend or the cache).
pub struct ResponseHeaders(Edits);

#[async_trait::async_trait]
impl Middleware for ResponseHeaders {
    type Settings = Settings;
    const REQUEST_PHASE: bool = false;
    const LOGGING_PHASE: bool = false;

    fn build(settings: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        Edits::build(settings).map(ResponseHeaders)
    }

    fn response(&self, resp: &mut ResponseView<'_>) {
        self.0.apply(resp.head.edit(), &resp.vars);
    }
}
