//! What the macros submit to `inventory`, and how the backend finds it.

use std::any::{Any, TypeId};
use std::sync::Arc;

use super::{BackendPlugin, BoxFuture, ServiceContext};
use crate::error::Result;
use crate::http::AuthPolicyKind;

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
}

impl ServiceRegistration {
    /// The registration of service `S`, declared at `file:line`.
    pub const fn of<S: super::Service>(file: &'static str, line: u32) -> Self {
        ServiceRegistration {
            id: S::ID,
            root: <S::Scope as super::Scope>::IS_ROOT,
            dependencies: S::DEPENDENCIES,
            file,
            line,
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
