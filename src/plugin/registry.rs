//! Middlewares and balancing strategies by name; `crate::launch::Launcher` installs a
//! program's own registry for the process.

use super::balancer::{Balancer, BalancerFactory};
use super::{BodyTransform, BuildContext, BuildError, Finished, Flow, Middleware, RequestView};
use super::{ResponseView, UpstreamView};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};

/// What a request phase returns: the middleware's own boxed future, passed on as it is.
pub(crate) type FlowFuture<'a> = Pin<Box<dyn Future<Output = Flow> + Send + 'a>>;

/// A built middleware of any type, as routes hold it.
pub(crate) trait Handler: Send + Sync {
    fn request<'a>(&'a self, req: &'a mut RequestView<'_>) -> FlowFuture<'a>;
    /// Whether `request` is worth calling (see [`Middleware::REQUEST_PHASE`]).
    fn has_request_phase(&self) -> bool;
    /// Whether `logging` is worth calling (see [`Middleware::LOGGING_PHASE`]).
    fn has_logging_phase(&self) -> bool;
    fn upstream_request(&self, req: &mut UpstreamView<'_>) -> Result<(), BuildError>;
    fn response(&self, resp: &mut ResponseView<'_>);
    fn body_transform(&self, resp: &ResponseView<'_>) -> Option<Box<dyn BodyTransform>>;
    fn logging(&self, done: &Finished<'_>);
    fn needs_body(&self) -> bool;
}

impl<M: Middleware> Handler for M {
    fn request<'a>(&'a self, req: &'a mut RequestView<'_>) -> FlowFuture<'a> {
        Middleware::request(self, req)
    }
    fn has_request_phase(&self) -> bool {
        M::REQUEST_PHASE
    }
    fn has_logging_phase(&self) -> bool {
        M::LOGGING_PHASE
    }
    fn upstream_request(&self, req: &mut UpstreamView<'_>) -> Result<(), BuildError> {
        Middleware::upstream_request(self, req)
    }
    fn response(&self, resp: &mut ResponseView<'_>) {
        Middleware::response(self, resp)
    }
    fn body_transform(&self, resp: &ResponseView<'_>) -> Option<Box<dyn BodyTransform>> {
        Middleware::body_transform(self, resp)
    }
    fn logging(&self, done: &Finished<'_>) {
        Middleware::logging(self, done)
    }
    fn needs_body(&self) -> bool {
        Middleware::needs_body(self)
    }
}

type Constructor = fn(serde_yaml::Value, &BuildContext) -> Result<Arc<dyn Handler>, BuildError>;

/// Builds `M` from YAML settings; a settings problem names the key it is about.
fn construct<M: Middleware>(
    settings: serde_yaml::Value,
    ctx: &BuildContext,
) -> Result<Arc<dyn Handler>, BuildError> {
    let settings: M::Settings = serde_path_to_error::deserialize(settings).map_err(|e| {
        let at = e.path().to_string();
        let at = if at == "." { String::new() } else { at };
        BuildError::at(at, crate::config::wording::plain(&e.inner().to_string()))
    })?;
    Ok(Arc::new(M::build(settings, ctx)?))
}

/// The middlewares and balancing strategies a gateway knows, by the name the config uses.
#[derive(Clone)]
pub struct Registry {
    middlewares: BTreeMap<String, Constructor>,
    balancers: BTreeMap<String, BalancerFactory>,
}

impl Default for Registry {
    /// The built-in middlewares, no extra strategy.
    fn default() -> Registry {
        let mut registry = Registry {
            middlewares: BTreeMap::new(),
            balancers: BTreeMap::new(),
        };
        super::builtin::register(&mut registry);
        registry
    }
}

impl Registry {
    /// Adds a middleware under `name` (`plugins: [{name: ...}]`); a name registered before,
    /// built-in ones included, is replaced.
    pub fn middleware<M: Middleware>(&mut self, name: &str) -> &mut Registry {
        self.middlewares.insert(name.to_owned(), construct::<M>);
        self
    }

    /// Adds a load-balancing strategy under `name` (`upstreams.<u>.strategy: <name>`). The five
    /// built-in names cannot be replaced.
    pub fn balancer<B: Balancer>(&mut self, name: &str) -> &mut Registry {
        self.balancers
            .insert(name.to_owned(), BalancerFactory::of::<B>());
        self
    }

    /// The registered middleware names.
    pub fn middleware_names(&self) -> impl Iterator<Item = &str> {
        self.middlewares.keys().map(String::as_str)
    }

    pub(crate) fn build(
        &self,
        name: &str,
        settings: serde_yaml::Value,
        ctx: &BuildContext,
    ) -> Option<Result<Arc<dyn Handler>, BuildError>> {
        self.middlewares.get(name).map(|c| c(settings, ctx))
    }

    pub(crate) fn balancer_factory(&self, name: &str) -> Option<&BalancerFactory> {
        self.balancers.get(name)
    }

    pub(crate) fn balancer_names(&self) -> impl Iterator<Item = &str> {
        self.balancers.keys().map(String::as_str)
    }
}

static INSTALLED: OnceLock<Registry> = OnceLock::new();

/// Makes `registry` the process's; `false` when one was already in use.
pub(crate) fn install(registry: Registry) -> bool {
    INSTALLED.set(registry).is_ok()
}

/// The registry the process runs with: what `Launcher::run` installed, else the built-ins.
/// One per process, like the binary it describes: every config load (start, `-t`, reload)
/// reads it, and it never changes once set.
pub(crate) fn registry() -> &'static Registry {
    INSTALLED.get_or_init(Registry::default)
}
