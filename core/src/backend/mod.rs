//! The backend: discovers plugins, checks them, wires their services and serves them.
//!
//! [`crate::start`] is `Backend::builder().all_linked()` with the config files of the working
//! directory, run until SIGINT or SIGTERM. [`Backend::builder`] gives full control, in code and
//! in tests.

use std::any::{Any, TypeId};
use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use axum::Router;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use crate::config::RootConfig;
use crate::discovery::Listen;
use crate::error::{Error, Result};
use crate::http::HttpRouter;
use crate::http::dispatch::{Dispatcher, Routes, Shared, security_headers};
use crate::http::gate::Gate;
use crate::lifecycle::{Lifecycle, RootHealth, RootLifecycle};
use crate::plugin::registry::{linked_plugins, linked_services, routes_of};
use crate::plugin::{
    Instances, PluginInstances, PluginRegistration, Registry, Service, ServiceContext,
};

mod validate;

pub(crate) use validate::validate;

/// Builds a backend: which plugins, which config, which service overrides.
///
/// ```no_run
/// use backstage::Backend;
///
/// # async fn example() -> backstage::Result<()> {
/// let backend = Backend::builder()
///     .all_linked()
///     .config_value(serde_json::json!({ "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } }))
///     .start()
///     .await?;
/// println!("serving on {}", backend.local_addr());
/// backend.stop().await
/// # }
/// ```
#[must_use = "a builder does nothing until `start` is called"]
pub struct BackendBuilder {
    plugins: Vec<&'static PluginRegistration>,
    all_linked: bool,
    excluded: Vec<String>,
    config: Option<RootConfig>,
    overrides: HashMap<TypeId, Arc<dyn Any + Send + Sync>>,
}

impl fmt::Debug for BackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BackendBuilder")
            .field(
                "plugins",
                &self.plugins.iter().map(|p| p.id).collect::<Vec<_>>(),
            )
            .field("all_linked", &self.all_linked)
            .field("excluded", &self.excluded)
            .finish()
    }
}

/// A running backend.
pub struct Backend {
    addr: SocketAddr,
    plugins: Vec<&'static str>,
    shared: Arc<Shared>,
    registry: Arc<Registry>,
    plugin_instances: Vec<Arc<PluginInstances>>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<std::io::Result<()>>>,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("addr", &self.addr)
            .field("plugins", &self.plugins)
            .finish()
    }
}

impl Backend {
    /// A builder with no plugins, an empty config and the default services.
    pub fn builder() -> BackendBuilder {
        BackendBuilder {
            plugins: Vec::new(),
            all_linked: false,
            excluded: Vec::new(),
            config: None,
            overrides: HashMap::new(),
        }
    }

    /// The address the backend listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<address><path>`, for calling the backend.
    pub fn url(&self, path: &str) -> String {
        let host = match self.addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}{path}", self.addr.port())
    }

    /// The ids of the plugins this backend serves, sorted.
    pub fn plugins(&self) -> &[&'static str] {
        &self.plugins
    }

    /// Stops the backend: readiness turns 503, the server stops accepting and finishes the
    /// requests in flight, then plugin shutdown hooks run, then root shutdown hooks.
    pub async fn stop(mut self) -> Result<()> {
        self.shutdown_now().await
    }

    /// Serves until SIGINT or SIGTERM, then stops.
    pub async fn run_until_signal(self) -> Result<()> {
        self.run_until(shutdown_signal()).await
    }

    async fn run_until(self, signal: impl std::future::Future<Output = ()>) -> Result<()> {
        signal.await;
        tracing::info!("Shutting down");
        self.stop().await
    }

    async fn shutdown_now(&mut self) -> Result<()> {
        self.shared.health.set_stopping();
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            match server.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::error!("the HTTP server failed: {e}"),
                Err(e) => tracing::error!("the HTTP server task failed: {e}"),
            }
        }
        for plugin in &self.plugin_instances {
            if let Some(lifecycle) = plugin.instances.existing::<Lifecycle>() {
                run_hooks(
                    lifecycle.hooks.take_shutdown(),
                    &format!("plugin '{}' shutdown", plugin.id),
                )
                .await;
            }
        }
        if let Some(lifecycle) = self.registry.root.existing::<RootLifecycle>() {
            run_hooks(lifecycle.hooks.take_shutdown(), "root shutdown").await;
        }
        Ok(())
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

async fn run_hooks(
    hooks: Vec<Box<dyn FnOnce() -> crate::plugin::BoxFuture<'static, Result<()>> + Send>>,
    what: &str,
) {
    for hook in hooks {
        if let Err(e) = hook().await {
            tracing::error!("a {what} hook failed: {e}");
        }
    }
}

async fn run_startup_hooks(
    hooks: Vec<Box<dyn FnOnce() -> crate::plugin::BoxFuture<'static, Result<()>> + Send>>,
    what: &str,
) -> Result<()> {
    for hook in hooks {
        hook()
            .await
            .map_err(|e| Error::internal(format!("a {what} startup hook failed: {e}")))?;
    }
    Ok(())
}

impl BackendBuilder {
    /// Adds plugin `P`.
    pub fn plugin<P: crate::plugin::BackendPlugin>(mut self) -> Self {
        self.plugins.push(P::registration());
        self
    }

    /// Adds every plugin linked into this binary (what [`crate::start`] does).
    pub fn all_linked(mut self) -> Self {
        self.all_linked = true;
        self
    }

    /// Leaves out the plugin with id `id`.
    pub fn exclude(mut self, id: &str) -> Self {
        self.excluded.push(id.to_owned());
        self
    }

    /// Uses `config` as the root config.
    pub fn config(mut self, config: RootConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Uses `value` as the root config.
    pub fn config_value(self, value: serde_json::Value) -> Self {
        self.config(RootConfig::from_value(value))
    }

    /// Replaces service `S` with `instance` for the whole backend (every plugin gets a clone).
    ///
    /// ```
    /// use backstage::{Auth, Backend, StaticTokens};
    /// let builder = Backend::builder().service(Auth::new(StaticTokens::from_pairs([("token-for-tests", "tests")]).unwrap()));
    /// ```
    pub fn service<S: Service>(mut self, instance: S) -> Self {
        self.overrides.insert(TypeId::of::<S>(), Arc::new(instance));
        self
    }

    /// The plugins this builder will start, sorted by id, and whether it was asked for every
    /// linked plugin.
    fn selected(&self) -> Vec<&'static PluginRegistration> {
        let mut plugins: Vec<&'static PluginRegistration> = Vec::new();
        let linked = if self.all_linked {
            linked_plugins()
        } else {
            Vec::new()
        };
        for plugin in self.plugins.iter().copied().chain(linked) {
            let already = plugins.iter().any(|p| (p.type_id)() == (plugin.type_id)());
            if !already && !self.excluded.iter().any(|id| id == plugin.id) {
                plugins.push(plugin);
            }
        }
        plugins.sort_by(|a, b| a.id.cmp(b.id));
        plugins
    }

    /// Checks the plugins, binds, initialises every plugin and starts serving. Returns once
    /// the backend is ready (readiness answers 200).
    pub async fn start(self) -> Result<Backend> {
        let started = Instant::now();
        let plugins = self.selected();
        if plugins.is_empty() && self.all_linked {
            return Err(Error::internal(NO_PLUGINS));
        }
        validate(&plugins, &linked_services())?;
        let config = self.config.unwrap_or_else(RootConfig::empty);

        let listener = bind(&Listen::from_config(&config)?).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("cannot read the bound address: {e}")))?;
        let registry = Arc::new(Registry {
            config,
            bound: Some(addr),
            root: Instances::default(),
            overrides: self.overrides,
        });
        let root_ctx = ServiceContext {
            registry: &registry,
            plugin: None,
        };
        let health = root_ctx.get::<RootHealth>().await?;
        let shared = Arc::new(Shared {
            health,
            routes: OnceLock::new(),
            headers: security_headers(),
        });
        let (tx, rx) = oneshot::channel::<()>();
        let dispatcher = Dispatcher {
            shared: shared.clone(),
        };
        let server = tokio::spawn(async move {
            axum::serve(listener, tower::make::Shared::new(dispatcher))
                .with_graceful_shutdown(async move {
                    let _ = rx.await;
                })
                .await
        });
        tracing::info!("Listening on {addr}");
        let ids: Vec<&'static str> = plugins.iter().map(|p| p.id).collect();
        tracing::info!(
            "Plugins discovered: {}",
            if ids.is_empty() {
                "none".to_owned()
            } else {
                ids.join(", ")
            }
        );
        tracing::info!("Modules discovered: none");

        let mut backend = Backend {
            addr,
            plugins: ids,
            shared,
            registry: registry.clone(),
            plugin_instances: Vec::new(),
            shutdown: Some(tx),
            server: Some(server),
        };
        match boot(&registry, &plugins, &mut backend).await {
            Ok(()) => {
                backend.shared.health.set_started();
                tracing::info!("Backend started in {} ms", started.elapsed().as_millis());
                Ok(backend)
            }
            Err(e) => {
                let _ = backend.shutdown_now().await;
                Err(e)
            }
        }
    }
}

const NO_PLUGINS: &str = "no plugins are linked into this binary. A plugin crate counts only when the binary names it: \
add the crate as a dependency and write `use carmen_backend as _;` (with your crate's name) in main.rs";

async fn boot(
    registry: &Arc<Registry>,
    plugins: &[&'static PluginRegistration],
    backend: &mut Backend,
) -> Result<()> {
    let instances: Vec<Arc<PluginInstances>> = plugins
        .iter()
        .map(|p| {
            Arc::new(PluginInstances {
                id: p.id,
                instances: Instances::default(),
            })
        })
        .collect();
    backend.plugin_instances = instances.clone();
    let booted = futures_util::future::join_all(
        plugins
            .iter()
            .zip(&instances)
            .map(|(plugin, instances)| boot_plugin(registry, plugin, instances)),
    )
    .await;
    let mut routers = HashMap::new();
    let mut failures = Vec::new();
    for (plugin, result) in plugins.iter().zip(booted) {
        match result {
            Ok(router) => {
                routers.insert(plugin.id, router);
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
    let root_ctx = ServiceContext {
        registry,
        plugin: None,
    };
    let mut root = Router::new();
    for (path, router) in root_ctx.get::<crate::RootHttpRouter>().await?.take() {
        root = catch_router_panic(&format!("root router at '{path}'"), || {
            if path == "/" {
                root.merge(router)
            } else {
                root.nest(&path, router)
            }
        })?;
    }
    let routes = Routes {
        plugins: routers,
        root,
    };
    if backend.shared.routes.set(routes).is_err() {
        return Err(Error::internal("the backend was booted twice"));
    }
    for plugin in &instances {
        if let Some(lifecycle) = plugin.instances.existing::<Lifecycle>() {
            run_startup_hooks(
                lifecycle.hooks.take_startup(),
                &format!("plugin '{}'", plugin.id),
            )
            .await?;
        }
    }
    if let Some(lifecycle) = registry.root.existing::<RootLifecycle>() {
        run_startup_hooks(lifecycle.hooks.take_startup(), "root").await?;
    }
    Ok(())
}

async fn boot_plugin(
    registry: &Arc<Registry>,
    plugin: &'static PluginRegistration,
    instances: &PluginInstances,
) -> Result<Router> {
    let ctx = ServiceContext {
        registry,
        plugin: Some(instances),
    };
    let instance = (plugin.create)(&ctx).await?;
    let blocks = routes_of((plugin.type_id)());
    for block in &blocks {
        if let Some(init) = &block.init {
            (init.run)(instance.clone(), &ctx).await.map_err(|e| {
                Error::internal(format!(
                    "#[init] {} ({}:{}) failed: {e}",
                    init.name, init.file, init.line
                ))
            })?;
        }
    }
    let mut router = Router::new();
    for block in &blocks {
        let block_router = (block.build)(instance.clone(), &ctx).await?;
        router = catch_router_panic("#[routes]", || router.merge(block_router))?;
    }
    let http_router = ctx.get::<HttpRouter>().await?;
    let gate = Gate::for_plugin(&ctx).await?;
    for hand_written in http_router.take().routers {
        let gate = gate.clone();
        let guarded = hand_written.layer(axum::middleware::from_fn(
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
        ));
        router = catch_router_panic("a router added with HttpRouter::use_router", || {
            router.merge(guarded)
        })?;
    }
    // An unknown path, or a known path with another method: the path policies first, then 404
    // NotFoundError (Backstage's Express routers answer a wrong method with 404 too).
    let fallback_gate = gate.clone();
    let method_gate = gate;
    Ok(router
        .fallback(move |request: axum::extract::Request| fallback_gate.clone().not_found(request))
        .method_not_allowed_fallback(move |request: axum::extract::Request| {
            method_gate.clone().not_found(request)
        }))
}

/// axum panics when two routers overlap; at start-up that is an error naming the router.
fn catch_router_panic(what: &str, merge: impl FnOnce() -> Router) -> Result<Router> {
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

async fn bind(listen: &Listen) -> Result<TcpListener> {
    let candidates: Vec<String> = if listen.host.is_empty() {
        vec![
            format!("[::]:{}", listen.port),
            format!("0.0.0.0:{}", listen.port),
        ]
    } else if listen.host.contains(':') {
        vec![format!("[{}]:{}", listen.host, listen.port)]
    } else {
        vec![format!("{}:{}", listen.host, listen.port)]
    };
    let mut last_error = None;
    for candidate in &candidates {
        match TcpListener::bind(candidate).await {
            Ok(listener) => return Ok(listener),
            Err(e) => {
                last_error = Some(format!(
                    "cannot listen on {candidate} (backend.listen): {e}"
                ))
            }
        }
    }
    Err(Error::internal(
        last_error.unwrap_or_else(|| "no address to listen on".to_owned()),
    ))
}

/// A future that completes on SIGINT or SIGTERM. The handlers are installed when this is
/// called, not when it is first polled, so a signal that arrives during start-up is not lost.
fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let term = signal(SignalKind::terminate());
        let int = signal(SignalKind::interrupt());
        async move {
            match (term, int) {
                (Ok(mut term), Ok(mut int)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = int.recv() => {}
                    }
                }
                _ => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Starts the backend with every linked plugin and the config files of the working directory
/// (`app-config.yaml`, `app-config.local.yaml`, or the `--config` arguments), serves until
/// SIGINT or SIGTERM, and exits non-zero with a message when start-up fails.
///
/// In `main.rs` of a backend binary, after naming each plugin crate
/// (`use carmen_backend as _;`: linking the crate is what installs the plugin):
///
/// ```no_run
/// backstage::start()
/// ```
pub fn start() {
    crate::logging::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => fail(&format!("cannot start the tokio runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let signal = shutdown_signal();
        let dir = std::env::current_dir()
            .map_err(|e| Error::internal(format!("cannot read the working directory: {e}")))?;
        let config = RootConfig::load(std::env::args().skip(1), &dir)?;
        let backend = Backend::builder()
            .all_linked()
            .config(config)
            .start()
            .await?;
        backend.run_until(signal).await
    });
    if let Err(e) = result {
        fail(&e.to_string());
    }
}

fn fail(message: &str) -> ! {
    eprintln!("Backend failed to start: {message}");
    std::process::exit(1)
}
