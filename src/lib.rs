//! API gateway on Cloudflare Pingora.
//!
//! Where things live: `config` (the YAML schema and its loading), `snapshot` (compiling a file
//! into the live [`snapshot::Snapshot`]), `routing` (routes and lookup), `chain` (a route's
//! checks, in order), `outcome` (what a check decides), the features `auth`, `ratelimit`,
//! `security`, `balance` and `cache` (each checks and builds its own section), `health` (active health
//! checks), `plugin` (the public extension API: middlewares and strategies by name, and the
//! built-in middlewares), `launch` (the stock `main`, [`Launcher`]), `proxy` (the `ProxyHttp` implementation, the only writer of answers), `state` (the
//! live snapshot behind an `ArcSwap`), `reload` (SIGHUP), `app` (the pingora server), `cli` and
//! `logging`.
//!
//! Modules are private; what the binary, the benches and the tests use is re-exported here, so
//! the compiler reports whatever nothing uses.

#![forbid(unsafe_code)]

mod admin;
mod admit;
mod app;
mod auth;
mod balance;
mod body;
mod cache;
mod chain;
mod cli;
mod client;
mod config;
mod connection;
mod etcd;
mod header_edit;
mod health;
mod http_client;
mod ip_text;
mod launch;
mod logging;
mod memory;
mod method_set;
mod metrics;
mod outcome;
pub mod plugin;
mod proxy;
mod ratelimit;
mod redis;
mod reload;
mod request_id;
mod routing;
mod security;
mod snapshot;
mod state;
mod tls;
mod token_api;
mod trace;

pub use app::check_listeners;
pub use auth::install_jwt_crypto;
pub use auth::users::hash_password;
pub use auth::Auth;
pub use balance::Upstream;
pub use cli::{read_password, Cli, Command};
pub use config::file::UpstreamConfig;
pub use config::{load_file, parse_str};
pub use launch::Launcher;
pub use logging::init as init_logging;
pub use ratelimit::{Algorithm, LocalStore, MAX_KEYS};
pub use routing::{Lookup, Route};
pub use snapshot::{compile, Snapshot};

/// Weak settings of a compiled config (warned about at start-up and by `gateway -t`).
pub fn config_warnings(snapshot: &Snapshot) -> Vec<String> {
    snapshot::warnings(&snapshot.file)
}

/// Entry points for the fuzz targets in `fuzz/`: thin wrappers over internals, not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    use crate::config::ConfigErrors;
    use crate::ratelimit::{KeyInputs, KeyPart};
    use crate::security::TrustedProxies;
    use std::net::IpAddr;

    pub use crate::routing::normalize;
    pub use pingora::http::{RequestHeader, ResponseHeader};

    /// The client address of a request from `peer` with `trusted` proxies (CIDR texts).
    pub fn client_ip(peer: IpAddr, trusted: &[&str], req: &RequestHeader) -> IpAddr {
        let list: Vec<String> = trusted.iter().map(|s| (*s).to_owned()).collect();
        let trusted = TrustedProxies::build(&list, &mut ConfigErrors::default());
        crate::client::client_ip(peer, &trusted, req)
    }

    /// The rate-limit key of the parts named in `parts` (config names) for these inputs.
    pub fn limit_key(
        parts: &[&str],
        client_ip: Option<IpAddr>,
        user: Option<&str>,
        path: &str,
        route: &str,
        headers: &http::HeaderMap,
    ) -> Vec<u8> {
        let parts: Vec<KeyPart> = parts.iter().filter_map(|p| KeyPart::parse(p)).collect();
        let inputs = KeyInputs {
            client_ip,
            user,
            path,
            route,
            headers,
        };
        let mut out = Vec::new();
        crate::ratelimit::write_key(&parts, &inputs, &mut out);
        out
    }

    /// `text` parsed as a template (with `$1`.. captures when `captures`) and rendered with
    /// fixed variables (client 192.0.2.1, user `alice`, route `r`, path `/p`, query `q=1`) and
    /// captures (`/all`, `a`, `b`); `None` when it does not parse.
    pub fn template(text: &str, captures: bool) -> Option<String> {
        let template = crate::plugin::Template::parse_with(text, captures).ok()?;
        let mut request = pingora::http::RequestHeader::build("GET", b"/p?q=1", None).ok()?;
        request.insert_header("host", "h").ok()?;
        let mut ids = http::HeaderMap::new();
        ids.insert("x-request-id", http::HeaderValue::from_static("rid"));
        let id = crate::request_id::RequestId::from_request(&ids);
        let vars = crate::plugin::Vars {
            client_ip: Some([192, 0, 2, 1].into()),
            request_id: Some(&id),
            user: Some("alice"),
            route: "r",
            upstream: Some("u"),
            path: None,
            secure: false,
            request: Some(&request),
        };
        let caps = ["/all", "a", "b"];
        Some(
            template
                .render_with(&vars, &|n| caps.get(n).copied())
                .into_owned(),
        )
    }

    /// The cache's verdict on an origin answer: `(seconds fresh, stale-while-revalidate,
    /// stale-if-error)`, or `None` when it is not stored. Defaults: 60 s fresh, no stale windows.
    pub fn cache_decision(resp: &ResponseHeader) -> Option<(i64, u32, u32)> {
        use pingora::cache::RespCacheable;
        let cache = crate::cache::Cache {
            key_prefix: "gw".into(),
            default_ttl: std::time::Duration::from_secs(60),
            max_object_size: 1 << 20,
            lock_timeout: std::time::Duration::from_secs(1),
            stale_while_revalidate: 0,
            stale_if_error: 0,
            store: std::sync::Arc::new(crate::cache::Store::new("gw", 1 << 20, None)),
        };
        match crate::cache::decide(resp, &cache, None) {
            RespCacheable::Cacheable(meta) => {
                let now = std::time::SystemTime::now();
                let fresh = match meta.fresh_until().duration_since(now) {
                    Ok(d) => d.as_secs() as i64,
                    Err(e) => -(e.duration().as_secs() as i64),
                };
                Some((
                    fresh,
                    meta.stale_while_revalidate_sec(),
                    meta.stale_if_error_sec(),
                ))
            }
            RespCacheable::Uncacheable(_) => None,
        }
    }

    /// The cache key of a GET for `path` and `query` with these request headers (`None` when
    /// it bypasses the cache), and whether purging its URL and purging `/*` remove it.
    pub fn cache_key(
        path: &str,
        query: Option<&str>,
        req: &RequestHeader,
        authenticated: bool,
    ) -> Option<(String, bool, bool)> {
        use crate::cache::{Admission, Purge, RoutePolicy};
        let policy = RoutePolicy {
            ttl: None,
            authenticated,
        };
        let Admission::Use(key) = policy.admit("gw", req, path, None) else {
            return None;
        };
        Some((
            key.clone(),
            Purge::url("gw", path, query).matches(&key),
            Purge::prefix("gw", "/").matches(&key),
        ))
    }
}

/// Per-request pieces for the criterion benches and `tests/allocations.rs`: thin wrappers over
/// internals, not a stable API.
#[doc(hidden)]
pub mod internals {
    use crate::proxy::RequestCtx;
    use crate::request_id::RequestId;
    use pingora::http::RequestHeader;
    use std::net::IpAddr;
    use std::sync::Arc;

    pub use crate::config::file::ServerConfig;
    pub use crate::metrics::{BackendCounters, RouteMetrics};
    pub use crate::proxy::UPSTREAM_IDLE_TIMEOUT;
    pub use crate::ratelimit::{Decision, Leases, Take, LEASE_TTL};

    /// What the proxy does to a request's headers on its way to the backend, for a client at
    /// `peer` (not a trusted proxy): a request context, the request id (the client's when well
    /// formed), name spellings dropped (`server.header_case: lower`), the `X-Forwarded-*`
    /// headers, client-sent identity headers removed.
    pub fn rewrite_headers(
        snapshot: &Arc<crate::Snapshot>,
        req: &mut RequestHeader,
        peer: IpAddr,
    ) -> pingora::Result<()> {
        let mut ctx = RequestCtx::new(Arc::clone(snapshot));
        ctx.peer.request_id = RequestId::from_request(&req.headers);
        ctx.peer.client_ip = Some(peer);
        let lower = snapshot.file.server.header_case == crate::config::file::HeaderCase::Lower;
        crate::proxy::to_backend(req, &mut ctx, Some(peer), None, lower, |_, _| Ok(()))
    }
}
