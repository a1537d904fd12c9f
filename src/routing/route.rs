//! The compiled route: everything a request needs, resolved at load time.

use super::split::Split;
use crate::balance::Upstream;
use crate::cache::RoutePolicy;
use crate::chain::Chain;
use crate::method_set::MethodSet;
use crate::security::SecurityHeaders;
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

/// One route, shared by every request that matches it.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// Full prefix including the group's, without a trailing slash (`/` for the root).
    pub prefix: String,
    pub methods: Option<MethodSet>,
    /// The upstream, or several sharing the traffic.
    pub split: Split,
    pub strip_prefix: bool,
    /// Segments match without regard to ASCII case (`/api/ADMIN` takes `/api/admin`).
    pub case_insensitive: bool,
    pub timeout: Option<Duration>,
    /// WebSocket handshakes are proxied, and the tunnel closed after this long idle; `None`:
    /// handshakes are refused.
    pub websocket: Option<Duration>,
    /// Retries beyond the upstream's connect-failure `retries`, when set.
    pub retry: Option<super::retry::RetryPolicy>,
    /// The checks a request passes before it is proxied.
    pub chain: Chain,
    /// Hardening headers for this route's answers (global set with the route's override).
    pub headers: Arc<SecurityHeaders>,
    /// Caching, when the route enables it.
    pub cache: Option<RoutePolicy>,
    /// Its middlewares (`plugins`, every level merged), in the order they run.
    pub middlewares: crate::plugin::build::Middlewares,
    /// Its request, duration and rate-limit series, bound on first use.
    pub metrics: crate::metrics::RouteMetrics,
}

impl Route {
    /// The path its cache keys hold for the normalized `path`: in lower case on a
    /// case-insensitive route (its backend ignores case: one entry for every spelling).
    pub fn cache_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        if self.case_insensitive {
            Cow::Owned(path.to_ascii_lowercase())
        } else {
            Cow::Borrowed(path)
        }
    }

    /// The upstream of `arm` (what `Split::pick` chose; 0 for a route with one upstream).
    pub fn upstream(&self, arm: usize) -> &Arc<Upstream> {
        self.split.upstream(arm)
    }

    /// The path the backend receives for the normalized `path` this route matched: without
    /// the route prefix when `strip_prefix` is set. `None` when it is `path` itself.
    pub fn backend_path<'a>(&self, path: &'a str) -> Option<&'a str> {
        if !self.strip_prefix || self.prefix == "/" {
            return None;
        }
        // Normalized paths have no `//`, so what is left cannot be `//host/...`.
        let rest = path.get(self.prefix.len()..).unwrap_or("");
        Some(if rest.is_empty() { "/" } else { rest })
    }
}
