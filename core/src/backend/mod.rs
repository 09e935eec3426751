//! The backend: discovers plugins, checks them, wires their services and serves them.
//!
//! [`crate::start`] is `Backend::builder().all_linked()` with the config files of the working
//! directory, run until SIGINT or SIGTERM. [`Backend::builder`] gives full control, in code and
//! in tests.

use std::any::{Any, TypeId};
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use tokio::task::JoinHandle;

use crate::config::RootConfig;
use crate::discovery::Listen;
use crate::error::{Error, Result};
use crate::http::connection::{Control, Phase};
use crate::http::dispatch::Shared;
use crate::http::serve::{self, Server};
use crate::lifecycle::{Lifecycle, RootHealth, RootLifecycle};
use crate::plugin::registry::{
    linked_extension_points, linked_modules, linked_overrides, linked_plugins, linked_services,
};
use crate::plugin::{
    Instances, ModuleRegistration, Override, PluginInstances, PluginRegistration, Registry,
    Service, ServiceContext,
};

mod boot;
pub(crate) mod routes;
mod validate;

pub use crate::plugin::{InstalledPlugin, InstanceMetadata};
use validate::{Selection, validate};

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
    modules: Vec<&'static ModuleRegistration>,
    all_linked: bool,
    excluded: Vec<String>,
    config: Option<RootConfig>,
    overrides: Vec<(TypeId, Override, bool)>,
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
    /// Stages the server's stop; `None` once stopped.
    control: Option<Arc<Control>>,
    server: Option<JoinHandle<()>>,
    started: tokio::sync::watch::Sender<bool>,
    shutdown_delay: std::time::Duration,
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
            modules: Vec::new(),
            all_linked: false,
            excluded: Vec::new(),
            config: None,
            overrides: Vec::new(),
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
        // A second signal while shutting down means: stop now. Listened for before the line
        // that says the backend is shutting down, so that a signal sent on seeing it counts.
        let second = shutdown_signal();
        tracing::info!("Shutting down");
        tokio::spawn(async move {
            second.await;
            // The log lines that wait for the writer go out first, unless stdout is stuck.
            crate::logging::flush_within(std::time::Duration::from_secs(1));
            eprintln!("Second signal: exiting at once");
            std::process::exit(130);
        });
        self.stop().await
    }

    async fn shutdown_now(&mut self) -> Result<()> {
        // Readiness turns 503 first, so load balancers stop sending traffic during the delay,
        // and clients are moved off their connections (`Connection: close`, GOAWAY).
        self.shared.health.set_stopping();
        if let Some(control) = &self.control {
            control.enter(Phase::Draining);
        }
        if self.server.is_some() && !self.shutdown_delay.is_zero() {
            tracing::info!(
                "Waiting {} ms (serverShutdownDelay) before the server stops",
                self.shutdown_delay.as_millis()
            );
            tokio::time::sleep(self.shutdown_delay).await;
        }
        if let Some(control) = self.control.take() {
            control.enter(Phase::Closing);
        }
        // The server stops accepting; requests on connections it already accepted finish (for
        // at most the grace period). Only then do plugins shut down, and anything that still
        // reaches them is refused.
        if let Some(server) = self.server.take()
            && let Err(e) = server.await
        {
            tracing::error!("the HTTP server task failed: {e}");
        }
        self.shared
            .shutting_down
            .store(true, std::sync::atomic::Ordering::Release);
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
        if let Some(control) = self.control.take() {
            control.enter(Phase::Closing);
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

    /// Adds every module linked into this binary that extends the plugin `plugin_id`: what a
    /// plugin's development server ([`crate::dev::start`]) serves with the plugin.
    pub fn linked_modules_of(mut self, plugin_id: &str) -> Self {
        let linked = linked_modules().into_iter();
        self.modules
            .extend(linked.filter(|m| m.plugin_id == plugin_id));
        self
    }

    /// Every route this builder's plugins and modules serve, known before anything starts.
    pub(crate) fn mounted_routes(&self) -> Vec<routes::MountedRoute> {
        routes::mounted_routes(&self.selected(), &self.selected_modules())
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

    /// Adds module `M` (its plugin must be added too).
    pub fn module<M: crate::plugin::BackendModule>(mut self) -> Self {
        self.modules.push(M::registration());
        self
    }

    /// Replaces service `S` with `instance` for the whole backend (every plugin gets a clone).
    /// A service may be replaced once; a second replacement is a start-up error naming both.
    ///
    /// ```
    /// use backstage::{Auth, Backend, StaticTokens};
    /// let builder = Backend::builder().service(Auth::new(StaticTokens::from_pairs([("token-for-tests", "tests")]).unwrap()));
    /// ```
    #[track_caller]
    pub fn service<S: Service>(self, instance: S) -> Self {
        self.replace::<S>(crate::plugin::value_override(instance))
    }

    /// Replaces the factory of service `S`: `factory` runs where the default factory would (once
    /// per backend for root services, once per plugin otherwise) and may use
    /// [`ServiceContext::default_of`] to wrap the default implementation.
    ///
    /// ```
    /// use backstage::plugin::{BoxFuture, ServiceContext};
    /// use backstage::{Backend, Logger, Result};
    ///
    /// fn quiet_logger<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Logger>> {
    ///     Box::pin(async move { Ok(Logger::for_plugin(&format!("quiet-{}", ctx.plugin_id().unwrap_or("root")))) })
    /// }
    /// let builder = Backend::builder().factory(quiet_logger);
    /// ```
    #[track_caller]
    pub fn factory<S, F>(self, factory: F) -> Self
    where
        S: Service,
        F: for<'a> Fn(&'a ServiceContext<'_>) -> crate::plugin::BoxFuture<'a, Result<S>>
            + Send
            + Sync
            + 'static,
    {
        self.replace::<S>(Arc::new(move |ctx| {
            let made = factory(ctx);
            Box::pin(async move { Ok(Arc::new(made.await?) as Arc<dyn Any + Send + Sync>) })
        }))
    }

    #[track_caller]
    fn replace<S: Service>(mut self, factory: crate::plugin::OverrideFn) -> Self {
        let caller = std::panic::Location::caller();
        let replacement = Override {
            service: S::ID,
            factory,
            location: format!("{}:{}", caller.file(), caller.line()),
        };
        self.overrides
            .push((TypeId::of::<S>(), replacement, S::OVERRIDABLE));
        self
    }

    /// The plugins this builder will start, sorted by id.
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

    /// The modules this builder will start: the ones added, and with `all_linked` every linked
    /// module; sorted by plugin and module id.
    fn selected_modules(&self) -> Vec<&'static ModuleRegistration> {
        let mut modules: Vec<&'static ModuleRegistration> = Vec::new();
        let linked = if self.all_linked {
            linked_modules()
        } else {
            Vec::new()
        };
        for module in self.modules.iter().copied().chain(linked) {
            let already = modules.iter().any(|m| (m.type_id)() == (module.type_id)());
            if !already && !self.excluded.iter().any(|id| id == module.plugin_id) {
                modules.push(module);
            }
        }
        modules.sort_by(|a, b| (a.plugin_id, a.module_id).cmp(&(b.plugin_id, b.module_id)));
        modules
    }

    /// Checks the plugins, binds, initialises every module and plugin and starts serving.
    /// Returns once the backend is ready (readiness answers 200).
    pub async fn start(self) -> Result<Backend> {
        let started = Instant::now();
        let plugins = self.selected();
        let modules = self.selected_modules();
        let overrides = validate(&Selection {
            plugins: &plugins,
            modules: &modules,
            services: &linked_services(),
            extension_points: &linked_extension_points(),
            code_overrides: &self.overrides,
            linked_overrides: &linked_overrides(),
        })?;
        let config = self.config.unwrap_or_else(RootConfig::empty);
        let policies = boot::BootPolicies::from_config(&config, self.all_linked)?;
        let server = Server::from_config(&config)?;
        let shutdown_delay = server.shutdown_delay;

        let listen = Listen::from_config(&config)?;
        let listener = serve::bind(&listen).await?;
        let addr = listener
            .local_addr()
            .map_err(|e| Error::internal(format!("cannot read the bound address: {e}")))?;
        let metadata = InstanceMetadata::new(&plugins, &modules);
        let registry = Arc::new(Registry {
            config,
            bound: Some(addr),
            root: Instances::default(),
            overrides,
            metadata,
        });
        let root_ctx = ServiceContext {
            registry: &registry,
            plugin: None,
        };
        let health = root_ctx.get::<RootHealth>().await?;
        let (started_tx, started_rx) = tokio::sync::watch::channel(false);
        let running = server.start(listener, health, started_rx);
        // Backstage's words: `Listening on :7007` when no host is configured.
        match listen.host.as_str() {
            host if host.contains(':') => tracing::info!("Listening on [{host}]:{}", addr.port()),
            host => tracing::info!("Listening on {host}:{}", addr.port()),
        }
        let ids: Vec<&'static str> = plugins.iter().map(|p| p.id).collect();
        let module_names: Vec<String> = modules
            .iter()
            .map(|m| format!("{}.{}", m.plugin_id, m.module_id))
            .collect();
        tracing::info!("Plugins discovered: {}", list_or_none(&ids));
        tracing::info!("Modules discovered: {}", list_or_none(&module_names));

        let mut backend = Backend {
            addr,
            plugins: ids,
            shared: running.shared,
            registry: registry.clone(),
            plugin_instances: Vec::new(),
            control: Some(running.control),
            server: Some(running.task),
            started: started_tx,
            shutdown_delay,
        };
        match boot::boot(&registry, &plugins, &modules, &policies, &mut backend).await {
            Ok(()) => {
                let _ = backend.started.send(true);
                backend.shared.health.set_started();
                tracing::info!("Backend started in {} ms", started.elapsed().as_millis());
                routes::log(&routes::mounted_routes(&plugins, &modules));
                if plugins.is_empty() && self.all_linked {
                    tracing::warn!("{NO_PLUGINS}");
                }
                Ok(backend)
            }
            Err(e) => {
                let _ = backend.shutdown_now().await;
                Err(e)
            }
        }
    }
}

fn list_or_none(items: &[impl AsRef<str>]) -> String {
    if items.is_empty() {
        return "none".to_owned();
    }
    items
        .iter()
        .map(AsRef::as_ref)
        .collect::<Vec<_>>()
        .join(", ")
}

const NO_PLUGINS: &str = "No plugins are linked into this backend yet. Create one with \
`cargo backstage new backend-plugin --id <id>`, which also links it here; a plugin crate counts only when the binary names it: \
add the crate as a dependency and write `use carmen_backend as _;` (with your crate's name) in main.rs";

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
///
/// With `--list-routes` it prints every route it would serve (method, full path, auth policy,
/// handler) and exits without starting.
pub fn start() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = std::env::current_dir()
        .map_err(|e| Error::internal(format!("cannot read the working directory: {e}")))
        .and_then(|dir| RootConfig::load(args.iter().cloned(), &dir));
    run_process(Backend::builder().all_linked(), config, &args, |_| Ok(()));
}

/// What `start` and [`crate::dev::start`] share: `--list-routes`, logging, the runtime, signals
/// and exit codes. `before` runs once logging is set up, before the backend starts.
pub(crate) fn run_process(
    builder: BackendBuilder,
    config: Result<RootConfig>,
    args: &[String],
    before: impl FnOnce(&RootConfig) -> Result<()>,
) {
    if args.iter().any(|a| a == "--list-routes") {
        let table = routes::render(&builder.mounted_routes());
        let _ = std::io::Write::write_all(&mut std::io::stdout(), table.as_bytes());
        return;
    }
    let config = match config {
        Ok(config) => config,
        Err(e) => fail(&e.to_string()),
    };
    crate::logging::init(&config);
    if let Err(e) = before(&config) {
        fail(&e.to_string());
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => fail(&format!("cannot start the tokio runtime: {e}")),
    };
    let result = runtime.block_on(async {
        let signal = shutdown_signal();
        let backend = builder.config(config).start().await?;
        backend.run_until(signal).await
    });
    if let Err(e) = result {
        fail(&e.to_string());
    }
    drop(runtime);
    crate::logging::flush();
}

fn fail(message: &str) -> ! {
    crate::logging::flush();
    eprintln!("Backend failed to start: {message}");
    std::process::exit(1)
}
