//! Edge security: response hardening headers, CORS, client IP allow/deny rules.

pub mod cors;
pub mod headers;
pub mod ip;

pub use cors::Cors;
pub use headers::SecurityHeaders;
pub use ip::IpRules;
