//! `compile`: the one validator and builder. Start-up, `gateway -t` and every reload go through it.

use super::method::MethodSet;
use super::policy::{check_rate_limit, check_sections, merge_auth, merge_rate_limit, parse_cidr};
use super::route::{CachePolicy, Route};
use super::snapshot::Snapshot;
use super::table::{is_dot_segment, RouteTable};
use crate::auth::Auth;
use crate::balance::{Upstream, MAX_RETRIES};
use crate::config::file::{FileConfig, HealthCheckKind, UpstreamConfig};
use crate::config::{ConfigErrors, Parsed};
use crate::ratelimit::Limiter;
use crate::security::{Cors, IpRules, SecurityHeaders};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

const DEFAULT_CACHE_TTL: Duration = Duration::from_secs(60);

/// Validates the parsed file and builds a snapshot, or returns every problem found (including
/// those from parsing). Upstreams whose settings equal those in `previous` are carried over as
/// the same objects, so their state survives a reload.
pub fn compile(parsed: &Parsed, previous: Option<&Snapshot>) -> Result<Snapshot, ConfigErrors> {
    let mut errors = parsed.errors.clone();
    let file = &parsed.file;
    check_sections(file, &mut errors);

    let mut upstreams = BTreeMap::new();
    for (name, cfg) in &file.upstreams {
        let path = format!("upstreams.{name}");
        check_upstream(&path, cfg, &mut errors);
        let kept = previous
            .and_then(|p| p.upstreams.get(name))
            .filter(|u| u.config == *cfg);
        match kept {
            Some(u) => {
                upstreams.insert(name.clone(), Arc::clone(u));
            }
            None => match Upstream::build(
                name,
                cfg,
                previous
                    .and_then(|p| p.upstreams.get(name))
                    .map(Arc::as_ref),
            ) {
                Ok(u) => {
                    upstreams.insert(name.clone(), Arc::new(u));
                }
                Err(problems) => {
                    for (sub, msg) in problems {
                        errors.push(format!("{path}.{sub}"), msg);
                    }
                }
            },
        }
    }

    let global_ip = ip_rules(
        "security",
        &file.security.ip_allow,
        &file.security.ip_deny,
        &mut errors,
        false,
    );
    let mut group_ip = HashMap::new();
    let mut group_prefixes = HashMap::new();
    for (name, group) in &file.groups {
        let path = format!("groups.{name}");
        group_ip.insert(
            name.as_str(),
            ip_rules(&path, &group.ip_allow, &group.ip_deny, &mut errors, true),
        );
        match normalize_prefix(&group.prefix) {
            Ok(prefix) => {
                group_prefixes.insert(name.as_str(), prefix);
            }
            Err(e) => errors.push(format!("{path}.prefix"), e),
        }
        if let Some(rl) = &group.rate_limit {
            check_rate_limit(&format!("{path}.rate_limit"), rl, file, &mut errors);
        }
    }

    let edge = Edge {
        global_ip,
        group_ip,
        group_prefixes,
    };
    let mut routes = compile_routes(parsed, &upstreams, &edge, &mut errors);
    attach_limiters(&mut routes, file, previous, &mut errors);
    let headers =
        SecurityHeaders::build(file.security.headers.as_ref(), None).unwrap_or_else(|problems| {
            for (field, msg) in problems {
                errors.push(format!("security.headers.{field}"), msg);
            }
            SecurityHeaders::default()
        });
    let cors = file.security.cors.as_ref().and_then(|c| {
        Cors::build(c)
            .map_err(|problems| {
                for (field, msg) in problems {
                    errors.push(format!("security.cors.{field}"), msg);
                }
            })
            .ok()
    });
    let trusted_proxies = file
        .security
        .trusted_proxies
        .iter()
        .filter_map(|t| parse_cidr(t).ok())
        .collect();

    let auth = match Auth::build(file, previous.and_then(|p| p.auth.as_deref())) {
        Ok(a) => a.map(Arc::new),
        Err(problems) => {
            for (field, msg) in problems {
                errors.push(format!("auth.{field}"), msg);
            }
            None
        }
    };
    if file.auth.is_none() {
        for (i, r) in routes.iter().enumerate() {
            if r.auth.required {
                errors.push(
                    format!("routes[{i}].auth"),
                    "auth is required but there is no auth section",
                );
            }
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Snapshot {
        auth,
        table: RouteTable::build(&routes),
        routes,
        upstreams,
        trusted_proxies,
        headers: Arc::new(headers),
        cors,
        max_body_size: file.security.max_body_size.map(|s| s.0),
        file: Arc::new(file.clone()),
    })
}

/// Group-level settings routes inherit.
struct Edge<'a> {
    global_ip: IpRules,
    group_ip: HashMap<&'a str, IpRules>,
    group_prefixes: HashMap<&'a str, String>,
}

fn compile_routes(
    parsed: &Parsed,
    upstreams: &BTreeMap<String, Arc<Upstream>>,
    edge: &Edge<'_>,
    errors: &mut ConfigErrors,
) -> Vec<Arc<Route>> {
    let file = &parsed.file;
    let mut routes = Vec::with_capacity(file.routes.len());
    let mut names = HashMap::new();
    let mut by_prefix: HashMap<String, Vec<(usize, Option<MethodSet>)>> = HashMap::new();
    for (i, r) in file.routes.iter().enumerate() {
        let path = format!("routes[{i}]");
        let before = errors.len();
        // A reference to a declared entry that failed to parse is already reported.
        let mut skip = false;
        let mut fail = |field: &str, msg: String| errors.push(format!("{path}.{field}"), msg);
        if r.name.is_empty() {
            fail("name", "must not be empty".into());
        } else if let Some(first) = names.insert(r.name.as_str(), i) {
            fail(
                "name",
                format!("duplicate route name {:?} (also routes[{first}])", r.name),
            );
        }
        let group = match &r.group {
            Some(g) => match file.groups.get(g) {
                Some(cfg) => Some(cfg),
                None => {
                    if !parsed.declared_groups.contains(g) {
                        fail("group", format!("unknown group {g:?}"));
                    }
                    skip = true;
                    None
                }
            },
            None => None,
        };
        let upstream = upstreams.get(&r.upstream);
        if upstream.is_none() && !parsed.declared_upstreams.contains(&r.upstream) {
            fail("upstream", format!("unknown upstream {:?}", r.upstream));
        }
        let own = normalize_prefix(&r.path).map_err(|e| fail("path", e)).ok();
        let methods = match &r.methods {
            None => None,
            Some(list) if list.is_empty() => {
                fail(
                    "methods",
                    "must not be empty (omit it to allow every method)".into(),
                );
                None
            }
            Some(list) => Some(list.iter().enumerate().fold(
                MethodSet::default(),
                |set, (j, m)| match MethodSet::bit(m) {
                    Some(bit) => set.union(bit),
                    None => {
                        fail(&format!("methods[{j}]"), format!("unknown method {m:?}"));
                        set
                    }
                },
            )),
        };
        if r.timeout.is_some_and(|t| t.0.is_zero()) {
            fail("timeout", "must be positive".into());
        }
        if r.cache
            .as_ref()
            .is_some_and(|c| c.ttl.is_some_and(|t| t.0.is_zero()))
        {
            fail("cache.ttl", "must be positive".into());
        }
        if let Some(rl) = &r.rate_limit {
            check_rate_limit(&format!("{path}.rate_limit"), rl, file, errors);
        }
        let route_ip = ip_rules(&path, &r.ip_allow, &r.ip_deny, errors, true);
        let headers =
            SecurityHeaders::build(file.security.headers.as_ref(), r.security_headers.as_ref())
                .unwrap_or_else(|problems| {
                    for (field, msg) in problems {
                        errors.push(format!("{path}.security_headers.{field}"), msg);
                    }
                    SecurityHeaders::default()
                });
        let group_prefix = r.group.as_deref().and_then(|g| edge.group_prefixes.get(g));
        let empty = IpRules::default();
        let group_ip = r
            .group
            .as_deref()
            .and_then(|g| edge.group_ip.get(g))
            .unwrap_or(&empty);
        let ok = !skip && errors.len() == before;
        let (Some(own), Some(upstream), true) = (own, upstream, ok) else {
            continue;
        };
        let prefix = join_prefix(group_prefix.map_or("/", String::as_str), &own);
        let same = by_prefix.entry(prefix.clone()).or_default();
        if let Some((other, _)) = same.iter().find(|(_, m)| match (m, &methods) {
            (None, None) => true,
            (Some(a), Some(b)) => a.intersects(*b),
            _ => false,
        }) {
            errors.push(
                format!("{path}.path"),
                format!("{prefix} with these methods is already served by routes[{other}]"),
            );
            continue;
        }
        same.push((i, methods));
        routes.push(Arc::new(Route {
            name: r.name.clone(),
            prefix,
            methods,
            upstream: Arc::clone(upstream),
            strip_prefix: r.strip_prefix,
            timeout: r.timeout.map(|t| t.0),
            auth: merge_auth(group.and_then(|g| g.auth.as_ref()), r.auth.as_ref()),
            rate_limit: merge_rate_limit([
                file.rate_limit.as_ref(),
                group.and_then(|g| g.rate_limit.as_ref()),
                r.rate_limit.as_ref(),
            ]),
            cache: r.cache.as_ref().filter(|c| c.enabled).map(|c| CachePolicy {
                ttl: c
                    .ttl
                    .or_else(|| file.cache.as_ref().and_then(|cc| cc.default_ttl))
                    .map_or(DEFAULT_CACHE_TTL, |t| t.0),
            }),
            headers: Arc::new(headers),
            ip_rules: IpRules::combine([&edge.global_ip, group_ip, &route_ip]),
            limiter: None,
        }));
    }
    routes
}

fn check_upstream(path: &str, cfg: &UpstreamConfig, errors: &mut ConfigErrors) {
    for (i, b) in cfg.backends.iter().enumerate() {
        if b.weight == 0 {
            errors.push(format!("{path}.backends[{i}].weight"), "must be at least 1");
        }
    }
    if cfg.retries.is_some_and(|r| r >= MAX_RETRIES) {
        errors.push(
            format!("{path}.retries"),
            format!("must be below {MAX_RETRIES}"),
        );
    }
    for (field, d) in [
        ("connect_timeout", cfg.connect_timeout),
        ("read_timeout", cfg.read_timeout),
    ] {
        if d.is_some_and(|d| d.0.is_zero()) {
            errors.push(format!("{path}.{field}"), "must be positive");
        }
    }
    if let Some(hc) = &cfg.health_check {
        let hp = format!("{path}.health_check");
        match (hc.kind, &hc.path) {
            (HealthCheckKind::Http, Some(p)) if !p.starts_with('/') => {
                errors.push(format!("{hp}.path"), "must start with /")
            }
            (HealthCheckKind::Tcp, Some(_)) => {
                errors.push(format!("{hp}.path"), "only http checks have a path")
            }
            _ => {}
        }
        for (field, d) in [("interval", hc.interval), ("timeout", hc.timeout)] {
            if d.is_some_and(|d| d.0.is_zero()) {
                errors.push(format!("{hp}.{field}"), "must be positive");
            }
        }
        for (field, n) in [
            ("healthy_threshold", hc.healthy_threshold),
            ("unhealthy_threshold", hc.unhealthy_threshold),
        ] {
            if n == Some(0) {
                errors.push(format!("{hp}.{field}"), "must be at least 1");
            }
        }
    }
}

/// Builds each route's limiter from its merged policy, keeping the running limiter (and its
/// buckets) when the route and its policy are unchanged.
fn attach_limiters(
    routes: &mut [Arc<Route>],
    file: &FileConfig,
    previous: Option<&Snapshot>,
    errors: &mut ConfigErrors,
) {
    let redis = file.redis.as_ref().and_then(|r| {
        let timeout = r.timeout.map_or(crate::redis::DEFAULT_TIMEOUT, |t| t.0);
        r.url.as_deref().map(|url| (url, timeout))
    });
    for (i, route) in routes.iter_mut().enumerate() {
        let Some(policy) = &route.rate_limit else {
            continue;
        };
        let kept = previous
            .and_then(|p| p.routes.iter().find(|r| r.name == route.name))
            .and_then(|r| r.limiter.clone())
            .filter(|l| l.policy == *policy);
        let limiter = match kept {
            Some(l) => l,
            None => match Limiter::build(&route.name, policy, redis) {
                Ok(l) => Arc::new(l),
                Err(e) => {
                    errors.push(format!("routes[{i}].rate_limit"), e);
                    continue;
                }
            },
        };
        match Arc::get_mut(route) {
            Some(r) => r.limiter = Some(limiter),
            None => errors.push(
                format!("routes[{i}].rate_limit"),
                "internal: route already shared",
            ),
        }
    }
}

/// Parses allow/deny CIDR lists under `path` (`report` false: already checked elsewhere).
fn ip_rules(
    path: &str,
    allow: &[String],
    deny: &[String],
    errors: &mut ConfigErrors,
    report: bool,
) -> IpRules {
    let mut parse = |field: &str, list: &[String]| -> Vec<ipnet::IpNet> {
        list.iter()
            .enumerate()
            .filter_map(|(i, text)| {
                parse_cidr(text)
                    .map_err(|e| {
                        if report {
                            errors.push(format!("{path}.{field}[{i}]"), e);
                        }
                    })
                    .ok()
            })
            .collect()
    };
    IpRules {
        allow: parse("ip_allow", allow),
        deny: parse("ip_deny", deny),
    }
}

/// `/api/` → `/api`, `` and `/` → `/`; rejects what would not match a request path.
fn normalize_prefix(p: &str) -> Result<String, String> {
    if p.is_empty() || p == "/" {
        return Ok("/".into());
    }
    if !p.starts_with('/') {
        return Err(format!("{p:?} must start with /"));
    }
    if p.contains(['?', '#', ' ']) {
        return Err(format!(
            "{p:?} must be a plain path (no query, fragment or spaces)"
        ));
    }
    let trimmed = p.trim_end_matches('/');
    if trimmed[1..]
        .split('/')
        .any(|s| s.is_empty() || is_dot_segment(s))
    {
        return Err(format!("{p:?} has an empty, . or .. segment"));
    }
    Ok(trimmed.to_owned())
}

fn join_prefix(group: &str, own: &str) -> String {
    match (group, own) {
        ("/", own) => own.to_owned(),
        (group, "/") => group.to_owned(),
        (group, own) => format!("{group}{own}"),
    }
}

/// Names the settings that parse and validate but have no effect in this build yet, so start-up
/// can say so in the log.
pub fn inactive_settings(file: &FileConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if file.cache.is_some()
        || file
            .routes
            .iter()
            .any(|r| r.cache.as_ref().is_some_and(|c| c.enabled))
    {
        out.push("cache");
    }
    if file.admin.is_some() {
        out.push("admin (the admin listener and dashboard)");
    }
    out
}
