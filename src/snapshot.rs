//! The live, immutable configuration a request runs against, and [`compile`], the one validator
//! and builder: start-up, `gateway -t` and every reload go through it. Each feature checks and
//! builds its own section; this file only puts them together, in dependency order.

use crate::auth::Auth;
use crate::balance::Upstream;
use crate::cache::Cache;
use crate::config::{check_sections, ConfigErrors, FileConfig, Parsed};
use crate::redis::RedisHandle;
use crate::routing::{Lookup, Route, RouteTable, Sections};
use crate::security::Edge;
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// Routes, upstreams and settings compiled from one file. Swapped whole on reload, so a request
/// never sees half of an update. Everything a section needs at run time (Redis connection,
/// JWKS keys, limiter counters) hangs off it, so a reload that removes a section drops it.
#[derive(Debug)]
pub struct Snapshot {
    pub table: RouteTable,
    /// Routes in file order.
    pub routes: Vec<Arc<Route>>,
    pub upstreams: BTreeMap<String, Arc<Upstream>>,
    /// The `security` section.
    pub edge: Edge,
    /// The `auth` section, when present.
    pub auth: Option<Arc<Auth>>,
    /// The `redis` section's connection, when present.
    pub redis: Option<Arc<RedisHandle>>,
    /// The `cache` section (present too when only routes enable caching).
    pub cache: Option<Arc<Cache>>,
    /// The HTTPS listener's certificates, when it has one.
    pub tls: Option<Arc<crate::tls::Certificates>>,
    /// Every middleware built for this snapshot (the next reload keeps those it still uses).
    pub plugins: crate::plugin::build::Pool,
    /// The file this snapshot was compiled from.
    pub file: Arc<FileConfig>,
    /// The etcd revision of the document compiled beside the file, when the config comes from
    /// etcd.
    pub revision: Option<i64>,
}

impl Snapshot {
    /// The path cache keys hold for the normalized `path` a purge names: as the route that
    /// serves it (for GET) keys it ([`Route::cache_path`]).
    pub fn cache_path<'a>(&self, path: &'a str) -> Cow<'a, str> {
        match self.table.lookup(path, &http::Method::GET) {
            Lookup::Found(route) => route.cache_path(path),
            _ => Cow::Borrowed(path),
        }
    }
}

/// Validates the parsed file and builds a snapshot, or returns every problem found (including
/// those from parsing). Whatever is unchanged from `previous` (upstreams, the Redis connection,
/// revocations, limiters) is carried over as the same objects, so its state survives a reload.
/// Blocking: reads key files and resolves backend names. The snapshot keeps `parsed.file` (for
/// the admin API and the next reload's comparison) without copying it.
pub fn compile(parsed: Parsed, previous: Option<&Snapshot>) -> Result<Snapshot, ConfigErrors> {
    let mut errors = parsed.errors.clone();
    let file = &parsed.file;
    check_sections(file, &mut errors);
    let redis = crate::redis::build(
        file.redis.as_ref(),
        previous.and_then(|p| p.redis.as_ref()),
        &mut errors,
    );
    let cache = crate::cache::build(
        file.cache.as_ref(),
        file.routes
            .iter()
            .any(|r| r.cache.as_ref().is_some_and(|c| c.enabled)),
        previous.and_then(|p| p.cache.as_deref()),
        redis.as_ref(),
        &mut errors,
    );
    crate::trace::check(file.tracing.as_ref(), &mut errors);
    if let Some(etcd) = &file.etcd {
        crate::etcd::check(etcd, &mut errors);
    }
    let tls = file
        .listen
        .proxy_tls
        .as_ref()
        .and_then(|t| crate::tls::Certificates::load(t, &mut errors))
        .map(Arc::new);
    let upstreams = crate::balance::build(
        &file.upstreams,
        previous.map(|p| &p.upstreams),
        file.etcd.is_some(),
        &mut errors,
    );
    let edge = crate::security::build(&file.security, &mut errors);
    let auth = crate::auth::build(
        file.auth.as_ref(),
        previous.and_then(|p| p.auth.as_deref()),
        redis.as_ref(),
        parsed.demo,
        &mut errors,
    );
    let plugins = crate::plugin::build::Pool::new(
        previous.map(|p| &p.plugins),
        redis.as_ref(),
        parsed.declared_upstreams.iter().cloned(),
    );
    let top_plugins = plugins.level("plugins", &file.plugins, &mut errors);
    let routes = crate::routing::compile(
        &parsed,
        &Sections {
            upstreams: &upstreams,
            edge: &edge,
            has_auth: file.auth.is_some(),
            redis: redis.as_ref(),
            previous: previous.map_or(&[], |p| p.routes.as_slice()),
            plugins: &plugins,
            top_plugins: &top_plugins,
        },
        &mut errors,
    );
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(Snapshot {
        table: RouteTable::build(&routes),
        routes,
        upstreams,
        edge,
        auth,
        redis,
        cache,
        tls,
        plugins,
        revision: parsed.revision,
        file: Arc::new(parsed.file),
    })
}

/// What the file accepts but should not rely on (weak secrets), for `gateway -t` and the log.
pub fn warnings(file: &FileConfig) -> Vec<String> {
    crate::auth::warnings(file.auth.as_ref())
}
