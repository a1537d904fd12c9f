//! The compiled route: everything a request needs, resolved at load time.

use super::method::MethodSet;
use crate::balance::Upstream;
use crate::chain::Chain;
use crate::security::SecurityHeaders;
use std::sync::Arc;
use std::time::Duration;

/// One route, shared by every request that matches it.
#[derive(Debug)]
pub struct Route {
    pub name: String,
    /// Full prefix including the group's, without a trailing slash (`/` for the root).
    pub prefix: String,
    pub methods: Option<MethodSet>,
    pub upstream: Arc<Upstream>,
    pub strip_prefix: bool,
    pub timeout: Option<Duration>,
    /// The checks a request passes before it is proxied.
    pub chain: Chain,
    /// Hardening headers for this route's answers (global set with the route's override).
    pub headers: Arc<SecurityHeaders>,
}

impl Route {
    /// The path the backend receives: the request path with the route prefix removed when
    /// `strip_prefix` is set. Returns `None` when the path is kept as it is.
    pub fn rewrite_path(&self, path_and_query: &str) -> Option<String> {
        if !self.strip_prefix || self.prefix == "/" {
            return None;
        }
        let rest = path_and_query.get(self.prefix.len()..).unwrap_or("");
        Some(if rest.is_empty() || rest.starts_with('?') {
            format!("/{rest}")
        } else {
            rest.to_owned()
        })
    }
}
