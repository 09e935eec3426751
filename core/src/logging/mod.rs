//! The `rootLogger` and `logger` services, on `tracing`.
//!
//! [`crate::start`] installs a subscriber that prints readable lines, at the level named by
//! `LOG_LEVEL` (default `info`; any `tracing` filter works, e.g. `LOG_LEVEL=debug`). A plugin's
//! [`Logger`] adds `plugin=<id>` to every line. Other subscribers can be installed instead: the
//! services only emit `tracing` events.

use std::fmt::Display;
use std::sync::Arc;

use crate::error::Result;
use crate::plugin::{BoxFuture, PluginScoped, Root, Service, ServiceContext};

/// The `logger` service of one plugin: every line carries `plugin=<id>`.
///
/// ```
/// let logger = backstage::Logger::for_plugin("carmen");
/// logger.info("PONG!");
/// ```
#[derive(Clone, Debug)]
pub struct Logger {
    plugin: Arc<str>,
}

impl Logger {
    /// A logger for plugin `id`.
    pub fn for_plugin(id: &str) -> Self {
        Logger { plugin: id.into() }
    }

    /// The plugin id this logger names.
    pub fn plugin(&self) -> &str {
        &self.plugin
    }

    /// Logs at error level.
    pub fn error(&self, message: impl Display) {
        tracing::error!(plugin = %self.plugin, "{message}");
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl Display) {
        tracing::warn!(plugin = %self.plugin, "{message}");
    }

    /// Logs at info level.
    pub fn info(&self, message: impl Display) {
        tracing::info!(plugin = %self.plugin, "{message}");
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl Display) {
        tracing::debug!(plugin = %self.plugin, "{message}");
    }
}

impl Service for Logger {
    type Scope = PluginScoped;
    const ID: &'static str = "core.logger";
    const DEPENDENCIES: &'static [&'static str] = &["core.rootLogger", "core.pluginMetadata"];
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move { Ok(Logger::for_plugin(ctx.plugin_id().unwrap_or("root"))) })
    }
}

/// The `rootLogger` service: logging for the backend itself.
///
/// ```
/// backstage::RootLogger::default().info("Listening on :7007");
/// ```
#[derive(Clone, Debug, Default)]
pub struct RootLogger {
    _private: (),
}

impl RootLogger {
    /// Logs at error level.
    pub fn error(&self, message: impl Display) {
        tracing::error!("{message}");
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl Display) {
        tracing::warn!("{message}");
    }

    /// Logs at info level.
    pub fn info(&self, message: impl Display) {
        tracing::info!("{message}");
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl Display) {
        tracing::debug!("{message}");
    }
}

impl Service for RootLogger {
    type Scope = Root;
    const ID: &'static str = "core.rootLogger";
    fn create<'a>(_ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async { Ok(RootLogger::default()) })
    }
}

/// Installs the default subscriber (readable lines on stderr, level from `LOG_LEVEL`), unless
/// one is installed already.
pub(crate) fn init() {
    let filter = std::env::var("LOG_LEVEL").unwrap_or_else(|_| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}
