//! `security.headers`: added to every answer unless the upstream already set them.

use super::SecurityError;
use crate::config::file::{RouteSecurityHeaders, SecurityHeadersConfig};
use crate::config::ConfigErrors;
use crate::header_edit::HeaderEdit;
use http::{HeaderName, HeaderValue};

/// The headers to add, names and values checked at load time.
#[derive(Debug, Default, Clone)]
pub struct SecurityHeaders(Vec<(HeaderName, HeaderValue)>);

impl SecurityHeaders {
    /// The global set with a route's override applied; problems are reported under `path`.
    pub fn build(
        path: &str,
        global: Option<&SecurityHeadersConfig>,
        route: Option<&RouteSecurityHeaders>,
        errors: &mut ConfigErrors,
    ) -> SecurityHeaders {
        let base = global.cloned().unwrap_or_default();
        let cfg = match route {
            Some(RouteSecurityHeaders::Enabled(false)) => return SecurityHeaders::default(),
            Some(RouteSecurityHeaders::Enabled(true)) | None => base,
            Some(RouteSecurityHeaders::Override(o)) => SecurityHeadersConfig {
                strict_transport_security: o
                    .strict_transport_security
                    .clone()
                    .or(base.strict_transport_security),
                content_security_policy: o
                    .content_security_policy
                    .clone()
                    .or(base.content_security_policy),
                x_frame_options: o.x_frame_options.clone().or(base.x_frame_options),
                x_content_type_options: o
                    .x_content_type_options
                    .clone()
                    .or(base.x_content_type_options),
                referrer_policy: o.referrer_policy.clone().or(base.referrer_policy),
            },
        };
        let fields = [
            (
                "strict_transport_security",
                "strict-transport-security",
                cfg.strict_transport_security,
            ),
            (
                "content_security_policy",
                "content-security-policy",
                cfg.content_security_policy,
            ),
            ("x_frame_options", "x-frame-options", cfg.x_frame_options),
            (
                "x_content_type_options",
                "x-content-type-options",
                cfg.x_content_type_options,
            ),
            ("referrer_policy", "referrer-policy", cfg.referrer_policy),
        ];
        let mut list = Vec::new();
        for (field, name, value) in fields {
            let Some(value) = value.filter(|v| !v.is_empty()) else {
                continue;
            };
            match HeaderValue::from_str(&value) {
                Ok(v) => list.push((HeaderName::from_static(name), v)),
                Err(_) => errors.push(format!("{path}.{field}"), SecurityError::HeaderValue(value)),
            }
        }
        SecurityHeaders(list)
    }

    /// Adds each header the answer does not carry yet.
    pub fn apply<H: HeaderEdit>(&self, resp: &mut H) -> pingora::Result<()> {
        for (name, value) in &self.0 {
            if !resp.headers().contains_key(name) {
                resp.set(name.clone(), value.clone())?;
            }
        }
        Ok(())
    }
}
