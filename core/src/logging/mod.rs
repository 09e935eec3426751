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

mod json_line;
mod plain;
mod text;

pub(crate) use plain::utc;

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

/// How many formatted lines may wait for the log writer before new ones are dropped (and
/// counted): a burst of this size never blocks a request.
const QUEUED_LINES: usize = 65_536;

/// The most bytes of lines the log writer gathers before it writes them.
const WRITE_BUFFER: usize = 64 * 1024;

/// The log writer's thread, kept until [`flush`]; and how many lines it dropped.
static WRITER: std::sync::Mutex<
    Option<(
        tracing_appender::non_blocking::WorkerGuard,
        tracing_appender::non_blocking::ErrorCounter,
    )>,
> = std::sync::Mutex::new(None);

/// Installs the default subscriber, unless one is installed already.
///
/// - Level: `LOG_LEVEL` (any `tracing` filter, e.g. `debug` or `info,backstage::http=warn`), else
///   `backend.logger.level`, else `info`.
/// - Format: JSON lines when `NODE_ENV` or `BACKSTAGE_ENV` is `production` (Backstage's switch),
///   readable lines otherwise.
/// - `backend.logger.meta`: fields added to every line; JSON lines carry `service: backstage`
///   unless it names another, as Backstage's do.
/// - Lines are formatted where they happen and written to stdout (as Backstage's console
///   transport writes them) by a thread of their own, in batches (what waits, up to
///   [`WRITE_BUFFER`] bytes, in one write), off the request path: at most [`QUEUED_LINES`]
///   wait; beyond that a line is dropped and counted, and [`flush`] (at shutdown, on a failed
///   start, on a panic) writes what waits and reports how many were dropped.
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
    let ansi = !production && std::io::IsTerminal::is_terminal(&std::io::stdout());
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .buffered_lines_limit(QUEUED_LINES)
        .lossy(true)
        .thread_name("backstage-log-writer")
        // The writer drains every line that waits into this buffer and writes it once the
        // queue is empty: one write per batch, not per line.
        .finish(std::io::BufWriter::with_capacity(
            WRITE_BUFFER,
            std::io::stdout(),
        ));
    let dropped = writer.error_counter();
    let writer = MetaWriter {
        inner: writer,
        suffix: meta_suffix(&meta, production).into(),
        json: production,
    };
    // A log line that cannot be written (the pipe to a log collector closed) is dropped: by
    // default tracing reports it with `eprintln!`, which panics when stderr is closed too.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .log_internal_errors(false);
    let installed = if production {
        // Span fields as JSON too: the JSON lines of events inside spans carry them.
        builder
            .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
            .event_format(AuditShape(json_line::JsonLine::default()))
            .try_init()
    } else if ansi {
        // A terminal: tracing-subscriber's own lines, in colour.
        builder.try_init()
    } else {
        builder.event_format(plain::Plain::default()).try_init()
    };
    if installed.is_ok() {
        *WRITER.lock().unwrap_or_else(|p| p.into_inner()) = Some((guard, dropped));
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            previous(info);
            // A panic that ends the process: what waits is written first. (Handlers' panics
            // are caught and answered 500; they end nothing.)
            if std::thread::current().name() == Some("main") {
                flush();
            }
        }));
    }
}

/// Writes the lines that wait, stops the writer, and reports on stderr how many lines were
/// dropped because it could not keep up. Lines logged afterwards are dropped.
pub(crate) fn flush() {
    let writer = WRITER.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let Some((guard, dropped)) = writer {
        drop(guard);
        let dropped = dropped.dropped_lines();
        if dropped > 0 {
            eprintln!(
                "{dropped} log lines were dropped: the log writer could not keep up with {QUEUED_LINES} waiting lines"
            );
        }
    }
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

/// `backend.logger.meta` as the text that goes at the end of every line: `,"key":"value"`
/// members for JSON lines, ` key=value` for readable ones.
fn meta_suffix(meta: &std::collections::BTreeMap<String, serde_json::Value>, json: bool) -> String {
    meta.iter()
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
        .collect()
}

/// The log writer with `backend.logger.meta` put into each line as it is handed over: every
/// line arrives whole (the formatter writes it into a buffer first), so the meta goes in
/// before its end with one copy, whatever formatter wrote it.
struct MetaWriter {
    inner: tracing_appender::non_blocking::NonBlocking,
    suffix: Box<str>,
    json: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MetaWriter {
    type Writer = MetaLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        MetaLine {
            inner: self.inner.clone(),
            meta: self,
        }
    }
}

/// One line on its way to the log writer.
struct MetaLine<'a> {
    inner: tracing_appender::non_blocking::NonBlocking,
    meta: &'a MetaWriter,
}

impl std::io::Write for MetaLine<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if self.meta.suffix.is_empty() {
            return self.inner.write(line);
        }
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        LINE.with_borrow_mut(|with_meta| {
            with_meta.clear();
            with_meta.reserve(line.len() + self.meta.suffix.len());
            with_meta_put(with_meta, line, self.meta.suffix.as_bytes(), self.meta.json);
            self.inner.write_all(with_meta)
        })?;
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// `line` into `out` with `suffix` inside the JSON object (before its closing `}` and the
/// newline), or before the newline of a readable line, or at the end of a line without one.
fn with_meta_put(out: &mut Vec<u8>, line: &[u8], suffix: &[u8], json: bool) {
    let end = match line {
        [.., b'}', b'\n'] if json => 2,
        [.., b'\n'] => 1,
        _ => 0,
    };
    let (body, tail) = line.split_at(line.len() - end);
    out.extend_from_slice(body);
    out.extend_from_slice(suffix);
    out.extend_from_slice(tail);
}

/// JSON lines as the formatter writes them, but audit events ([`AUDIT_TARGET`]) in the shape
/// of Backstage's auditor.
struct AuditShape<F>(F);

impl<S, N, F> tracing_subscriber::fmt::FormatEvent<S, N> for AuditShape<F>
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
        if event.metadata().target() != AUDIT_TARGET {
            return self.0.format_event(ctx, writer, event);
        }
        // Rare: formatted whole, reshaped, then written.
        let mut line = String::new();
        self.0.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut line),
            event,
        )?;
        let reshaped = audit_line(&line);
        writeln!(
            writer,
            "{}",
            reshaped.as_deref().unwrap_or(&line).trim_end_matches('\n')
        )
    }
}

#[cfg(test)]
mod meta_tests {
    use super::with_meta_put;

    fn put(line: &str, suffix: &str, json: bool) -> String {
        let mut out = Vec::new();
        with_meta_put(&mut out, line.as_bytes(), suffix.as_bytes(), json);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_meta_goes_before_the_end_of_the_line() {
        let meta = r#","service":"backstage""#;
        assert_eq!(
            put("{\"level\":\"INFO\",\"message\":\"é\"}\n", meta, true),
            "{\"level\":\"INFO\",\"message\":\"é\",\"service\":\"backstage\"}\n"
        );
        assert_eq!(
            put("INFO PONG! plugin=carmen\n", " region=eu", false),
            "INFO PONG! plugin=carmen region=eu\n"
        );
        // A readable line that happens to end in `}` keeps it.
        assert_eq!(put("INFO {a}\n", " m=1", false), "INFO {a} m=1\n");
        assert_eq!(put("x", " m", false), "x m");
        assert_eq!(put("", " m", true), " m");
    }
}

crate::plugin::register!(root RootLogger, Logger);
