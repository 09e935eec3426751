//! The `rootLogger` and `logger` services, on `tracing`.
//!
//! [`crate::start`] installs a subscriber that prints readable lines, at the level named by
//! `LOG_LEVEL` (default `info`; any `tracing` filter works, e.g. `LOG_LEVEL=debug`). A plugin's
//! [`Logger`] adds `plugin=<id>` to every line. Other subscribers can be installed instead: the
//! services emit `tracing` events to them (with the backend's own subscriber, the busiest lines
//! go to its writer directly, in the same text).

use std::fmt::Display;
use std::sync::Arc;

use crate::error::Result;
use crate::plugin::{BoxFuture, PluginScoped, Root, Service, ServiceContext};

mod direct;
mod json_line;
mod plain;
mod text;
mod writer;

pub(crate) use direct::Message;
pub(crate) use text::digits;

/// Whether an event of `level` with `target` would be logged, decided as `tracing`'s own event
/// macros decide: a callsite every dispatcher wants `always` is not asked about again, one that
/// some want `sometimes` asks the current dispatcher. (`tracing::enabled!` asks the current
/// dispatcher every time, about 130 instructions a line.)
macro_rules! logs {
    ($target:expr, $level:expr) => {{
        static META: tracing::Metadata<'static> = tracing::Metadata::new(
            concat!("enabled ", file!(), ":", line!()),
            $target,
            $level,
            Some(file!()),
            Some(line!()),
            Some(module_path!()),
            tracing::field::FieldSet::new(&[], tracing_core::identify_callsite!(&CALLSITE)),
            tracing::metadata::Kind::HINT,
        );
        static CALLSITE: tracing::callsite::DefaultCallsite =
            tracing::callsite::DefaultCallsite::new(&META);
        $level <= tracing::level_filters::STATIC_MAX_LEVEL
            && $level <= tracing::level_filters::LevelFilter::current()
            && {
                let interest = CALLSITE.interest();
                interest.is_always()
                    || (!interest.is_never()
                        && tracing::dispatcher::get_default(|current| current.enabled(&META)))
            }
    }};
}

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
        if logs!(module_path!(), tracing::Level::ERROR)
            && !self.direct(tracing::Level::ERROR, &message)
        {
            tracing::error!(plugin = %self.plugin, "{message}");
        }
    }

    /// Logs at warn level.
    pub fn warn(&self, message: impl Display) {
        if logs!(module_path!(), tracing::Level::WARN)
            && !self.direct(tracing::Level::WARN, &message)
        {
            tracing::warn!(plugin = %self.plugin, "{message}");
        }
    }

    /// Logs at info level.
    pub fn info(&self, message: impl Display) {
        if logs!(module_path!(), tracing::Level::INFO)
            && !self.direct(tracing::Level::INFO, &message)
        {
            tracing::info!(plugin = %self.plugin, "{message}");
        }
    }

    /// Logs at debug level.
    pub fn debug(&self, message: impl Display) {
        if logs!(module_path!(), tracing::Level::DEBUG)
            && !self.direct(tracing::Level::DEBUG, &message)
        {
            tracing::debug!(plugin = %self.plugin, "{message}");
        }
    }

    /// The line straight to the backend's log writer, as the `tracing` events above write it;
    /// false where it must go through `tracing`.
    fn direct(&self, level: tracing::Level, message: &impl Display) -> bool {
        direct::write(
            level,
            module_path!(),
            direct::Service::Root,
            std::time::SystemTime::now(),
            |text| text.display(message),
            |line| {
                line.shown("plugin", &self.plugin);
            },
        )
    }
}

/// Whether request lines ([`incoming_request`]) are logged: target `backstage::http`, at info.
pub(crate) fn requests_logged() -> bool {
    logs!("backstage::http", tracing::Level::INFO)
}

/// What Backstage's request line carries besides its message (backend-defaults' request log):
/// `method` is an HTTP method's text; `user_agent`, `content_length` and `referrer` are left out
/// where unknown, as there.
pub(crate) struct RequestFields<'a> {
    pub(crate) method: &'a str,
    pub(crate) url: &'a str,
    pub(crate) status: u16,
    /// `1.1`, `2.0`.
    pub(crate) http_version: &'static str,
    pub(crate) user_agent: Option<&'a str>,
    pub(crate) content_length: Option<u64>,
    pub(crate) referrer: Option<&'a str>,
}

/// Backstage's line for a request served at `time`: `message` writes its access-log text, the
/// fields are what Backstage's JSON line carries, in its order (`type`, `date`, `method`, `url`,
/// `status`, `httpVersion`, then `userAgent`, `contentLength` and `referrer` where known). For
/// when [`requests_logged`].
pub(crate) fn incoming_request(
    time: std::time::SystemTime,
    message: &dyn Fn(&mut direct::Message<'_>),
    fields: &RequestFields<'_>,
) {
    let direct = direct::write(
        tracing::Level::INFO,
        "backstage::http",
        direct::Service::HttpRouter,
        time,
        message,
        |line| {
            // The fields as `tracing` writes them (`date` and `method` with `%`, the rest as
            // values), the fixed text between the values written in one piece each. The
            // method is an HTTP token and the version digits: nothing to escape.
            line.own(
                " type=\"incomingRequest\" date=",
                ",\"type\":\"incomingRequest\",\"date\":\"",
            );
            line.time(time, 3);
            line.own(" method=", "\",\"method\":\"");
            line.clean(fields.method);
            line.own(" url=", "\",\"url\":");
            line.quoted(fields.url);
            line.own(" status=", ",\"status\":");
            line.decimal(fields.status.into());
            line.own(" httpVersion=\"", ",\"httpVersion\":\"");
            line.clean(fields.http_version);
            line.own("\"", "\"");
            if let Some(user_agent) = fields.user_agent {
                line.own(" userAgent=", ",\"userAgent\":");
                line.quoted(user_agent);
            }
            if let Some(length) = fields.content_length {
                line.own(" contentLength=", ",\"contentLength\":");
                line.decimal(length);
            }
            if let Some(referrer) = fields.referrer {
                line.own(" referrer=", ",\"referrer\":");
                line.quoted(referrer);
            }
        },
    );
    if !direct {
        let mut text = String::new();
        message(&mut direct::Message::raw(&mut text));
        tracing::info!(
            target: "backstage::http",
            message = text.as_str(),
            r#type = "incomingRequest",
            date = %Millis(time),
            method = %fields.method,
            url = fields.url,
            status = fields.status,
            httpVersion = fields.http_version,
            userAgent = fields.user_agent,
            contentLength = fields.content_length,
            referrer = fields.referrer,
        );
    }
}

/// A time as JavaScript's `toISOString` writes it (milliseconds).
struct Millis(std::time::SystemTime);

impl Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        plain::utc(f, self.0, 3)
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

/// How many bytes of formatted lines may wait for the log writer before new ones are dropped
/// (and counted): a burst of this size (some 50,000 request lines) never blocks a request.
const WAITING_BYTES: usize = 8 * 1024 * 1024;

/// The log writer's thread, kept until [`flush`].
static WRITER: std::sync::Mutex<Option<writer::WriterGuard>> = std::sync::Mutex::new(None);

/// Installs the default subscriber, unless one is installed already.
///
/// - Level: `LOG_LEVEL` (any `tracing` filter, e.g. `debug` or `info,backstage::http=warn`), else
///   `backend.logger.level`, else `info`.
/// - Format: JSON lines when `NODE_ENV` or `BACKSTAGE_ENV` is `production` (Backstage's switch),
///   readable lines otherwise.
/// - `backend.logger.meta`: fields added to every line; JSON lines carry `service: backstage`
///   unless it names another, as Backstage's do.
/// - Lines are formatted where they happen and written to stdout (as Backstage's console
///   transport writes them) by a thread of their own, in batches (everything that waits, in one
///   write), off the request path: at most [`WAITING_BYTES`] wait; beyond that a line is
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
    let (writer, guard) =
        writer::LogWriter::start(std::io::stdout(), WAITING_BYTES, "backstage-log-writer");
    let writer = MetaWriter {
        inner: writer,
        suffix: meta_suffix(&meta, production).into(),
        router_suffix: meta_suffix(&router_meta(&meta), production).into(),
        json: production,
        // Filters on spans and fields (`target[span{field}]=level`) decide per event.
        direct: !ansi && !level.contains('['),
    };
    let installed = tracing_subscriber::util::SubscriberInitExt::try_init(subscriber(
        filter, writer, production, ansi,
    ));
    if installed.is_ok() {
        *WRITER.lock().unwrap_or_else(|p| p.into_inner()) = Some(guard);
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

/// The backend's subscriber: `filter`, then lines in JSON (`production`), in colour (`ansi`)
/// or plain, written to `writer`.
fn subscriber(
    filter: tracing_subscriber::EnvFilter,
    writer: MetaWriter,
    production: bool,
    ansi: bool,
) -> Box<dyn tracing::Subscriber + Send + Sync> {
    // A log line that cannot be written (the pipe to a log collector closed) is dropped: by
    // default tracing reports it with `eprintln!`, which panics when stderr is closed too.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(writer)
        .log_internal_errors(false);
    if production {
        // Span fields as JSON too: the JSON lines of events inside spans carry them.
        Box::new(
            builder
                .fmt_fields(tracing_subscriber::fmt::format::JsonFields::new())
                .event_format(AuditShape(json_line::JsonLine::default()))
                .finish(),
        )
    } else if ansi {
        // A terminal: tracing-subscriber's own lines, in colour.
        Box::new(builder.finish())
    } else {
        Box::new(builder.event_format(plain::Plain::default()).finish())
    }
}

/// Writes the lines that wait, stops the writer, and reports on stderr how many lines were
/// dropped because it could not keep up. Lines logged afterwards are written where they are
/// logged, without the writer.
pub(crate) fn flush() {
    // Held until the writer has stopped: a flush at the same time (a second signal during a
    // failed start's flush) waits for this one instead of finding nothing to do. Not held
    // while reporting: a panic there (stderr closed) flushes again from the panic hook.
    let dropped = {
        let mut writer = WRITER.lock().unwrap_or_else(|p| p.into_inner());
        writer.take().map(writer::WriterGuard::stop)
    };
    if let Some(dropped) = dropped
        && dropped > 0
    {
        eprintln!(
            "{dropped} log lines were dropped: the log writer could not keep up with {} MiB of waiting lines",
            WAITING_BYTES >> 20
        );
    }
}

/// [`flush`], waited for at most `limit`: for an exit that must not hang on a stuck stdout.
pub(crate) fn flush_within(limit: std::time::Duration) {
    let (done, flushed) = std::sync::mpsc::channel();
    let flushing = std::thread::Builder::new()
        .name("backstage-log-flush".to_owned())
        .spawn(move || {
            flush();
            let _ = done.send(());
        });
    if flushing.is_ok() {
        let _ = flushed.recv_timeout(limit);
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
    // (Its level is in lower case already, as every JSON line's.)
    members.remove("target");
    for key in ["actor", "request", "meta"] {
        if let Some(serde_json::Value::String(text)) = members.get(key)
            && let Ok(object) = serde_json::from_str(text)
        {
            members.insert(key.to_owned(), object);
        }
    }
    serde_json::to_string(&members).ok()
}

/// The meta of request lines: Backstage's root HTTP router logs through a child of the root
/// logger that names its own service (`rootHttpRouter`), where the meta names one.
fn router_meta(
    meta: &std::collections::BTreeMap<String, serde_json::Value>,
) -> std::collections::BTreeMap<String, serde_json::Value> {
    let mut meta = meta.clone();
    if let Some(service) = meta.get_mut("service") {
        *service = "rootHttpRouter".into();
    }
    meta
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
    inner: writer::LogWriter,
    suffix: Box<str>,
    /// The suffix of request lines written directly: the meta with `service: rootHttpRouter`
    /// where it names a service.
    router_suffix: Box<str>,
    json: bool,
    /// Whether [`direct`] lines may skip `tracing`: the lines are plain or JSON, and the filter
    /// decides by target and level alone.
    direct: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for MetaWriter {
    type Writer = MetaLine<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        MetaLine { meta: self }
    }
}

/// One line on its way to the log writer.
struct MetaLine<'a> {
    meta: &'a MetaWriter,
}

impl std::io::Write for MetaLine<'_> {
    fn write(&mut self, line: &[u8]) -> std::io::Result<usize> {
        if self.meta.suffix.is_empty() {
            self.meta.inner.send(line);
            return Ok(line.len());
        }
        thread_local! {
            static LINE: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
        }
        LINE.with_borrow_mut(|with_meta| {
            with_meta.clear();
            with_meta.reserve(line.len() + self.meta.suffix.len());
            with_meta_put(with_meta, line, self.meta.suffix.as_bytes(), self.meta.json);
            self.meta.inner.send(with_meta);
        });
        Ok(line.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
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

#[cfg(test)]
mod direct_tests {
    use super::writer::tests::Buffer;
    use super::*;

    /// What `lines` logs through the backend's subscriber (JSON or plain, with `meta`, the
    /// direct way allowed or not, `filter`), timestamps masked; and how many lines went
    /// directly.
    fn logged(json: bool, direct: bool, filter: &str, lines: fn()) -> (String, usize) {
        let buffer = Buffer::default();
        let (inner, guard) = writer::LogWriter::start(buffer.clone(), 1 << 20, "test-log-writer");
        let mut meta = std::collections::BTreeMap::new();
        meta.insert("region".to_owned(), serde_json::Value::from("eu \"west\""));
        let writer = MetaWriter {
            inner,
            suffix: meta_suffix(&meta, json).into(),
            router_suffix: meta_suffix(&router_meta(&meta), json).into(),
            json,
            direct,
        };
        let filter = tracing_subscriber::EnvFilter::new(filter);
        let before = direct::WRITTEN.get();
        tracing::subscriber::with_default(subscriber(filter, writer, json, false), lines);
        let written = direct::WRITTEN.get() - before;
        drop(guard);
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        (plain::mask_timestamps(&text), written)
    }

    fn lines() {
        let logger = Logger::for_plugin("carmen");
        logger.info("PONG!");
        logger.warn(format_args!(
            "quote \" backslash \\ newline \n escape \x1b[2J \u{85} é {}",
            7
        ));
        logger.error("");
        logger.debug("debug");
        if requests_logged() {
            incoming_request(
                // A fixed time: the line's `date` is its own, not masked.
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_547_200_123),
                &|message| {
                    // Each kind of piece, with what needs escaping in the pieces from elsewhere.
                    message.own("[");
                    message.time(std::time::UNIX_EPOCH, 3);
                    message.own_quoted("] \"", "] \\\"");
                    message.own("GET ");
                    message.text("/api/carmen/a b?q=\"\\\u{1}é");
                    message.own_quoted(" HTTP/1.1\" 200 15 \"", " HTTP/1.1\\\" 200 15 \\\"");
                    message.text("-");
                    message.own_quoted("\" \"", "\\\" \\\"");
                    message.text("x\"y\" \x1b é \u{85}");
                    message.own_quoted("\"", "\\\"");
                },
                &RequestFields {
                    method: "GET",
                    url: "/api/carmen/a b?q=\"\\\u{1}é",
                    status: 404,
                    http_version: "1.1",
                    user_agent: Some("x\"y\" \x1b é \u{85}"),
                    content_length: Some(15),
                    referrer: Some("https://a.example/\"q\""),
                },
            );
        }
        let span = tracing::info_span!("request", id = 7);
        let _inside = span.enter();
        logger.info("inside a span");
        if requests_logged() {
            incoming_request(
                // A fixed time: the line's `date` is its own, not masked.
                std::time::UNIX_EPOCH + std::time::Duration::from_millis(1_764_547_200_123),
                &|message| message.text("in a span"),
                &RequestFields {
                    method: "POST",
                    url: "/x",
                    status: 200,
                    http_version: "2.0",
                    user_agent: None,
                    content_length: None,
                    referrer: None,
                },
            );
        }
    }

    #[test]
    fn direct_lines_read_as_the_lines_tracing_writes() {
        for json in [false, true] {
            let (direct, written) = logged(json, true, "debug", lines);
            let (through_tracing, none) = logged(json, false, "debug", lines);
            assert_eq!(direct, through_tracing);
            // Five went directly; the two in a span, and all the other way, through tracing.
            assert_eq!((written, none), (5, 0));
            assert_eq!(direct.matches("<time>").count(), 7, "{direct}");
            assert_eq!(direct.matches("region").count(), 7, "{direct}");
        }
    }

    #[test]
    fn the_filter_still_decides_for_direct_lines() {
        let (text, written) = logged(false, true, "warn", lines);
        assert_eq!(written, 2, "{text}");
        assert!(
            text.contains(" WARN ") && text.contains(" ERROR "),
            "{text}"
        );
        assert!(
            !text.contains("PONG") && !text.contains("incomingRequest"),
            "{text}"
        );
        let (text, written) = logged(false, true, "info,backstage::http=off", lines);
        assert_eq!(written, 3, "{text}");
        assert!(
            text.contains("PONG") && !text.contains("incomingRequest"),
            "{text}"
        );
    }
}

crate::plugin::register!(root RootLogger, Logger);

#[cfg(test)]
mod flush_tests {
    use super::*;
    use std::io::Write;
    use std::sync::{Arc, Mutex, mpsc};

    /// A log that signals when a write begins and takes a while to finish it.
    struct Slow {
        began: mpsc::Sender<()>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Slow {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let _ = self.began.send(());
            std::thread::sleep(std::time::Duration::from_millis(300));
            self.written.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_flush_during_a_flush_returns_once_the_lines_are_written() {
        let (began, beginning) = mpsc::channel();
        let written = Arc::new(Mutex::new(Vec::new()));
        let sink = Slow {
            began,
            written: written.clone(),
        };
        let (writer, guard) = writer::LogWriter::start(sink, 1 << 20, "test-flush-writer");
        *WRITER.lock().unwrap() = Some(guard);
        writer.send(b"the last line\n");
        // The first flush (a failed start's, say) is writing through a slow log ...
        let first = std::thread::spawn(flush);
        beginning.recv().unwrap();
        // ... when a second one (a second signal's) comes: it returns only after the line is out.
        flush();
        assert_eq!(written.lock().unwrap().as_slice(), b"the last line\n");
        first.join().unwrap();
    }
}
