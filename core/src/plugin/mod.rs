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

mod config;
mod metadata;
mod operation;
mod policy;
pub(crate) mod registry;

pub use metadata::{InstalledPlugin, InstanceMetadata};
pub use operation::Operation;
pub use policy::AuthPolicyKind;

pub use registry::{
    AnyPlugin, BuildRouterFn, CreateFn, Dependency, EagerFn, ExtensionPointRegistration, InitFn,
    InitRegistration, ModuleRegistration, MultitonCreateFn, MultitonRegistration, OverrideCreateFn,
    OverrideRegistration, PluginRegistration, RouteInfo, RoutesRegistration, ServiceRegistration,
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
    /// Whether a backend may replace this service's factory (`PluginMetadata` may not).
    const OVERRIDABLE: bool = true;

    /// The default factory.
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>>;

    /// Adapts an instance that a replacement (`Backend::builder().service(..)` or `.factory(..)`)
    /// made to the plugin `plugin_id` it is handed to. The default keeps it as it is; `Auth`
    /// uses it to know whose restrictions to check and whose tokens to issue.
    fn bind_to_plugin(self, plugin_id: &'static str) -> Self {
        let _ = plugin_id;
        self
    }
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
    /// For an extension point: the id of the plugin that owns it. Only that plugin and its
    /// modules may inject it; the macros check this at compile time.
    const OWNER_PLUGIN: Option<&'static str> = None;
    /// For an extension point: the message when another plugin's code injects it.
    const WRONG_PLUGIN: &'static str = "";

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

/// The ids of the services a core service's default factory gets, from their types:
/// `dependencies!(RootConfig, Discovery)`.
macro_rules! dependencies {
    ($($service:ty),* $(,)?) => {
        &[$(<$service as $crate::plugin::Service>::ID),*]
    };
}
pub(crate) use dependencies;

/// Lists core services for the start-up checks (ids, scopes, dependencies), from the module
/// that defines them; `root` marks the ones root services may inject:
/// `register!(root RootLogger, Logger);`.
macro_rules! register {
    () => {};
    (root $service:ty $(, $($rest:tt)*)?) => {
        impl<C> $crate::plugin::RootInjectable<C> for $service {}
        $crate::plugin::register!($service $(, $($rest)*)?);
    };
    ($service:ty $(, $($rest:tt)*)?) => {
        ::inventory::submit! {
            $crate::plugin::ServiceRegistration::of::<$service>(::core::file!(), ::core::line!())
        }
        $($crate::plugin::register!($($rest)*);)?
    };
}
pub(crate) use register;

/// What `#[backend_module]` implements: the module's plugin and id and how to build it.
pub trait BackendModule: Send + Sync + Sized + 'static {
    /// The id of the plugin the module extends.
    const PLUGIN_ID: &'static str;
    /// The module id, unique within its plugin.
    const MODULE_ID: &'static str;
    /// Builds the module by injecting its dependencies.
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>>;
    /// The registration `#[backend_module]` submitted for this module.
    fn registration() -> &'static ModuleRegistration;
}

/// The plugin whose routes a type's `#[routes]` serve: the plugin itself, or the plugin a
/// module extends. Implemented by `#[backend_plugin]` and `#[backend_module]`; the typed client
/// `#[routes]` generates calls that plugin.
#[doc(hidden)]
pub trait RoutesOwner {
    /// The plugin's id.
    const PLUGIN_ID: &'static str;
}

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

/// A replacement factory for one service, type-erased.
pub(crate) type OverrideFn = Arc<
    dyn for<'a> Fn(&'a ServiceContext<'_>) -> BoxFuture<'a, Result<Arc<dyn Any + Send + Sync>>>
        + Send
        + Sync,
>;

/// A replacement factory that hands out clones of `instance`.
pub(crate) fn value_override<S: Service>(instance: S) -> OverrideFn {
    let instance: Arc<dyn Any + Send + Sync> = Arc::new(instance);
    Arc::new(move |_ctx| {
        let value = instance.clone();
        Box::pin(async move {
            let value = value
                .downcast_ref::<S>()
                .cloned()
                .ok_or_else(|| Error::internal("a replacement of the wrong type"))?;
            Ok(Arc::new(value) as Arc<dyn Any + Send + Sync>)
        })
    })
}

/// A replacement of one service's default factory, and where it was declared.
#[derive(Clone)]
pub(crate) struct Override {
    pub(crate) service: &'static str,
    pub(crate) factory: OverrideFn,
    pub(crate) location: String,
}

/// Everything shared by the whole backend: config, root instances, overrides.
pub(crate) struct Registry {
    pub(crate) config: RootConfig,
    /// The address the backend is bound to.
    pub(crate) bound: Option<std::net::SocketAddr>,
    pub(crate) root: Instances,
    pub(crate) overrides: HashMap<TypeId, Override>,
    pub(crate) metadata: InstanceMetadata,
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
        let (instances, ctx) = self.scoped::<T>()?;
        let cell = instances.cell(id);
        let registry = self.registry;
        let value = cell
            .get_or_try_init(|| async move {
                match registry.overrides.get(&id) {
                    Some(replacement) => {
                        let value = (replacement.factory)(&ctx).await?;
                        match ctx.plugin_id() {
                            Some(plugin_id) => {
                                let adapted = downcast::<T>(&value)?.bind_to_plugin(plugin_id);
                                Ok::<_, Error>(Arc::new(adapted) as Arc<dyn Any + Send + Sync>)
                            }
                            None => Ok(value),
                        }
                    }
                    None => {
                        let service = T::create(&ctx).await?;
                        Ok(Arc::new(service) as Arc<dyn Any + Send + Sync>)
                    }
                }
            })
            .await?;
        downcast::<T>(value)
    }

    /// A fresh instance from `T`'s default factory, ignoring any override: what an override
    /// uses to decorate the default implementation.
    ///
    /// ```
    /// use backstage::plugin::{BoxFuture, ServiceContext};
    /// use backstage::{Backend, Result, UserInfo};
    ///
    /// fn decorated<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<UserInfo>> {
    ///     Box::pin(async move {
    ///         let default = ctx.default_of::<UserInfo>().await?;
    ///         Ok(default) // wrap it here
    ///     })
    /// }
    /// let builder = Backend::builder().factory(decorated);
    /// ```
    pub async fn default_of<T: Service>(&self) -> Result<T> {
        let (_, ctx) = self.scoped::<T>()?;
        T::create(&ctx).await
    }

    /// The plugin's instance of extension point `E`, created empty on first use.
    pub async fn extension_point<E: ExtensionPointValue>(&self) -> Result<E> {
        let Some(plugin) = self.plugin else {
            return Err(Error::internal(format!(
                "the extension point {} was requested outside of a plugin",
                std::any::type_name::<E>()
            )));
        };
        let cell = plugin.instances.cell(TypeId::of::<E>());
        let value = cell
            .get_or_init(|| async { Arc::new(E::default()) as Arc<dyn Any + Send + Sync> })
            .await;
        downcast::<E>(value)
    }

    /// Metadata of this backend instance: its plugins and their modules.
    pub fn instance_metadata(&self) -> &InstanceMetadata {
        &self.registry.metadata
    }

    fn scoped<T: Service>(&self) -> Result<(&'a Instances, ServiceContext<'a>)> {
        if T::Scope::IS_ROOT {
            return Ok((
                &self.registry.root,
                ServiceContext {
                    registry: self.registry,
                    plugin: None,
                },
            ));
        }
        match self.plugin {
            Some(plugin) => Ok((
                &plugin.instances,
                ServiceContext {
                    registry: self.registry,
                    plugin: Some(plugin),
                },
            )),
            None => Err(Error::internal(format!(
                "the plugin-scoped service {} was requested outside of a plugin",
                T::ID
            ))),
        }
    }
}

/// What an extension point is: one instance per plugin, made with `Default` and shared by the
/// plugin and its modules through `Clone`.
#[diagnostic::on_unimplemented(
    message = "the extension point `{Self}` must be `Clone + Default`",
    label = "not `Clone + Default`",
    note = "each plugin gets one instance, made with `Default::default()` and cloned into the plugin and its modules: derive `Clone, Default` and keep shared state in `Arc` fields"
)]
pub trait ExtensionPointValue: Clone + Default + Send + Sync + 'static {}
impl<T: Clone + Default + Send + Sync + 'static> ExtensionPointValue for T {}

/// Every registered implementation of `T` (usually a trait object, `Multi<dyn Validator>`):
/// the services declared with `#[service(provides = dyn Validator)]`, sorted by service id.
/// Empty when there are none.
///
/// ```
/// use backstage::plugin::Multi;
/// # trait Validator: Send + Sync {}
/// fn count(validators: &Multi<dyn Validator>) -> usize {
///     validators.len()
/// }
/// ```
pub struct Multi<T: ?Sized> {
    items: Vec<Arc<T>>,
}

impl<T: ?Sized> Clone for Multi<T> {
    fn clone(&self) -> Self {
        Multi {
            items: self.items.clone(),
        }
    }
}

impl<T: ?Sized> fmt::Debug for Multi<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Multi")
            .field("len", &self.items.len())
            .finish()
    }
}

impl<T: ?Sized> std::ops::Deref for Multi<T> {
    type Target = [Arc<T>];
    fn deref(&self) -> &[Arc<T>] {
        &self.items
    }
}

impl<T: ?Sized + Send + Sync + 'static> Inject for Multi<T> {
    const ID: &'static str = "core.multiton";
    fn inject<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let target = TypeId::of::<T>();
            let mut providers: Vec<&MultitonRegistration> = inventory::iter::<MultitonRegistration>
                .into_iter()
                .filter(|r| (r.target)() == target)
                .collect();
            providers.sort_by(|a, b| a.service.cmp(b.service));
            let mut items = Vec::with_capacity(providers.len());
            for provider in providers {
                let item = (provider.create)(ctx).await?;
                match item.downcast::<Arc<T>>() {
                    Ok(item) => items.push(*item),
                    Err(_) => {
                        return Err(Error::internal(format!(
                            "the multiton provider {} does not provide {}",
                            provider.service,
                            std::any::type_name::<T>()
                        )));
                    }
                }
            }
            Ok(Multi { items })
        })
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
