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
///   transport writes them) by a thread of their own, in
///   batches (what waits, up to [`WRITE_BUFFER`] bytes, in one write), off the request path: at most [`QUEUED_LINES`] wait; beyond that a line is
///   dropped and counted, and [`flush`] (at shutdown, on a failed start, on a panic) writes
///   what waits and reports how many were dropped.
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
            .event_format(WithMeta::new(json_line::JsonLine::default(), &meta, true))
            .try_init()
    } else if ansi {
        // A terminal: tracing-subscriber's own lines, in colour.
        builder
            .event_format(WithMeta::new(
                tracing_subscriber::fmt::format(),
                &meta,
                false,
            ))
            .try_init()
    } else {
        builder
            .event_format(WithMeta::new(plain::Plain::default(), &meta, false))
            .try_init()
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
        if audit {
            // Rare: formatted whole, reshaped, then written.
            let mut line = String::new();
            self.inner.format_event(
                ctx,
                tracing_subscriber::fmt::format::Writer::new(&mut line),
                event,
            )?;
            let reshaped = audit_line(&line);
            let line = reshaped.as_deref().unwrap_or(&line).trim_end_matches('\n');
            return match line.strip_suffix('}') {
                Some(open) => writeln!(writer, "{open}{}}}", self.suffix),
                None => writeln!(writer, "{line}{}", self.suffix),
            };
        }
        // Every other line streams through, its end held back so that the meta goes in
        // before it: no copy of the line.
        let mut held = HoldBack::new(&mut writer);
        self.inner.format_event(
            ctx,
            tracing_subscriber::fmt::format::Writer::new(&mut held),
            event,
        )?;
        held.finish(&self.suffix, self.json)
    }
}

/// A writer that passes everything on but the line's last two characters (`}` and the
/// newline of a JSON line, or the newline of a readable one), so that the meta can be written
/// before them.
struct HoldBack<'w, W: std::fmt::Write> {
    out: &'w mut W,
    tail: [Option<char>; 2],
}

impl<'w, W: std::fmt::Write> HoldBack<'w, W> {
    fn new(out: &'w mut W) -> Self {
        HoldBack {
            out,
            tail: [None, None],
        }
    }

    /// Writes the meta `suffix` before the held-back end: inside the JSON object, or before
    /// the newline.
    fn finish(self, suffix: &str, json: bool) -> std::fmt::Result {
        match self.tail {
            [Some('}'), Some('\n')] if json => writeln!(self.out, "{suffix}}}"),
            [first, Some('\n')] => {
                if let Some(c) = first {
                    self.out.write_char(c)?;
                }
                writeln!(self.out, "{suffix}")
            }
            [first, second] => {
                for c in [first, second].into_iter().flatten() {
                    self.out.write_char(c)?;
                }
                write!(self.out, "{suffix}")
            }
        }
    }
}

impl<W: std::fmt::Write> std::fmt::Write for HoldBack<'_, W> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let mut from_end = s.char_indices().rev();
        match (from_end.next(), from_end.next()) {
            (None, _) => Ok(()),
            // One character: it is held, and the oldest held one (if two were) goes out.
            (Some((_, c)), None) => {
                if let [Some(old), newer] = self.tail {
                    self.out.write_char(old)?;
                    self.tail = [newer, Some(c)];
                } else {
                    self.tail = [self.tail[1], Some(c)];
                }
                Ok(())
            }
            // Two or more: everything held goes out, then all of `s` but its last two.
            (Some((_, last)), Some((at, before))) => {
                for c in self.tail.iter_mut().filter_map(Option::take) {
                    self.out.write_char(c)?;
                }
                self.out.write_str(&s[..at])?;
                self.tail = [Some(before), Some(last)];
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod hold_back_tests {
    use std::fmt::Write;

    use super::HoldBack;

    fn through(chunks: &[&str], suffix: &str, json: bool) -> String {
        let mut out = String::new();
        let mut held = HoldBack::new(&mut out);
        for chunk in chunks {
            held.write_str(chunk).unwrap();
        }
        held.finish(suffix, json).unwrap();
        out
    }

    #[test]
    fn the_meta_goes_before_the_end_of_the_line_however_it_was_written() {
        let line = r#"{"level":"INFO","message":"é"}"#.to_owned() + "\n";
        let meta = r#","service":"backstage""#;
        let expected = r#"{"level":"INFO","message":"é","service":"backstage"}"#.to_owned() + "\n";
        assert_eq!(through(&[&line], meta, true), expected);
        // In pieces of every size, one character at a time included.
        let chars: Vec<String> = line.chars().map(String::from).collect();
        let pieces: Vec<&str> = chars.iter().map(String::as_str).collect();
        assert_eq!(through(&pieces, meta, true), expected);
        let (a, b) = line.split_at(line.len() - 1);
        assert_eq!(through(&[a, b, ""], meta, true), expected);
        assert_eq!(
            through(&["INFO PONG! plugin=carmen\n"], " region=eu", false),
            "INFO PONG! plugin=carmen region=eu\n"
        );
        assert_eq!(through(&["x"], " m", false), "x m");
    }
}

crate::plugin::register!(root RootLogger, Logger);
