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
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::logging::RootLogger, crate::discovery::PluginMetadata);
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

/// Installs the default subscriber, unless one is installed already.
///
/// - Level: `LOG_LEVEL` (any `tracing` filter, e.g. `debug` or `info,backstage::http=warn`), else
///   `backend.logger.level`, else `info`.
/// - Format: JSON lines when `NODE_ENV` or `BACKSTAGE_ENV` is `production` (Backstage's switch),
///   readable lines otherwise.
/// - `backend.logger.meta`: fields added to every line; JSON lines carry `service: backstage`
///   unless it names another, as Backstage's do.
pub(crate) fn init(config: &crate::config::RootConfig) {
    let level = std::env::var("LOG_LEVEL")
        .ok()
        .or_else(|| {
            config
                .get_optional::<String>("backend.logger.level")
                .ok()
                .flatten()
        })
        .unwrap_or_else(|| "info".to_owned());
    let filter = tracing_subscriber::EnvFilter::try_new(&level).unwrap_or_else(|_| {
        eprintln!("LOG_LEVEL / backend.logger.level '{level}' is not a log level; using info");
        tracing_subscriber::EnvFilter::new("info")
    });
    let mut meta: std::collections::BTreeMap<String, serde_json::Value> = config
        .get_optional("backend.logger.meta")
        .ok()
        .flatten()
        .unwrap_or_default();
    let production = ["NODE_ENV", "BACKSTAGE_ENV"]
        .iter()
        .any(|v| std::env::var(v).is_ok_and(|e| e == "production"));
    // Backstage's root logger names its service on every JSON line unless the config does.
    if production {
        meta.entry("service".to_owned())
            .or_insert_with(|| "backstage".into());
    }
    let ansi = !production && std::io::IsTerminal::is_terminal(&std::io::stderr());
    // A log line that cannot be written (the pipe to a log collector closed) is dropped: by
    // default tracing reports it with `eprintln!`, which panics on that same closed stderr.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .log_internal_errors(false);
    let _ = if production {
        let inner = tracing_subscriber::fmt::format().json().flatten_event(true);
        builder
            .event_format(WithMeta::new(inner, &meta, true))
            .try_init()
    } else {
        builder
            .event_format(WithMeta::new(
                tracing_subscriber::fmt::format(),
                &meta,
                false,
            ))
            .try_init()
    };
}

/// The target of audit events ([`crate::auditor`]); their JSON lines take Backstage's shape.
pub(crate) const AUDIT_TARGET: &str = "backstage::audit";

/// An audit event's JSON line as Backstage's auditor writes it: `actor`, `request` and `meta`
/// as objects (they arrive as JSON text in fields), the level in lower case, no target.
fn audit_line(line: &str) -> Option<String> {
    let serde_json::Value::Object(mut members) = serde_json::from_str(line).ok()? else {
        return None;
    };
    members.remove("target");
    if let Some(serde_json::Value::String(level)) = members.get_mut("level") {
        level.make_ascii_lowercase();
    }
    for key in ["actor", "request", "meta"] {
        if let Some(serde_json::Value::String(text)) = members.get(key)
            && let Ok(object) = serde_json::from_str(text)
        {
            members.insert(key.to_owned(), object);
        }
    }
    serde_json::to_string(&members).ok()
}

/// A formatter that appends `backend.logger.meta` to every line.
struct WithMeta<F> {
    inner: F,
    suffix: String,
    json: bool,
}

impl<F> WithMeta<F> {
    fn new(
        inner: F,
        meta: &std::collections::BTreeMap<String, serde_json::Value>,
        json: bool,
    ) -> Self {
        let suffix = meta
            .iter()
            .map(|(key, value)| {
                let text = match value {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                };
                if json {
                    format!(
                        ",{}:{}",
                        serde_json::Value::String(key.clone()),
                        serde_json::Value::String(text)
                    )
                } else {
                    format!(" {key}={text}")
                }
            })
            .collect();
        WithMeta {
            inner,
            suffix,
            json,
        }
    }
}

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for WithMeta<F>
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    N: for<'a> tracing_subscriber::fmt::FormatFields<'a> + 'static,
    F: tracing_subscriber::fmt::FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &tracing_subscriber::fmt::FmtContext<'_, S, N>,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        let audit = self.json && event.metadata().target() == AUDIT_TARGET;
        if self.suffix.is_empty() && !audit {
            return self.inner.format_event(ctx, writer, event);
        }
        let mut line = String::new();
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        let reshaped = audit.then(|| audit_line(&line)).flatten();
        let line = reshaped.as_deref().unwrap_or(&line).trim_end_matches('\n');
        match line.strip_suffix('}') {
            Some(open) if self.json => writeln!(writer, "{open}{}}}", self.suffix),
            _ => writeln!(writer, "{line}{}", self.suffix),
        }
    }
}

crate::plugin::register!(root RootLogger, Logger);
