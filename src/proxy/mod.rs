//! The proxy listener: `ProxyHttp` implementation and the pieces its phases call.

mod access_log;
pub mod ctx;
mod forwarded;
mod health;
mod observe;
pub mod request_id;
pub mod respond;
mod service;

pub use ctx::RequestCtx;
pub use service::Gateway;
