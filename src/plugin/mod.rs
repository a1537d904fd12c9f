//! The extension API: middlewares and load-balancing strategies a program adds to the stock
//! gateway by name, and the built-in middlewares written on the same API.
//!
//! A middleware is a type with typed settings and one handler per phase of a request; every
//! phase has a default that does nothing, so it implements only what it uses. It sees views of
//! the request (headers, normalised path, client address, the authenticated caller, a typed
//! per-request slot), never pingora's session. It answers with the same [`Flow`] the gateway's
//! own checks return.
//!
//! ```no_run
//! use api_gateway::plugin::{BuildContext, BuildError, Middleware, ResponseView};
//! use serde::Deserialize;
//!
//! #[derive(Deserialize)]
//! #[serde(deny_unknown_fields)]
//! struct Settings { value: String }
//!
//! struct Stamp { value: http::HeaderValue }
//!
//! #[async_trait::async_trait]
//! impl Middleware for Stamp {
//!     type Settings = Settings;
//!     fn build(s: Settings, _ctx: &BuildContext) -> Result<Self, BuildError> {
//!         let value = s.value.parse().map_err(|_| BuildError::at("value", "not a header value"))?;
//!         Ok(Stamp { value })
//!     }
//!     fn response(&self, resp: &mut ResponseView<'_>) {
//!         resp.head.insert_header(http::HeaderName::from_static("x-stamp"), self.value.clone());
//!     }
//! }
//!
//! fn main() -> std::process::ExitCode {
//!     api_gateway::Launcher::new().middleware::<Stamp>("stamp").run()
//! }
//! ```
//!
//! Phases, in the order a request meets them: [`Middleware::request`] (after the route's own
//! checks: IP rules, CORS preflight, authentication and roles, rate limit, body limit; may
//! answer), [`Middleware::upstream_request`] (the request the backend gets), then for the
//! answer, from the backend or the cache, [`Middleware::response`] and
//! [`Middleware::body_transform`], and last [`Middleware::logging`]. Middlewares of a route run
//! in their merged order (top-level `plugins`, then the group's, then the route's).

mod balancer;
pub(crate) mod build;
mod builtin;
mod context;
mod head;
mod registry;
mod vars;

pub use crate::outcome::{Denial, ErrorCode, Flow, Headers, Reply};
pub use balancer::{Balancer, Member};
pub use context::{BuildContext, SharedRedis, StoreError};
pub(crate) use head::Message;
pub use head::{ResponseHead, UpstreamHead};
pub use registry::Registry;
pub use vars::{Template, TemplateError, Vars};

pub(crate) use balancer::Built as BuiltBalancer;
pub(crate) use registry::{install, registry};

use async_trait::async_trait;
use bytes::Bytes;
use http::Extensions;
use serde::de::DeserializeOwned;
use std::sync::Arc;

/// A problem with a middleware's settings, found when it is built: `gateway -t`, start-up and
/// reloads report it under the entry's config path (`routes[2].plugins[0].settings.<at>`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildError {
    /// Where in the settings, dotted (`set.x-user`); empty for the settings as a whole.
    pub at: String,
    pub message: String,
}

impl BuildError {
    pub fn at(at: impl Into<String>, message: impl Into<String>) -> BuildError {
        BuildError {
            at: at.into(),
            message: message.into(),
        }
    }

    /// A problem with the settings as a whole.
    pub fn new(message: impl Into<String>) -> BuildError {
        BuildError::at("", message)
    }
}

impl std::fmt::Display for BuildError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

/// A middleware: built once per config load from its entry's settings, then shared by every
/// request of the routes it is on (so it is `Sync`; per-request state goes in the slot). A
/// reload that keeps an entry's name and settings keeps the built instance, and with it any
/// state it holds (counters, nonce windows).
#[async_trait]
pub trait Middleware: Send + Sync + 'static {
    /// The entry's `settings`, deserialized from YAML (a missing `settings` is YAML null, so a
    /// middleware without settings uses `()` or a struct with every field defaulted).
    type Settings: DeserializeOwned;

    /// Checks the settings and builds the middleware. Blocking is allowed (key files).
    fn build(settings: Self::Settings, ctx: &BuildContext) -> Result<Self, BuildError>
    where
        Self: Sized;

    /// Whether the `request` phase needs the request's body ([`RequestView::body`]): the
    /// gateway then reads it whole first (64 KiB at most: a larger one is refused with 413) and
    /// sends it on to the backend afterwards.
    fn needs_body(&self) -> bool {
        false
    }

    /// Whether the gateway calls [`Middleware::request`]: leave it `true` when you implement
    /// `request`; a middleware that does not can set it to `false`, sparing every request the
    /// call (and the future it allocates).
    const REQUEST_PHASE: bool = true;

    /// The same for [`Middleware::logging`].
    const LOGGING_PHASE: bool = true;

    /// The request, admitted by the route's own checks. `Flow::Continue` passes it on;
    /// a `Deny` or `Reply` answers it here and no later phase but `logging` runs.
    async fn request(&self, _req: &mut RequestView<'_>) -> Flow {
        Flow::Continue
    }

    /// The request the backend receives (method, URI, headers), after the gateway's own headers
    /// (`X-Forwarded-*`, `X-Request-Id`, `X-User-*`) are set. Runs once per try. An `Err`
    /// fails the request with 500.
    fn upstream_request(&self, _req: &mut UpstreamView<'_>) -> Result<(), BuildError> {
        Ok(())
    }

    /// The answer's status and headers, from the backend, the cache or a middleware's reply
    /// is not included (those are written as given). Must not fail: a header it cannot set is
    /// left out.
    fn response(&self, _resp: &mut ResponseView<'_>) {}

    /// A transform of the answer's body, chosen once the headers are final (after every
    /// middleware's `response`). The gateway removes `Content-Length` and streams the result.
    fn body_transform(&self, _resp: &ResponseView<'_>) -> Option<Box<dyn BodyTransform>> {
        None
    }

    /// The request is over, answered or not. Must not block.
    fn logging(&self, _done: &Finished<'_>) {}
}

/// A streaming change of a body: called with each chunk as it comes, and once at the end.
pub trait BodyTransform: Send + Sync {
    /// The bytes to send for `chunk` (may be empty; may hold back bytes until later). `end` is
    /// set on the last call, whose `chunk` may be empty: everything held back goes out then.
    fn transform(&mut self, chunk: &[u8], end: bool) -> Bytes;
}

/// The request as a middleware's `request` phase sees it.
pub struct RequestView<'a> {
    /// The request head as the client sent it.
    pub header: &'a http::request::Parts,
    /// The normalised path the route matched.
    pub path: &'a str,
    /// Variables about the request (client address, request id, user, route, host).
    pub vars: Vars<'a>,
    /// Per-request values shared by the request's middlewares (keyed by type: use a type of
    /// your own).
    pub slot: &'a mut Extensions,
    /// A caller authenticated by a middleware.
    pub(crate) authenticated: &'a mut Option<Arc<crate::auth::Caller>>,
    /// The request arrived with a body (`Content-Length` > 0 or chunked).
    pub has_body: bool,
    /// The whole body, read before the request phase when a middleware of the route
    /// [`needs_body`](Middleware::needs_body) (empty when there is none); `None` otherwise.
    pub body: Option<&'a Bytes>,
    /// Picks backends of the request's config's upstreams.
    pub(crate) upstreams: &'a dyn PickBackend,
}

/// How a request view reaches the upstreams of the config it runs under (the proxy provides
/// it; `plugin` does not depend on `balance`).
pub(crate) trait PickBackend: Sync {
    /// A healthy backend of `upstream` by its strategy for `key` (the client's address bytes).
    fn pick(&self, upstream: &str, key: &[u8]) -> Option<Backend>;
}

/// A backend of an upstream, picked for a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backend {
    pub addr: std::net::SocketAddr,
    /// The upstream is spoken to over TLS.
    pub tls: bool,
}

impl RequestView<'_> {
    /// A healthy backend of `upstream` (by its strategy, keyed on the client's address), as the
    /// request's config has it; `None` when there is no such upstream or no healthy backend.
    pub fn backend(&self, upstream: &str) -> Option<Backend> {
        let key = match self.vars.client_ip() {
            Some(std::net::IpAddr::V4(ip)) => ip.octets().to_vec(),
            Some(std::net::IpAddr::V6(ip)) => ip.octets().to_vec(),
            None => Vec::new(),
        };
        self.upstreams.pick(upstream, &key)
    }

    /// Records the request's caller: `X-User-Id` / `X-User-Roles` go to the backend and the
    /// `user` variable names it. `false` when the route's own authentication already found one
    /// (it is kept) or the name cannot be sent in a header.
    pub fn authenticate(&mut self, user: &str, roles: &[String]) -> bool {
        if self.vars.user().is_some() {
            return false;
        }
        match crate::auth::Caller::new(user.to_owned(), roles.to_vec()) {
            Some(caller) => {
                *self.authenticated = Some(Arc::new(caller));
                true
            }
            None => false,
        }
    }
}

/// The request on its way to the backend.
pub struct UpstreamView<'a> {
    /// What the backend receives: method, target and headers, edited in place.
    pub head: UpstreamHead<'a>,
    pub vars: Vars<'a>,
    pub slot: &'a mut Extensions,
}

/// An answer on its way to the client.
pub struct ResponseView<'a> {
    /// The request it answers, as the client sent it.
    pub request: &'a http::request::Parts,
    /// The answer: status and headers, edited in place.
    pub head: ResponseHead<'a>,
    pub vars: Vars<'a>,
    pub slot: &'a mut Extensions,
}

/// A request that is over.
pub struct Finished<'a> {
    pub request: &'a http::request::Parts,
    /// The status sent, 0 when none was.
    pub status: u16,
    pub(crate) started: std::time::Instant,
    pub vars: Vars<'a>,
    pub slot: &'a Extensions,
}

impl Finished<'_> {
    /// From the request's first byte to now.
    pub fn duration(&self) -> std::time::Duration {
        self.started.elapsed()
    }
}
