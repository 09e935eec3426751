//! Plugins, services and the traits the macros implement.
//!
//! A plugin is a struct with `#[backend_plugin]`; its `#[inject]` fields are its dependencies.
//! Everything that can be injected implements [`Inject`]; the core services implement
//! [`Service`], which says whether the service lives once per backend ([`Root`]) or once per
//! plugin ([`PluginScoped`]) and how its default instance is made. Every service carries its
//! default factory, so a dependency can never be missing at run time; a backend may replace a
//! factory's result with [`crate::BackendBuilder::service`].

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

use tokio::sync::OnceCell;

use crate::config::RootConfig;
use crate::error::{Error, Result};

pub(crate) mod registry;

pub use registry::{
    AnyPlugin, BuildRouterFn, CreateFn, Dependency, InitFn, InitRegistration, PluginRegistration,
    RouteInfo, RoutesRegistration, ServiceRegistration,
};

/// A boxed, sendable future: what factories and generated glue return.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The scope marker of services created once per backend.
#[derive(Debug)]
pub struct Root;

/// The scope marker of services created once per plugin.
#[derive(Debug)]
pub struct PluginScoped;

/// A service scope: [`Root`] or [`PluginScoped`].
pub trait Scope: sealed::Sealed + 'static {
    /// `true` for [`Root`].
    const IS_ROOT: bool;
}
impl Scope for Root {
    const IS_ROOT: bool = true;
}
impl Scope for PluginScoped {
    const IS_ROOT: bool = false;
}
mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Root {}
    impl Sealed for super::PluginScoped {}
}

/// A backend service: something with a scope, an id and a default factory.
///
/// The core services ([`crate::Logger`], [`crate::RootConfig`], [`crate::HttpAuth`], ...)
/// implement it. A service is a cheap handle (`Clone`, usually an `Arc` inside).
///
/// ```
/// use backstage::plugin::{Service, Root, ServiceContext, BoxFuture};
///
/// #[derive(Clone)]
/// struct Clock;
/// impl Service for Clock {
///     type Scope = Root;
///     const ID: &'static str = "example.clock";
///     fn create<'a>(_ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, backstage::Result<Self>> {
///         Box::pin(async { Ok(Clock) })
///     }
/// }
/// assert_eq!(Clock::ID, "example.clock");
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a backstage service",
    label = "not a service",
    note = "inject a core service (`Logger`, `RootConfig`, `HttpAuth`, `UserInfo`, ...) or make `{Self}` a service with `#[service]`"
)]
pub trait Service: Clone + Send + Sync + 'static {
    /// [`Root`] (once per backend) or [`PluginScoped`] (once per plugin).
    type Scope: Scope;
    /// The service's id, like Backstage's (`core.logger`).
    const ID: &'static str;
    /// The ids of the services the default factory uses (for the start-up cycle check).
    const DEPENDENCIES: &'static [&'static str] = &[];
    /// The default factory.
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>>;
}

/// Anything that may stand in an `#[inject]` position: a field of a plugin, a parameter of a
/// route or of `#[init]`.
///
/// Every [`Service`] is injectable.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be injected: it is not a backstage service",
    label = "not a service",
    note = "inject a core service (`Logger`, `RootConfig`, `HttpAuth`, `UserInfo`, ...) or make `{Self}` a service with `#[service]`"
)]
pub trait Inject: Clone + Send + Sync + 'static {
    /// The id of what is injected, for the dependency table and start-up messages.
    const ID: &'static str;
    /// Produces the value for the plugin `ctx` belongs to.
    fn inject<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>>;
}

impl<T: Service> Inject for T {
    const ID: &'static str = T::ID;
    fn inject<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(ctx.get::<T>())
    }
}

/// Implemented by root-scoped services: what a root service may inject. `C` is the injecting
/// service, named in the error when a plugin-scoped service is injected into a root one.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a root service, so the root service `{C}` cannot inject it",
    label = "not a root service",
    note = "a root service lives once per backend and cannot hold a plugin's service: inject the root counterpart (`RootLogger` for `Logger`, `RootLifecycle` for `Lifecycle`, `RootHttpRouter` for `HttpRouter`), or make `{C}` plugin-scoped with `#[service(scope = \"plugin\")]`"
)]
pub trait RootInjectable<C> {}

/// What `#[backend_plugin]` implements: the plugin's id and how to build it.
pub trait BackendPlugin: Send + Sync + Sized + 'static {
    /// The plugin id; the plugin is served under `/api/<ID>`.
    const ID: &'static str;
    /// The plugin's dependency table.
    const DEPENDENCIES: &'static [Dependency];
    /// Builds the plugin by injecting its dependencies.
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>>;
    /// The registration `#[backend_plugin]` submitted for this plugin.
    fn registration() -> &'static PluginRegistration;
}

type Cell = Arc<OnceCell<Arc<dyn Any + Send + Sync>>>;

/// Instances of one scope, each created at most once.
#[derive(Default)]
pub(crate) struct Instances {
    cells: Mutex<HashMap<TypeId, Cell>>,
}

impl Instances {
    fn cell(&self, id: TypeId) -> Cell {
        let mut cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells.entry(id).or_default().clone()
    }

    /// The instance of `T` if one was made.
    pub(crate) fn existing<T: Clone + 'static>(&self) -> Option<T> {
        let cells = self.cells.lock().unwrap_or_else(|p| p.into_inner());
        cells
            .get(&TypeId::of::<T>())?
            .get()?
            .downcast_ref::<T>()
            .cloned()
    }
}

/// Everything shared by the whole backend: config, root instances, overrides.
pub(crate) struct Registry {
    pub(crate) config: RootConfig,
    /// The address the backend is bound to.
    pub(crate) bound: Option<std::net::SocketAddr>,
    pub(crate) root: Instances,
    pub(crate) overrides: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

/// The services of one plugin.
pub(crate) struct PluginInstances {
    pub(crate) id: &'static str,
    pub(crate) instances: Instances,
}

/// The context a factory or an injection runs in: the backend's services and, for plugin-scoped
/// ones, the plugin being built.
pub struct ServiceContext<'a> {
    pub(crate) registry: &'a Arc<Registry>,
    pub(crate) plugin: Option<&'a PluginInstances>,
}

impl fmt::Debug for ServiceContext<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceContext")
            .field("plugin", &self.plugin_id())
            .finish()
    }
}

impl<'a> ServiceContext<'a> {
    /// The id of the plugin being built, or `None` for root services.
    pub fn plugin_id(&self) -> Option<&'static str> {
        self.plugin.map(|p| p.id)
    }

    /// The backend's root config.
    pub fn config(&self) -> &RootConfig {
        &self.registry.config
    }

    /// The instance of service `T` for this context, created on first use.
    ///
    /// Root services are shared by the whole backend; plugin-scoped ones by one plugin.
    pub async fn get<T: Service>(&self) -> Result<T> {
        let id = TypeId::of::<T>();
        if let Some(value) = self.registry.overrides.get(&id) {
            return downcast::<T>(value);
        }
        let (instances, ctx) = if T::Scope::IS_ROOT {
            (
                &self.registry.root,
                ServiceContext {
                    registry: self.registry,
                    plugin: None,
                },
            )
        } else {
            match self.plugin {
                Some(plugin) => (
                    &plugin.instances,
                    ServiceContext {
                        registry: self.registry,
                        plugin: Some(plugin),
                    },
                ),
                None => {
                    return Err(Error::internal(format!(
                        "the plugin-scoped service {} was requested outside of a plugin",
                        T::ID
                    )));
                }
            }
        };
        let cell = instances.cell(id);
        let value = cell
            .get_or_try_init(|| async move {
                let service = T::create(&ctx).await?;
                Ok::<_, Error>(Arc::new(service) as Arc<dyn Any + Send + Sync>)
            })
            .await?;
        downcast::<T>(value)
    }
}

fn downcast<T: Clone + 'static>(value: &Arc<dyn Any + Send + Sync>) -> Result<T> {
    value.downcast_ref::<T>().cloned().ok_or_else(|| {
        Error::internal(format!(
            "service instance is not a {}",
            std::any::type_name::<T>()
        ))
    })
}
