//! The `groups` and `routes` sections: each route checked, its group's settings merged in, its
//! chain of checks built from the other sections, overlaps rejected.

use super::path;
use super::retry::RetryPolicy;
use super::route::Route;
use super::split::Split;
use crate::auth::AuthPolicy;
use crate::balance::Upstream;
use crate::chain::{Chain, ChainParts};
use crate::config::file::{GroupConfig, RouteConfig, WebSocketConfig};
use crate::config::{ConfigErrors, Parsed};
use crate::method_set::MethodSet;
use crate::plugin::build::{Entry, Middlewares, Pool};
use crate::ratelimit::{Level, Limiter};
use crate::redis::RedisHandle;
use crate::security::{Edge, IpRules, SecurityHeaders};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

/// How long a WebSocket tunnel may stay idle when the route does not say.
const DEFAULT_WEBSOCKET_IDLE: Duration = Duration::from_secs(60);

/// A problem in a group or route.
#[derive(Debug, thiserror::Error)]
pub enum RouteError {
    #[error("must not be empty")]
    EmptyName,
    #[error("duplicate route name {name:?} (also routes[{first}])")]
    DuplicateName { name: String, first: usize },
    #[error("unknown group {0:?}")]
    UnknownGroup(String),
    #[error("{0:?} must start with /")]
    NoSlash(String),
    #[error("{0:?} must be a plain path (no query, fragment or spaces)")]
    NotPlain(String),
    #[error("{0:?} has an empty, . or .. segment, or a character requests cannot match")]
    BadSegment(String),
    #[error("{given:?} is matched against normalized request paths: write it as {canonical:?}")]
    NotCanonical { given: String, canonical: String },
    #[error("must not be empty (omit it to allow every method)")]
    NoMethods,
    #[error("unknown method {0:?}")]
    UnknownMethod(String),
    #[error("must be positive")]
    ZeroIdleTimeout,
    #[error("{prefix} with these methods is already served by routes[{other}]")]
    Overlap { prefix: String, other: usize },
    #[error("needs listen.proxy_tls to redirect to")]
    NoTlsListener,
    #[error("WebSocket tunnels need upstreams spoken to in http1 (not h2 or h2c)")]
    WebSocketOverH2,
    #[error("auth is required but there is no auth section")]
    NoAuthSection,
    #[error("required: false with roles {0:?}: roles need an authenticated caller (set roles: [] to open the route)")]
    OpenWithRoles(Vec<String>),
}

/// What routes are built from: the sections compiled before them.
pub struct Sections<'a> {
    pub upstreams: &'a BTreeMap<String, Arc<Upstream>>,
    pub edge: &'a Edge,
    pub has_auth: bool,
    pub redis: Option<&'a Arc<RedisHandle>>,
    /// The running routes, whose limiters carry over when their policy stays.
    pub previous: &'a [Arc<Route>],
    /// Builds (or keeps) the middlewares of `plugins` entries.
    pub plugins: &'a Pool,
    /// The top-level `plugins`, built.
    pub top_plugins: &'a [Entry],
}

/// A group with its settings parsed.
struct Group<'a> {
    cfg: &'a GroupConfig,
    prefix: String,
    ip_rules: IpRules,
    rate_limit: Option<Level>,
    plugins: Vec<Entry>,
}

/// What every route of the file reads beside its own entry.
struct Shared<'a> {
    parsed: &'a Parsed,
    sections: &'a Sections<'a>,
    has_redis: bool,
    /// The global `rate_limit`, parsed.
    global_limit: Option<Level>,
    /// The HTTPS listener's port, for redirects (its own errors are reported with `listen`).
    tls_port: Option<u16>,
}

/// Every route that compiled, in file order: the groups first, then each route with its group
/// merged in, then the overlap check against the routes before it.
pub fn compile(
    parsed: &Parsed,
    sections: &Sections<'_>,
    errors: &mut ConfigErrors,
) -> Vec<Arc<Route>> {
    let file = &parsed.file;
    let has_redis = file.redis.is_some();
    let shared = Shared {
        parsed,
        sections,
        has_redis,
        global_limit: file
            .rate_limit
            .as_ref()
            .map(|rl| Level::parse("rate_limit", rl, has_redis, errors)),
        tls_port: file
            .listen
            .proxy_tls
            .as_ref()
            .and_then(|t| t.addr.rsplit_once(':'))
            .and_then(|(_, port)| port.parse::<u16>().ok()),
    };
    let groups = groups(&shared, errors);
    let mut routes = Vec::with_capacity(file.routes.len());
    let mut names = HashMap::new();
    let mut overlaps = Overlaps::default();
    for (n, r) in file.routes.iter().enumerate() {
        // The index as written in the file, whatever entries before it failed to parse.
        let i = parsed.route_index.get(n).copied().unwrap_or(n);
        let path = format!("routes[{i}]");
        let before = errors.len();
        if r.name.is_empty() {
            errors.push(format!("{path}.name"), RouteError::EmptyName);
        } else if let Some(first) = names.insert(r.name.as_str(), i) {
            let name = r.name.clone();
            errors.push(
                format!("{path}.name"),
                RouteError::DuplicateName { name, first },
            );
        }
        // A reference to a declared entry that failed to parse is already reported. The rest of
        // the route is still checked.
        let group = r.group.as_ref().map(|g| {
            let found = groups.get(g.as_str());
            if found.is_none() && !parsed.declared_groups.contains(g) {
                errors.push(format!("{path}.group"), RouteError::UnknownGroup(g.clone()));
            }
            found
        });
        let route = route(&path, r, group.flatten(), &shared, errors);
        let (Some(route), false) = (route, group.is_some_and(|g| g.is_none())) else {
            continue;
        };
        if errors.len() > before {
            continue;
        }
        if let Err(other) = overlaps.claim(i, &route.prefix, route.methods) {
            let prefix = route.prefix.clone();
            errors.push(
                format!("{path}.path"),
                RouteError::Overlap { prefix, other },
            );
            continue;
        }
        routes.push(Arc::new(route));
    }
    routes
}

/// The `groups` section: each group's prefix, IP rules and rate limit parsed once, for its
/// routes to merge in.
fn groups<'a>(shared: &Shared<'a>, errors: &mut ConfigErrors) -> HashMap<&'a str, Group<'a>> {
    let mut groups = HashMap::new();
    for (name, cfg) in &shared.parsed.file.groups {
        let path = format!("groups.{name}");
        let prefix =
            normalize_prefix(&cfg.prefix).map_err(|e| errors.push(format!("{path}.prefix"), e));
        if cfg.https_redirect && shared.tls_port.is_none() {
            errors.push(format!("{path}.https_redirect"), RouteError::NoTlsListener);
        }
        let has_redis = shared.has_redis;
        let group = Group {
            cfg,
            prefix: prefix.unwrap_or_default(),
            ip_rules: IpRules::build(&path, &cfg.ip_allow, &cfg.ip_deny, errors),
            rate_limit: cfg
                .rate_limit
                .as_ref()
                .map(|rl| Level::parse(&format!("{path}.rate_limit"), rl, has_redis, errors)),
            plugins: shared.sections.plugins.level(
                &format!("{path}.plugins"),
                &cfg.plugins,
                errors,
            ),
        };
        groups.insert(name.as_str(), group);
    }
    groups
}

/// Routes by full prefix, with their methods, to tell overlapping ones apart.
#[derive(Default)]
struct Overlaps {
    by_prefix: HashMap<String, Vec<(usize, Option<MethodSet>)>>,
}

impl Overlaps {
    /// Takes `prefix` with `methods` for routes[`i`]; `Err` with the route that already serves
    /// some of them (both without `methods`, or methods in common).
    fn claim(&mut self, i: usize, prefix: &str, methods: Option<MethodSet>) -> Result<(), usize> {
        let same = self.by_prefix.entry(prefix.to_owned()).or_default();
        let clash = same.iter().find(|(_, m)| match (m, &methods) {
            (None, None) => true,
            (Some(a), Some(b)) => a.intersects(*b),
            _ => false,
        });
        if let Some((other, _)) = clash {
            return Err(*other);
        }
        same.push((i, methods));
        Ok(())
    }
}

/// One route at `path`, its group's settings merged in; `None` when a part of it did not build
/// (each problem is pushed).
fn route(
    path: &str,
    r: &RouteConfig,
    group: Option<&Group<'_>>,
    shared: &Shared<'_>,
    errors: &mut ConfigErrors,
) -> Option<Route> {
    let sections = shared.sections;
    let split = Split::build(
        path,
        r.upstream.as_ref(),
        r.upstreams.as_ref(),
        r.split.as_deref(),
        sections.upstreams,
        &shared.parsed.declared_upstreams,
        errors,
    );
    let own = normalize_prefix(&r.path)
        .map_err(|e| errors.push(format!("{path}.path"), e))
        .ok();
    let methods = methods(path, r, errors);
    let cache = crate::cache::route_policy(r.cache.as_ref());
    let websocket = websocket(path, r, errors);
    let auth = AuthPolicy::merge(group.and_then(|g| g.cfg.auth.as_ref()), r.auth.as_ref())
        .unwrap_or_else(|roles| {
            errors.push(format!("{path}.auth"), RouteError::OpenWithRoles(roles));
            AuthPolicy::default()
        });
    if auth.required && !sections.has_auth {
        errors.push(format!("{path}.auth"), RouteError::NoAuthSection);
    }
    let own_limit = r
        .rate_limit
        .as_ref()
        .map(|rl| Level::parse(&format!("{path}.rate_limit"), rl, shared.has_redis, errors));
    let own_ip = IpRules::build(path, &r.ip_allow, &r.ip_deny, errors);
    let retry = r
        .retry
        .as_ref()
        .map(|c| RetryPolicy::build(&format!("{path}.retry"), c, errors));
    let headers = SecurityHeaders::build(
        &format!("{path}.security_headers"),
        shared.parsed.file.security.headers.as_ref(),
        r.security_headers.as_deref(),
        errors,
    );
    let https_redirect = https_redirect(path, r, group, shared.tls_port, errors);
    let own_plugins = sections
        .plugins
        .level(&format!("{path}.plugins"), &r.plugins, errors);
    let middlewares = Middlewares::merge(&[
        sections.top_plugins,
        group.map_or(&[][..], |g| &g.plugins),
        &own_plugins,
    ]);
    if websocket.is_some() && split.as_ref().is_some_and(|s| s.arms().any(|(u, _)| u.h2)) {
        errors.push(format!("{path}.websocket"), RouteError::WebSocketOverH2);
    }
    let (own, split) = (own?, split?);
    let policy = Level::merge([
        shared.global_limit.as_ref(),
        group.and_then(|g| g.rate_limit.as_ref()),
        own_limit.as_ref(),
    ]);
    let limiter = policy.and_then(|p| limiter(&r.name, &p, sections));
    let empty = IpRules::default();
    let chain = Chain::build(ChainParts {
        allow_semicolon: r.allow_semicolon,
        https_redirect,
        websocket: websocket.is_some(),
        ip_rules: IpRules::combine([
            &sections.edge.ip_rules,
            group.map_or(&empty, |g| &g.ip_rules),
            &own_ip,
        ]),
        cors: sections.edge.cors.clone(),
        auth,
        limiter,
        max_body_size: sections.edge.max_body_size,
    });
    Some(Route {
        name: r.name.clone(),
        prefix: join_prefix(group.map_or("/", |g| g.prefix.as_str()), &own),
        methods,
        split,
        strip_prefix: r.strip_prefix,
        case_insensitive: r.case_insensitive,
        timeout: r.timeout.map(|t| t.0),
        retry,
        websocket,
        chain,
        headers: Arc::new(headers),
        cache,
        middlewares,
        metrics: crate::metrics::RouteMetrics::new(&r.name),
    })
}

/// The route's WebSocket idle timeout, `None` when handshakes are refused. (The options sit in
/// an untagged enum, whose parse errors would not say which key was wrong: a zero is checked
/// here instead of by `PositiveDuration`.)
fn websocket(path: &str, r: &RouteConfig, errors: &mut ConfigErrors) -> Option<Duration> {
    match &r.websocket {
        None | Some(WebSocketConfig::Enabled(false)) => None,
        Some(WebSocketConfig::Enabled(true)) => Some(DEFAULT_WEBSOCKET_IDLE),
        Some(WebSocketConfig::Options(o)) => {
            let idle = o.idle_timeout.map_or(DEFAULT_WEBSOCKET_IDLE, |d| d.0);
            if idle.is_zero() {
                let at = format!("{path}.websocket.idle_timeout");
                errors.push(at, RouteError::ZeroIdleTimeout);
            }
            Some(idle)
        }
    }
}

/// The HTTPS port plain requests are sent to, the route's setting or else its group's.
fn https_redirect(
    path: &str,
    r: &RouteConfig,
    group: Option<&Group<'_>>,
    tls_port: Option<u16>,
    errors: &mut ConfigErrors,
) -> Option<u16> {
    let redirect = r
        .https_redirect
        .unwrap_or(group.is_some_and(|g| g.cfg.https_redirect));
    match (redirect, tls_port) {
        (false, _) => None,
        (true, Some(port)) => Some(port),
        (true, None) => {
            // A group's own setting is reported once, with the group.
            if r.https_redirect.is_some() {
                errors.push(format!("{path}.https_redirect"), RouteError::NoTlsListener);
            }
            None
        }
    }
}

fn methods(path: &str, r: &RouteConfig, errors: &mut ConfigErrors) -> Option<MethodSet> {
    let list = r.methods.as_ref()?;
    if list.is_empty() {
        errors.push(format!("{path}.methods"), RouteError::NoMethods);
        return None;
    }
    Some(
        list.iter()
            .enumerate()
            .fold(MethodSet::default(), |set, (j, m)| {
                match MethodSet::bit(m) {
                    Some(bit) => set.union(bit),
                    None => {
                        errors.push(
                            format!("{path}.methods[{j}]"),
                            RouteError::UnknownMethod(m.clone()),
                        );
                        set
                    }
                }
            }),
    )
}

/// The route's limiter: the running one when the route keeps its name and policy (so its
/// counters survive the reload), else a new one.
fn limiter(route: &str, policy: &Level, sections: &Sections<'_>) -> Option<Arc<Limiter>> {
    let running = sections
        .previous
        .iter()
        .find(|r| r.name == route)
        .and_then(|r| r.chain.limiter())
        .filter(|l| l.same(policy, sections.redis));
    match running {
        Some(l) => Some(Arc::clone(l)),
        None => Limiter::build(route, policy, sections.redis).map(Arc::new),
    }
}

/// `/api/` → `/api`, `` and `/` → `/`; rejects what would not match a request path.
fn normalize_prefix(p: &str) -> Result<String, RouteError> {
    if p.is_empty() || p == "/" {
        return Ok("/".into());
    }
    if !p.starts_with('/') {
        return Err(RouteError::NoSlash(p.to_owned()));
    }
    if p.contains(['?', '#', ' ']) {
        return Err(RouteError::NotPlain(p.to_owned()));
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed[1..].split('/').any(str::is_empty) {
        return Err(RouteError::BadSegment(p.to_owned()));
    }
    match path::normalize(trimmed) {
        Ok(n) if n == trimmed => Ok(trimmed.to_owned()),
        Ok(n) => Err(RouteError::NotCanonical {
            given: p.to_owned(),
            canonical: n.into_owned(),
        }),
        Err(_) => Err(RouteError::BadSegment(p.to_owned())),
    }
}

fn join_prefix(group: &str, own: &str) -> String {
    match (group, own) {
        ("/", own) => own.to_owned(),
        (group, "/") => group.to_owned(),
        (group, own) => format!("{group}{own}"),
    }
}
