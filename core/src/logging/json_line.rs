//! JSON log lines (production), written straight into the line: the object tracing-subscriber's
//! JSON format writes with flattened fields (`timestamp`, `level`, the fields in order,
//! `target`), the level in lower case as Backstage's lines have it, without a serializer, a
//! timestamp `String` and `fmt` for every plain string.
//! Lines inside spans and lines bridged from the `log` crate go to tracing-subscriber's own
//! formatter, which writes their span list and normalized target.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use super::text::{decimal, first_to_escape};

/// The JSON line format.
pub(super) struct JsonLine {
    /// For lines inside a span or from the `log` crate.
    full: format::Format<format::Json>,
}

impl Default for JsonLine {
    fn default() -> Self {
        JsonLine {
            full: format::format().json().flatten_event(true),
        }
    }
}

impl<S, N> FormatEvent<S, N> for JsonLine
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let metadata = event.metadata();
        let in_span = event
            .parent()
            .and_then(|id| ctx.span(id))
            .or_else(|| ctx.lookup_current())
            .is_some();
        if in_span || super::plain::from_log(metadata) {
            // Rare: formatted whole, its level then put in lower case.
            let mut line = String::new();
            self.full.format_event(ctx, Writer::new(&mut line), event)?;
            return writer.write_str(&lower_level(&line));
        }
        writer.write_str("{\"timestamp\":\"")?;
        super::plain::timestamp(&mut writer)?;
        writer.write_str(level(*metadata.level()))?;
        let mut fields = Fields {
            writer: &mut writer,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_str(",\"target\":")?;
        string(&mut writer, metadata.target())?;
        writer.write_str("}\n")
    }
}

/// The end of the timestamp's string and the level member: `","level":"info"`, in lower case
/// as Backstage's (winston's) JSON lines name levels.
pub(super) fn level(level: Level) -> &'static str {
    match level {
        Level::TRACE => "\",\"level\":\"trace\"",
        Level::DEBUG => "\",\"level\":\"debug\"",
        Level::INFO => "\",\"level\":\"info\"",
        Level::WARN => "\",\"level\":\"warn\"",
        Level::ERROR => "\",\"level\":\"error\"",
    }
}

/// `line` (a JSON line of tracing-subscriber's) with its level in lower case.
fn lower_level(line: &str) -> std::borrow::Cow<'_, str> {
    const MEMBER: &str = "\"level\":\"";
    let Some(at) = line.find(MEMBER).map(|at| at + MEMBER.len()) else {
        return line.into();
    };
    let end = line[at..].find('"').map_or(line.len(), |end| at + end);
    let mut lowered = String::with_capacity(line.len());
    lowered.push_str(&line[..at]);
    lowered.push_str(&line[at..end].to_ascii_lowercase());
    lowered.push_str(&line[end..]);
    lowered.into()
}

/// Each field as `,"name":value`, valued as tracing-serde values them: numbers and booleans as
/// they are, strings as strings, anything else as the string of its `Debug`.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn entry(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = self
                .writer
                .write_char(',')
                .and_then(|()| string(self.writer, field.name()))
                .and_then(|()| self.writer.write_char(':'))
                .and_then(|()| value(self.writer));
        }
    }
}

impl Visit for Fields<'_, '_> {
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.entry(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.entry(field, |w| {
            if value < 0 {
                w.write_char('-')?;
            }
            decimal(w, value.unsigned_abs())
        });
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.entry(field, |w| decimal(w, value));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        // serde_json's own form of a float (and `null` for what JSON cannot hold).
        let text = serde_json::to_string(&value).unwrap_or_else(|_| "null".to_owned());
        self.entry(field, |w| w.write_str(&text));
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        self.entry(field, |w| string(w, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.entry(field, |w| {
            w.write_char('"')?;
            write!(Escaping(&mut *w), "{value:?}")?;
            w.write_char('"')
        });
    }
}

/// `text` as a JSON string.
pub(super) fn string(writer: &mut impl Write, text: &str) -> fmt::Result {
    writer.write_char('"')?;
    Escaping(&mut *writer).write_str(text)?;
    writer.write_char('"')
}

/// Passes text on escaped for the inside of a JSON string, as serde_json escapes it; the
/// stretches between escapes go on in one piece.
pub(super) struct Escaping<W>(pub(super) W);

impl<W: Write> Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut rest = s;
        while let Some(at) = first_to_escape(rest.as_bytes()) {
            self.0.write_str(&rest[..at])?;
            let byte = rest.as_bytes()[at];
            match byte {
                b'"' => self.0.write_str("\\\"")?,
                b'\\' => self.0.write_str("\\\\")?,
                b'\n' => self.0.write_str("\\n")?,
                b'\r' => self.0.write_str("\\r")?,
                b'\t' => self.0.write_str("\\t")?,
                0x08 => self.0.write_str("\\b")?,
                0x0c => self.0.write_str("\\f")?,
                _ => write!(self.0, "\\u00{byte:02x}")?,
            }
            // The byte is ASCII: the next one starts a character.
            rest = &rest[at + 1..];
        }
        self.0.write_str(rest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_as_tracing_subscribers_json_lines() {
        #[derive(Debug)]
        struct Failure;
        impl fmt::Display for Failure {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("it \"broke\"")
            }
        }
        impl std::error::Error for Failure {}
        let flattened = format::format().json().flatten_event(true);
        let (ours, theirs) = super::super::plain::both(
            JsonLine::default(),
            flattened,
            format::JsonFields::new,
            || {
                tracing::info!(plugin = %"carmen", "PONG!");
                tracing::warn!(target: "backstage::http", r#type = "incomingRequest", status = 200_u16, ok = false, ratio = 0.5, big = 1e21, url = "/a \"b\"\\\n\t\u{1}", method = %"GET", list = ?vec!["x"], "[t] \"GET /a HTTP/1.1\" 200");
                tracing::error!(
                    code = -3_i64,
                    huge = 1_u128 << 100,
                    error = &Failure as &(dyn std::error::Error + 'static)
                );
                tracing::debug!(message = "é and \u{85} and \x1b[2J");
                let span = tracing::info_span!("request", id = 7);
                let _inside = span.enter();
                tracing::info!(inner = 1, "inside a span");
            },
        );
        // The same lines, the level in lower case (inside a span too).
        let lowered: String = theirs.lines().map(|l| lower_level(l) + "\n").collect();
        assert_eq!(ours, lowered);
        for level in ["info", "warn", "error", "debug"] {
            assert!(ours.contains(&format!("\"level\":\"{level}\"")), "{ours}");
        }
        assert!(!ours.contains("\"level\":\"INFO\""), "{ours}");
        assert!(
            ours.contains("\"spans\":[{\"id\":7,\"name\":\"request\"}]"),
            "{ours}"
        );
    }

    #[test]
    fn strings_escape_as_serde_json_escapes_them() {
        let text = "quote \" backslash \\ newline \n tab \t bell \u{7} delete \u{7f} é";
        let mut ours = String::new();
        string(&mut ours, text).unwrap();
        assert_eq!(ours, serde_json::to_string(text).unwrap());
        // Every byte that needs escaping, at every place within and across eight-byte words.
        let special = [
            '"', '\\', '\n', '\u{0}', '\u{1f}', '\u{8}', '\u{c}', ' ', '~', '\u{7f}', 'é',
        ];
        for length in 0..20 {
            for at in 0..length {
                for c in special {
                    let text: String = (0..length).map(|i| if i == at { c } else { 'a' }).collect();
                    let mut ours = String::new();
                    string(&mut ours, &text).unwrap();
                    assert_eq!(ours, serde_json::to_string(&text).unwrap(), "{text:?}");
                }
            }
        }
    }
}
