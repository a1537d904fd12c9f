//! The compiled route: everything a request needs, resolved at load time.

use super::method::MethodSet;
use crate::balance::Upstream;
use crate::config::file::RateLimitConfig;
use crate::ratelimit::Limiter;
use crate::security::{IpRules, SecurityHeaders};
use std::sync::Arc;
use std::time::Duration;

/// Effective authentication policy (route settings over group settings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthPolicy {
    pub required: bool,
    pub roles: Vec<String>,
}

/// Effective cache policy of a route whose cache is enabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CachePolicy {
    pub ttl: Duration,
}

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
    pub auth: AuthPolicy,
    /// Global, group and route settings merged field by field; `None` when no level sets a limit.
    pub rate_limit: Option<RateLimitConfig>,
    pub cache: Option<CachePolicy>,
    /// Hardening headers for this route's answers (global set with the route's override).
    pub headers: Arc<SecurityHeaders>,
    /// Effective client IP rules (global, group and route combined); empty when none apply.
    pub ip_rules: IpRules,
    /// The route's limiter, when a rate limit applies.
    pub limiter: Option<Arc<Limiter>>,
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
