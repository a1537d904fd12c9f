//! The proxy listener: the `ProxyHttp` implementation and the pieces its phases call. The only
//! part of the gateway that writes to a `Session`: features return outcomes, `respond` writes
//! them, `observe` records them.

mod access_log;
mod backend;
mod builtin;
mod cache;
mod ctx;
mod error_fold;
mod errors;
mod forwarded;
mod grpc;
mod header_case;
mod health;
mod inbound;
mod middleware;
mod observe;
mod peer;
mod respond;
mod retry;
mod service;
mod span;
mod tls_accept;

pub use backend::to_backend;
pub use ctx::RequestCtx;
pub use peer::UPSTREAM_IDLE_TIMEOUT;
pub use service::Gateway;
pub use tls_accept::settings as tls_settings;
