//! Start-up, in Backstage's order: eager root services; then every plugin in parallel, each
//! with its modules first (a module that provides an extension point after the modules that
//! use it), then the plugin's `#[init]`; then plugin start-up hooks; then root start-up hooks.
//!
//! A plugin or module that fails to start aborts start-up unless `backend.startup` says
//! `continue` for it; a plugin allowed to fail answers 503 `ServiceUnavailableError`.

use std::collections::{BTreeSet, HashMap};
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::response::IntoResponse;
use serde::Deserialize;

use super::Backend;
use crate::config::RootConfig;
use crate::error::{Error, Result};
use crate::http::HttpRouter;
use crate::http::dispatch::Routes;
use crate::http::gate::Gate;
use crate::lifecycle::{Lifecycle, RootLifecycle};
use crate::plugin::registry::{linked_extension_points, linked_services, routes_of};
use crate::plugin::{
    ExtensionPointRegistration, ModuleRegistration, PluginInstances, PluginRegistration, Registry,
    ServiceContext,
};

/// What to do when a plugin or module fails to start.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnFailure {
    Abort,
    Continue,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Defaults {
    on_plugin_boot_failure: Option<OnFailure>,
    on_plugin_module_boot_failure: Option<OnFailure>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct PluginPolicy {
    on_plugin_boot_failure: Option<OnFailure>,
    #[serde(default)]
    modules: HashMap<String, ModulePolicy>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct ModulePolicy {
    on_plugin_module_boot_failure: Option<OnFailure>,
}

/// `backend.startup`, as Backstage reads it.
#[derive(Default)]
pub(crate) struct BootPolicies {
    defaults: Defaults,
    plugins: HashMap<String, PluginPolicy>,
    /// Whether the backend runs everything linked (then every linked root service starts).
    pub(crate) all_linked: bool,
}

impl BootPolicies {
    pub(crate) fn from_config(config: &RootConfig, all_linked: bool) -> Result<Self> {
        Ok(BootPolicies {
            all_linked,
            defaults: config
                .get_optional("backend.startup.default")?
                .unwrap_or_default(),
            plugins: config
                .get_optional("backend.startup.plugins")?
                .unwrap_or_default(),
        })
    }

    fn plugin(&self, plugin: &str) -> OnFailure {
        self.plugins
            .get(plugin)
            .and_then(|p| p.on_plugin_boot_failure)
            .or(self.defaults.on_plugin_boot_failure)
            .unwrap_or(OnFailure::Abort)
    }

    fn module(&self, plugin: &str, module: &str) -> OnFailure {
        self.plugins
            .get(plugin)
            .and_then(|p| p.modules.get(module))
            .and_then(|m| m.on_plugin_module_boot_failure)
            .or(self.defaults.on_plugin_module_boot_failure)
            .unwrap_or(OnFailure::Abort)
    }
}

/// The modules of `plugin_id` in start-up order, or the modules that wait on each other.
pub(crate) fn module_order<'m>(
    plugin_id: &str,
    modules: &[&'m ModuleRegistration],
    extension_points: &[&ExtensionPointRegistration],
) -> std::result::Result<Vec<&'m ModuleRegistration>, Vec<&'m ModuleRegistration>> {
    let mine: Vec<&ModuleRegistration> = modules
        .iter()
        .copied()
        .filter(|m| m.plugin_id == plugin_id)
        .collect();
    // Module `m` must start before module `p` when `m` injects an extension point `p` provides.
    let provider = |dependency: &str| {
        extension_points
            .iter()
            .find(|ep| ep.id == dependency && ep.plugin_id == plugin_id)
            .and_then(|ep| ep.module_id)
    };
    let waits_for = |module: &ModuleRegistration| -> Vec<&str> {
        mine.iter()
            .filter(|other| other.module_id != module.module_id)
            .filter(|other| {
                other
                    .dependencies
                    .iter()
                    .any(|d| provider(d.service) == Some(module.module_id))
            })
            .map(|other| other.module_id)
            .collect()
    };
    let mut ordered: Vec<&ModuleRegistration> = Vec::new();
    let mut left = mine.clone();
    while !left.is_empty() {
        let ready: Vec<&ModuleRegistration> = left
            .iter()
            .copied()
            .filter(|m| {
                waits_for(m)
                    .iter()
                    .all(|w| ordered.iter().any(|o| o.module_id == *w))
            })
            .collect();
        if ready.is_empty() {
            return Err(left);
        }
        left.retain(|m| !ready.iter().any(|r| r.module_id == m.module_id));
        ordered.extend(ready);
    }
    Ok(ordered)
}

pub(super) async fn boot(
    registry: &Arc<Registry>,
    plugins: &[&'static PluginRegistration],
    modules: &[&'static ModuleRegistration],
    policies: &BootPolicies,
    backend: &mut Backend,
) -> Result<()> {
    let root_ctx = ServiceContext {
        registry,
        plugin: None,
    };
    for service in eager_services(plugins, modules, policies.all_linked) {
        if let Some(make) = service.eager {
            make(&root_ctx).await.map_err(|e| {
                Error::internal(format!(
                    "root service {} ({}:{}) failed to start: {e}",
                    service.id, service.file, service.line
                ))
            })?;
        }
    }

    let instances: Vec<Arc<PluginInstances>> = plugins
        .iter()
        .map(|p| {
            Arc::new(PluginInstances {
                id: p.id,
                instances: Default::default(),
            })
        })
        .collect();
    backend.plugin_instances = instances.clone();
    let extension_points = linked_extension_points();
    let pending: Arc<Mutex<BTreeSet<&'static str>>> =
        Arc::new(Mutex::new(plugins.iter().map(|p| p.id).collect()));
    let progress = tokio::spawn(report_progress(pending.clone()));
    let booted = futures_util::future::join_all(plugins.iter().zip(&instances).map(
        |(plugin, instances)| {
            let pending = pending.clone();
            let extension_points = &extension_points;
            async move {
                let result = boot_plugin(
                    registry,
                    plugin,
                    modules,
                    extension_points,
                    instances,
                    policies,
                )
                .await;
                pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(plugin.id);
                result
            }
        },
    ))
    .await;
    progress.abort();

    let mut routers = crate::http::dispatch::PluginRouters::default();
    let mut failures = Vec::new();
    for (plugin, result) in plugins.iter().zip(booted) {
        match result {
            Ok(router) => {
                routers.insert(plugin.id, router);
            }
            Err(e) if policies.plugin(plugin.id) == OnFailure::Continue => {
                tracing::error!(
                    plugin = plugin.id,
                    "Plugin '{}' failed to start and is unavailable (onPluginBootFailure: continue): {e}",
                    plugin.id
                );
                routers.insert(plugin.id, unavailable(plugin.id));
            }
            Err(e) => failures.push(format!(
                "plugin '{}' ({}) failed to start: {e}",
                plugin.id,
                plugin.location()
            )),
        }
    }
    if !failures.is_empty() {
        return Err(Error::internal(failures.join("\n")));
    }
    let mut root = Router::new();
    for (path, router) in root_ctx.get::<crate::http::RootHttpRouter>().await?.take() {
        root = catch_router_panic(&format!("root router at '{path}'"), || {
            if path == "/" {
                root.merge(router)
            } else {
                root.nest(&path, router)
            }
        })?;
    }
    if backend
        .shared
        .routes
        .set(Routes {
            plugins: routers,
            root,
        })
        .is_err()
    {
        return Err(Error::internal("the backend was booted twice"));
    }
    for plugin in &instances {
        if let Some(lifecycle) = plugin.instances.existing::<Lifecycle>() {
            super::run_startup_hooks(
                lifecycle.hooks.take_startup(),
                &format!("plugin '{}'", plugin.id),
            )
            .await?;
        }
    }
    if let Some(lifecycle) = registry.root.existing::<RootLifecycle>() {
        super::run_startup_hooks(lifecycle.hooks.take_startup(), "root").await?;
    }
    Ok(())
}

/// The root services made at start-up: with `all_linked`, every linked one (linking installs);
/// otherwise those the selected plugins and modules depend on, directly or through other
/// services. Lazy ones are left out either way.
fn eager_services(
    plugins: &[&'static PluginRegistration],
    modules: &[&'static ModuleRegistration],
    all_linked: bool,
) -> Vec<&'static crate::plugin::ServiceRegistration> {
    let services = linked_services();
    if all_linked {
        return services.into_iter().filter(|s| s.eager.is_some()).collect();
    }
    let mut reached: BTreeSet<&str> = BTreeSet::new();
    let mut next: Vec<&str> = plugins
        .iter()
        .flat_map(|p| p.dependencies)
        .chain(modules.iter().flat_map(|m| m.dependencies))
        .map(|d| d.service)
        .collect();
    while let Some(id) = next.pop() {
        if reached.insert(id)
            && let Some(service) = services.iter().find(|s| s.id == id)
        {
            next.extend(service.dependencies.iter().copied());
        }
    }
    services
        .into_iter()
        .filter(|s| s.eager.is_some() && reached.contains(s.id))
        .collect()
}

/// Logs, every few seconds, which plugins are still initialising.
async fn report_progress(pending: Arc<Mutex<BTreeSet<&'static str>>>) {
    let mut interval = tokio::time::interval(Duration::from_secs(3));
    interval.tick().await;
    loop {
        interval.tick().await;
        let waiting: Vec<&str> = pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        if waiting.is_empty() {
            return;
        }
        tracing::info!(
            "Plugin initialization in progress, still initializing: {}",
            waiting.join(", ")
        );
    }
}

/// The router of a plugin that failed to start and was allowed to.
fn unavailable(id: &'static str) -> Router {
    Router::new().fallback(move || async move {
        Error::service_unavailable(format!(
            "Plugin '{id}' failed to start; its routes are unavailable"
        ))
        .into_response()
    })
}

async fn boot_plugin(
    registry: &Arc<Registry>,
    plugin: &'static PluginRegistration,
    modules: &[&'static ModuleRegistration],
    extension_points: &[&ExtensionPointRegistration],
    instances: &PluginInstances,
    policies: &BootPolicies,
) -> Result<Router> {
    let ctx = ServiceContext {
        registry,
        plugin: Some(instances),
    };
    let ordered = module_order(plugin.id, modules, extension_points)
        .map_err(|_| Error::internal("modules wait on each other's extension points"))?;
    let mut router = Router::new();
    for module in ordered {
        match boot_module(module, &ctx).await {
            Ok(module_router) => {
                router = catch_router_panic(
                    &format!("the routes of module '{}'", module.module_id),
                    || router.merge(module_router),
                )?;
            }
            Err(e) if policies.module(plugin.id, module.module_id) == OnFailure::Continue => {
                tracing::error!(
                    plugin = plugin.id,
                    "Module '{}' of plugin '{}' failed to start and is skipped (onPluginModuleBootFailure: continue): {e}",
                    module.module_id,
                    plugin.id
                );
            }
            Err(e) => {
                return Err(Error::internal(format!(
                    "module '{}' ({}) failed to start: {e}",
                    module.module_id,
                    module.location()
                )));
            }
        }
    }

    let instance = (plugin.create)(&ctx).await?;
    let block_router = run_blocks((plugin.type_id)(), instance, &ctx).await?;
    router = catch_router_panic("#[routes]", || router.merge(block_router))?;

    let http_router = ctx.get::<HttpRouter>().await?;
    let gate = Gate::for_plugin(&ctx).await?;
    for hand_written in http_router.take().routers {
        let guarded = guard(hand_written, &gate);
        router = catch_router_panic("a router added with HttpRouter::use_router", || {
            router.merge(guarded)
        })?;
    }
    // Backstage's scheduler endpoints, behind the plugin's default auth policy, and its auth
    // endpoints (public keys, user cookie), which apply their own.
    let scheduler = ctx.get::<crate::scheduler::Scheduler>().await?;
    let scheduler = guard(crate::scheduler::endpoints::router(scheduler), &gate);
    router = catch_router_panic("the scheduler endpoints", || router.merge(scheduler))?;
    // Backstage's actions endpoints, in a plugin that uses the actions registry (its
    // `#[action]`s use it), as Backstage's registry mounts them when a plugin depends on it.
    if let Some(actions) = instances
        .instances
        .existing::<crate::actions::ActionsRegistry>()
    {
        let endpoints = guard(crate::actions::endpoints::router(actions), &gate);
        router = catch_router_panic("the actions endpoints", || router.merge(endpoints))?;
    }
    // The permission integration endpoints, in a plugin that uses the permissions registry,
    // as Backstage's registry mounts them when a plugin depends on it.
    if let Some(registry) = instances
        .instances
        .existing::<crate::permissions::PermissionsRegistry>()
    {
        let endpoints = guard(crate::permissions::endpoints::router(registry), &gate);
        router = catch_router_panic("the permission endpoints", || router.merge(endpoints))?;
    }
    let auth = ctx.get::<crate::auth::Auth>().await?;
    if let Some(database) = instances.instances.existing::<crate::database::Database>() {
        auth.share_database(database);
    }
    let http_auth = ctx.get::<crate::auth::HttpAuth>().await?;
    let auth_routes = crate::auth::endpoints::router(auth, http_auth);
    router = catch_router_panic("the auth endpoints", || router.merge(auth_routes))?;
    // The plugin's OpenAPI document, unauthenticated as Backstage serves its plugins' specs,
    // unless a route of the plugin serves that path itself.
    if !crate::openapi::served_by_routes(plugin.id, (plugin.type_id)()) {
        let openapi = crate::openapi::router(plugin.id, (plugin.type_id)());
        router = catch_router_panic("the OpenAPI document", || router.merge(openapi))?;
    }
    // An unknown path, or a known path with another method: the path policies first, then 404
    // NotFoundError (Backstage's Express routers answer a wrong method with 404 too). The body
    // limit is set where requests are dispatched (one layer around the router, not one around
    // each route).
    let fallback_gate = gate.clone();
    let method_gate = gate;
    Ok(router
        .fallback(move |request: axum::extract::Request| fallback_gate.clone().not_found(request))
        .method_not_allowed_fallback(move |request: axum::extract::Request| {
            method_gate.clone().not_found(request)
        }))
}

/// `router` behind the plugin's path policies and default auth policy.
fn guard(router: Router, gate: &Gate) -> Router {
    let gate = gate.clone();
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let gate = gate.clone();
            async move {
                let (mut parts, body) = request.into_parts();
                if let Err(response) = gate.check_path(&mut parts).await {
                    return response;
                }
                next.run(axum::extract::Request::from_parts(parts, body))
                    .await
            }
        },
    ))
}

async fn boot_module(
    module: &'static ModuleRegistration,
    ctx: &ServiceContext<'_>,
) -> Result<Router> {
    let instance = (module.create)(ctx).await?;
    run_blocks((module.type_id)(), instance, ctx).await
}

/// Runs the `#[init]` of every `#[routes]` block of `instance`'s type, then builds their routers.
async fn run_blocks(
    type_id: std::any::TypeId,
    instance: crate::plugin::AnyPlugin,
    ctx: &ServiceContext<'_>,
) -> Result<Router> {
    let blocks = routes_of(type_id);
    for block in &blocks {
        if let Some(init) = &block.init {
            (init.run)(instance.clone(), ctx).await.map_err(|e| {
                Error::internal(format!(
                    "#[init] {} ({}:{}) failed: {e}",
                    init.name, init.file, init.line
                ))
            })?;
        }
    }
    for block in &blocks {
        if let Some(register) = block.actions {
            register(instance.clone(), ctx).await.map_err(|e| {
                Error::internal(format!(
                    "the #[action]s of {} ({}:{}) could not be registered: {e}",
                    (block.plugin_type)(),
                    block.file,
                    block.line
                ))
            })?;
        }
    }
    let mut router = Router::new();
    for block in &blocks {
        let block_router = (block.build)(instance.clone(), ctx).await?;
        router = catch_router_panic("#[routes]", || router.merge(block_router))?;
    }
    Ok(router)
}

/// axum panics when two routers overlap; at start-up that is an error naming the router.
pub(super) fn catch_router_panic(what: &str, merge: impl FnOnce() -> Router) -> Result<Router> {
    std::panic::catch_unwind(AssertUnwindSafe(merge)).map_err(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_default();
        Error::internal(format!(
            "{what} conflicts with routes already served: {message}"
        ))
    })
}
