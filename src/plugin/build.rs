//! `plugins` lists (top level, groups, routes) into each route's middlewares: every entry built
//! once through the registry, the levels merged, instances kept across reloads.

use super::registry::{registry, Handler};
use super::BuildContext;
use crate::config::file::PluginConfig;
use crate::config::ConfigErrors;
use std::sync::{Arc, Mutex, MutexGuard};

/// One built entry: its name, settings and middleware.
pub struct Instance {
    name: String,
    settings: serde_yaml::Value,
    pub(crate) handler: Arc<dyn Handler>,
}

impl std::fmt::Debug for Instance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Instance")
            .field("name", &self.name)
            .finish()
    }
}

impl Instance {
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A problem with a `plugins` entry.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    #[error("unknown middleware {name:?}{hint}")]
    Unknown { name: String, hint: String },
    #[error("{0}")]
    Settings(super::BuildError),
}

/// A level's entry as it merges: built when enabled.
pub struct Entry {
    name: String,
    instance: Option<Arc<Instance>>,
}

/// Every instance built for a snapshot; a reload looks entries up here first, so an entry
/// whose name and settings did not change keeps its middleware (and whatever state it holds).
#[derive(Debug, Default)]
pub struct Pool {
    instances: Mutex<Vec<Arc<Instance>>>,
    /// The running snapshot's instances.
    previous: Vec<Arc<Instance>>,
    /// What middlewares are built with (the `redis` section's connection).
    context: BuildContext,
}

impl Pool {
    /// A pool for a config with this `redis` connection and these upstreams. The running
    /// instances are kept only when both are the same (a middleware may hold the connection, or
    /// have checked a name).
    pub fn new(
        previous: Option<&Pool>,
        redis: Option<&Arc<crate::redis::RedisHandle>>,
        upstreams: impl Iterator<Item = String>,
    ) -> Pool {
        let context = BuildContext::new(redis, upstreams);
        let same_redis = |p: &&Pool| p.context.same(&context);
        Pool {
            instances: Mutex::default(),
            previous: previous
                .filter(same_redis)
                .map_or_else(Vec::new, |p| p.built().clone()),
            context,
        }
    }

    /// The entries of one `plugins` list at `path` (`routes[2].plugins`), each built or reused.
    pub fn level(
        &self,
        path: &str,
        list: &[PluginConfig],
        errors: &mut ConfigErrors,
    ) -> Vec<Entry> {
        let mut entries = Vec::with_capacity(list.len());
        for (i, cfg) in list.iter().enumerate() {
            let at = format!("{path}[{i}]");
            let instance = if cfg.enabled {
                match self.instance(cfg) {
                    Ok(instance) => Some(instance),
                    Err(e) => {
                        let at = match &e {
                            PluginError::Unknown { .. } => format!("{at}.name"),
                            PluginError::Settings(b) if b.at.is_empty() => format!("{at}.settings"),
                            PluginError::Settings(b) if b.at.starts_with('[') => {
                                format!("{at}.settings{}", b.at)
                            }
                            PluginError::Settings(b) => format!("{at}.settings.{}", b.at),
                        };
                        errors.push(at, e);
                        continue;
                    }
                }
            } else {
                None
            };
            entries.push(Entry {
                name: cfg.name.clone(),
                instance,
            });
        }
        entries
    }

    /// Filled while a config compiles, then only read (by the next reload).
    fn built(&self) -> MutexGuard<'_, Vec<Arc<Instance>>> {
        self.instances.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn instance(&self, cfg: &PluginConfig) -> Result<Arc<Instance>, PluginError> {
        let same = |i: &&Arc<Instance>| i.name == cfg.name && i.settings == cfg.settings;
        if let Some(found) = self.built().iter().find(same) {
            return Ok(Arc::clone(found));
        }
        let instance = match self.previous.iter().find(same) {
            Some(running) => Arc::clone(running),
            None => {
                let registry = registry();
                let built = registry
                    .build(&cfg.name, cfg.settings.clone(), &self.context)
                    .ok_or_else(|| {
                        let likely =
                            crate::config::wording::closest(&cfg.name, registry.middleware_names());
                        PluginError::Unknown {
                            name: cfg.name.clone(),
                            hint: likely
                                .map_or_else(String::new, |l| format!(" (did you mean {l:?}?)")),
                        }
                    })?;
                Arc::new(Instance {
                    name: cfg.name.clone(),
                    settings: cfg.settings.clone(),
                    handler: built.map_err(PluginError::Settings)?,
                })
            }
        };
        self.built().push(Arc::clone(&instance));
        Ok(instance)
    }
}

/// A route's middlewares, in the order they run; empty for most routes.
#[derive(Debug, Default, Clone)]
pub struct Middlewares(Option<Arc<[Arc<Instance>]>>, Needs);

/// What a route's middlewares ask of a request, worked out once when the route is built.
#[derive(Debug, Default, Clone, Copy)]
pub struct Needs {
    /// Some middleware has a request phase.
    pub request_phase: bool,
    /// Some middleware reads the whole request body.
    pub body: bool,
    /// Some middleware has a logging phase.
    pub logging: bool,
}

impl Middlewares {
    /// The levels merged, widest first: each level's entries follow the wider ones', except
    /// that a name a narrower level lists replaces the wider levels' entries of that name (and
    /// `enabled: false` only removes them).
    pub fn merge(levels: &[&[Entry]]) -> Middlewares {
        let mut out: Vec<(&str, Option<&Arc<Instance>>)> = Vec::new();
        for level in levels {
            out.retain(|(name, _)| !level.iter().any(|e| e.name == *name));
            out.extend(level.iter().map(|e| (e.name.as_str(), e.instance.as_ref())));
        }
        let list: Vec<Arc<Instance>> = out.into_iter().filter_map(|(_, i)| i.cloned()).collect();
        let needs = Needs {
            request_phase: list.iter().any(|i| i.handler.has_request_phase()),
            body: list.iter().any(|i| i.handler.needs_body()),
            logging: list.iter().any(|i| i.handler.has_logging_phase()),
        };
        if list.is_empty() {
            Middlewares(None, needs)
        } else {
            Middlewares(Some(list.into()), needs)
        }
    }

    pub fn needs(&self) -> Needs {
        self.1
    }

    pub fn get(&self) -> Option<&Arc<[Arc<Instance>]>> {
        self.0.as_ref()
    }

    /// The names, in order (the admin API's effective values).
    pub fn names(&self) -> Vec<&str> {
        self.0
            .as_deref()
            .map_or_else(Vec::new, |l| l.iter().map(|i| i.name()).collect())
    }
}
