//! The stock gateway with one middleware of its own, `stamp`: it refuses requests whose
//! configured header has one of the configured values (403, the contract's JSON error), and
//! stamps every other answer with a header naming the route and the caller.
//!
//! ```yaml
//! routes:
//!   - name: api
//!     path: /api
//!     upstream: app
//!     plugins:
//!       - name: stamp
//!         settings:
//!           header: x-stamp
//!           value: "${route}/${user}"
//!           refuse_header: x-client
//!           refuse_values: [scraper]
//! ```
//!
//! Run it like the gateway: `cargo run --example custom_middleware -- -c gateway.yaml`.

use api_gateway::plugin::{
    BuildContext, BuildError, ErrorCode, Flow, Middleware, RequestView, ResponseView, Template,
};
use http::{HeaderName, HeaderValue};
use serde::Deserialize;
use std::process::ExitCode;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    /// The header stamped on answers.
    header: String,
    /// Its value, with variables.
    value: String,
    /// A request header, and the values of it that are refused.
    #[serde(default)]
    refuse_header: Option<String>,
    #[serde(default)]
    refuse_values: Vec<String>,
}

struct Stamp {
    header: HeaderName,
    value: Template,
    refuse: Option<(HeaderName, Vec<String>)>,
}

#[async_trait::async_trait]
impl Middleware for Stamp {
    type Settings = Settings;

    fn build(s: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
        let header = HeaderName::try_from(s.header.as_str())
            .map_err(|_| BuildError::at("header", "not a header name"))?;
        let value =
            Template::parse(&s.value).map_err(|e| BuildError::at("value", e.to_string()))?;
        let refuse = match s.refuse_header {
            Some(name) => Some((
                HeaderName::try_from(name.as_str())
                    .map_err(|_| BuildError::at("refuse_header", "not a header name"))?,
                s.refuse_values,
            )),
            None if !s.refuse_values.is_empty() => {
                return Err(BuildError::at("refuse_values", "needs refuse_header"))
            }
            None => None,
        };
        Ok(Stamp {
            header,
            value,
            refuse,
        })
    }

    async fn request(&self, req: &mut RequestView<'_>) -> Flow {
        if let Some((name, values)) = &self.refuse {
            let refused = req.header.headers.get_all(name).iter().any(|v| {
                values
                    .iter()
                    .any(|r| v.as_bytes().eq_ignore_ascii_case(r.as_bytes()))
            });
            if refused {
                return ErrorCode::Forbidden.into();
            }
        }
        Flow::Continue
    }

    fn response(&self, resp: &mut ResponseView<'_>) {
        if let Ok(v) = HeaderValue::from_str(&self.value.render(&resp.vars)) {
            resp.head.insert_header(self.header.clone(), v);
        }
    }
}

fn main() -> ExitCode {
    api_gateway::Launcher::new()
        .middleware::<Stamp>("stamp")
        .run()
}
