//! What the macros submit to `inventory`, and how the backend finds it.

use std::any::{Any, TypeId};
use std::sync::Arc;

use super::AuthPolicyKind;
use super::{BackendPlugin, BoxFuture, ServiceContext};
use crate::error::Result;

/// One `#[inject]` dependency of a plugin: which field asks for which service, and where.
#[derive(Clone, Copy, Debug)]
pub struct Dependency {
    /// The field (or parameter) name.
    pub field: &'static str,
    /// The service id.
    pub service: &'static str,
    /// Source file of the declaration.
    pub file: &'static str,
    /// Source line of the declaration.
    pub line: u32,
}

/// A type-erased plugin instance.
pub type AnyPlugin = Arc<dyn Any + Send + Sync>;

/// Builds a plugin instance.
pub type CreateFn = for<'a> fn(&'a ServiceContext<'_>) -> BoxFuture<'a, Result<AnyPlugin>>;

/// What `#[backend_plugin]` submits for each plugin.
#[derive(Debug)]
pub struct PluginRegistration {
    /// The plugin id.
    pub id: &'static str,
    /// The plugin type's `TypeId`.
    pub type_id: fn() -> TypeId,
    /// The plugin type's name, for messages.
    pub type_name: fn() -> &'static str,
    /// The plugin's dependency table.
    pub dependencies: &'static [Dependency],
    /// Builds the plugin.
    pub create: CreateFn,
    /// Where the plugin is declared.
    pub file: &'static str,
    /// Where the plugin is declared.
    pub line: u32,
}

impl PluginRegistration {
    /// The registration of plugin type `P`, declared at `file:line`.
    pub const fn of<P: BackendPlugin>(file: &'static str, line: u32) -> Self {
        PluginRegistration {
            id: P::ID,
            type_id: TypeId::of::<P>,
            type_name: std::any::type_name::<P>,
            dependencies: P::DEPENDENCIES,
            create: create_plugin::<P>,
            file,
            line,
        }
    }

    /// `file:line` of the declaration.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

fn create_plugin<'a, P: BackendPlugin>(
    ctx: &'a ServiceContext<'_>,
) -> BoxFuture<'a, Result<AnyPlugin>> {
    Box::pin(async move { Ok(Arc::new(P::create(ctx).await?) as AnyPlugin) })
}

/// One route of a `#[routes]` block: its method, path and auth policy.
#[derive(Clone, Copy, Debug)]
pub struct RouteInfo {
    /// Upper-case HTTP method (`GET`).
    pub method: &'static str,
    /// Path relative to the plugin (`/items/{id}`).
    pub path: &'static str,
    /// The route's auth policy.
    pub auth: AuthPolicyKind,
    /// The handler's name.
    pub handler: &'static str,
    /// Where the route is declared.
    pub file: &'static str,
    /// Where the route is declared.
    pub line: u32,
    /// The first line of the handler's doc comment.
    pub summary: &'static str,
    /// The rest of the handler's doc comment.
    pub description: &'static str,
    /// Whether the handler returns `Result` (so it may answer with an error).
    pub fallible: bool,
    /// Whether the handler takes only users' or only services' credentials (so it may answer
    /// 403).
    pub narrowed: bool,
    /// Describes the route's parameters and answers from the handler's types.
    pub describe: fn(&mut super::Operation<'_>),
}

/// Builds a plugin's router from its instance.
pub type BuildRouterFn =
    for<'a> fn(AnyPlugin, &'a ServiceContext<'_>) -> BoxFuture<'a, Result<axum::Router>>;

/// Runs a plugin's `#[init]`.
pub type InitFn = for<'a> fn(AnyPlugin, &'a ServiceContext<'_>) -> BoxFuture<'a, Result<()>>;

/// An `#[init]` function of a plugin.
#[derive(Debug)]
pub struct InitRegistration {
    /// Runs it.
    pub run: InitFn,
    /// The function's name.
    pub name: &'static str,
    /// Where it is declared.
    pub file: &'static str,
    /// Where it is declared.
    pub line: u32,
}

/// What `#[routes]` submits for each block.
#[derive(Debug)]
pub struct RoutesRegistration {
    /// The plugin type's `TypeId`.
    pub plugin: fn() -> TypeId,
    /// The plugin type's name, for messages.
    pub plugin_type: fn() -> &'static str,
    /// The routes of the block (its auth policy table).
    pub routes: &'static [RouteInfo],
    /// The block's `#[init]`, if any.
    pub init: Option<InitRegistration>,
    /// Registers the block's `#[action]`s with the plugin's actions registry, if it has any.
    pub actions: Option<InitFn>,
    /// Builds the block's router.
    pub build: BuildRouterFn,
    /// Where the block is.
    pub file: &'static str,
    /// Where the block is.
    pub line: u32,
}

inventory::collect!(PluginRegistration);
inventory::collect!(RoutesRegistration);

/// Every plugin linked into this binary, sorted by id.
pub(crate) fn linked_plugins() -> Vec<&'static PluginRegistration> {
    let mut plugins: Vec<_> = inventory::iter::<PluginRegistration>.into_iter().collect();
    plugins.sort_by(|a, b| {
        a.id.cmp(b.id)
            .then(a.file.cmp(b.file))
            .then(a.line.cmp(&b.line))
    });
    plugins
}

/// The `#[routes]` blocks of the plugin type `type_id`, in source order.
pub(crate) fn routes_of(type_id: TypeId) -> Vec<&'static RoutesRegistration> {
    let mut blocks: Vec<_> = inventory::iter::<RoutesRegistration>
        .into_iter()
        .filter(|r| (r.plugin)() == type_id)
        .collect();
    blocks.sort_by(|a, b| a.file.cmp(b.file).then(a.line.cmp(&b.line)));
    blocks
}

/// What every service submits: its id, scope and dependencies, for the start-up checks.
#[derive(Debug)]
pub struct ServiceRegistration {
    /// The service id.
    pub id: &'static str,
    /// Whether it is root-scoped.
    pub root: bool,
    /// The ids of the services its default factory uses.
    pub dependencies: &'static [&'static str],
    /// Where the service is declared.
    pub file: &'static str,
    /// Where the service is declared.
    pub line: u32,
    /// For root services made at start-up rather than on first use: makes it.
    pub eager: Option<EagerFn>,
}

impl ServiceRegistration {
    /// The registration of service `S`, declared at `file:line`, made on first use.
    pub const fn of<S: super::Service>(file: &'static str, line: u32) -> Self {
        ServiceRegistration {
            id: S::ID,
            root: <S::Scope as super::Scope>::IS_ROOT,
            dependencies: S::DEPENDENCIES,
            file,
            line,
            eager: None,
        }
    }

    /// The registration of root service `S`, made at start-up before any plugin.
    pub const fn eager<S: super::Service>(file: &'static str, line: u32) -> Self {
        ServiceRegistration {
            eager: Some(make_root::<S>),
            ..Self::of::<S>(file, line)
        }
    }
}

inventory::collect!(ServiceRegistration);

/// Every service linked into this binary.
pub(crate) fn linked_services() -> Vec<&'static ServiceRegistration> {
    let mut services: Vec<_> = inventory::iter::<ServiceRegistration>.into_iter().collect();
    services.sort_by(|a, b| a.id.cmp(b.id));
    services
}

/// What `#[backend_module]` submits for each module.
#[derive(Debug)]
pub struct ModuleRegistration {
    /// The id of the plugin the module extends.
    pub plugin_id: &'static str,
    /// The module id, unique within its plugin.
    pub module_id: &'static str,
    /// The module type's `TypeId`.
    pub type_id: fn() -> TypeId,
    /// The module type's name, for messages.
    pub type_name: fn() -> &'static str,
    /// The module's dependency table.
    pub dependencies: &'static [Dependency],
    /// Builds the module.
    pub create: CreateFn,
    /// Where the module is declared.
    pub file: &'static str,
    /// Where the module is declared.
    pub line: u32,
}

impl ModuleRegistration {
    /// The registration of module type `M`, declared at `file:line`.
    pub const fn of<M: super::BackendModule>(
        dependencies: &'static [Dependency],
        file: &'static str,
        line: u32,
    ) -> Self {
        ModuleRegistration {
            plugin_id: M::PLUGIN_ID,
            module_id: M::MODULE_ID,
            type_id: TypeId::of::<M>,
            type_name: std::any::type_name::<M>,
            dependencies,
            create: create_module::<M>,
            file,
            line,
        }
    }

    /// `file:line` of the declaration.
    pub fn location(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }
}

/// What `#[extension_point]` submits: which plugin (and module) owns it.
#[derive(Debug)]
pub struct ExtensionPointRegistration {
    /// The extension point's id.
    pub id: &'static str,
    /// The plugin that owns it.
    pub plugin_id: &'static str,
    /// The module of that plugin that owns it, when a module provides it.
    pub module_id: Option<&'static str>,
}

/// Creates one implementation of a multiton, boxed as `Arc<T>`.
pub type MultitonCreateFn =
    for<'a> fn(&'a ServiceContext<'_>) -> BoxFuture<'a, Result<Box<dyn Any + Send>>>;

/// What `#[service(provides = dyn Trait)]` submits: one implementation of a multiton.
#[derive(Debug)]
pub struct MultitonRegistration {
    /// `TypeId` of what is provided (`dyn Trait`).
    pub target: fn() -> TypeId,
    /// The providing service's id.
    pub service: &'static str,
    /// Builds the implementation.
    pub create: MultitonCreateFn,
}

/// Creates the replacement of a service, type-erased.
pub type OverrideCreateFn =
    for<'a> fn(&'a ServiceContext<'_>) -> BoxFuture<'a, Result<Arc<dyn Any + Send + Sync>>>;

/// What `#[service_factory]` submits: a replacement of a service's default factory.
#[derive(Debug)]
pub struct OverrideRegistration {
    /// `TypeId` of the service replaced.
    pub service: fn() -> TypeId,
    /// The id of the service replaced.
    pub service_id: &'static str,
    /// Whether the service may be replaced.
    pub overridable: bool,
    /// Builds the replacement.
    pub create: OverrideCreateFn,
    /// Where the factory is declared.
    pub file: &'static str,
    /// Where the factory is declared.
    pub line: u32,
}

/// Makes a root service ahead of time.
pub type EagerFn = for<'a> fn(&'a ServiceContext<'_>) -> BoxFuture<'a, Result<()>>;

inventory::collect!(ModuleRegistration);
inventory::collect!(ExtensionPointRegistration);
inventory::collect!(MultitonRegistration);
inventory::collect!(OverrideRegistration);

/// Every module linked into this binary, sorted by plugin and module id.
pub(crate) fn linked_modules() -> Vec<&'static ModuleRegistration> {
    let mut modules: Vec<_> = inventory::iter::<ModuleRegistration>.into_iter().collect();
    modules.sort_by(|a, b| {
        (a.plugin_id, a.module_id, a.file, a.line).cmp(&(b.plugin_id, b.module_id, b.file, b.line))
    });
    modules
}

/// Every extension point linked into this binary.
pub(crate) fn linked_extension_points() -> Vec<&'static ExtensionPointRegistration> {
    inventory::iter::<ExtensionPointRegistration>
        .into_iter()
        .collect()
}

/// Every `#[service_factory]` linked into this binary.
pub(crate) fn linked_overrides() -> Vec<&'static OverrideRegistration> {
    let mut overrides: Vec<_> = inventory::iter::<OverrideRegistration>
        .into_iter()
        .collect();
    overrides.sort_by(|a, b| (a.service_id, a.file, a.line).cmp(&(b.service_id, b.file, b.line)));
    overrides
}

/// Makes root service `S` now (used for eager root services).
pub(crate) fn make_root<'a, S: super::Service>(
    ctx: &'a ServiceContext<'_>,
) -> BoxFuture<'a, Result<()>> {
    Box::pin(async move { ctx.get::<S>().await.map(|_| ()) })
}

fn create_module<'a, M: super::BackendModule>(
    ctx: &'a ServiceContext<'_>,
) -> BoxFuture<'a, Result<AnyPlugin>> {
    Box::pin(async move { Ok(Arc::new(M::create(ctx).await?) as AnyPlugin) })
}
