//! Readable log lines, written straight into the line: the text of tracing-subscriber's full
//! format without colours (`2026-01-02T03:04:05.123456Z  INFO target: message key=value`),
//! without its per-character escaping pass and its date formatting through `fmt`. Lines inside
//! spans and lines bridged from the `log` crate go to tracing-subscriber's own formatter, which
//! writes the span context and the normalized target.

use std::fmt::{self, Write};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{self, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// The readable line format of a backend whose log is not a terminal.
#[derive(Default)]
pub(super) struct Plain {
    /// For the lines logged inside a span.
    full: format::Format,
}

impl<S, N> FormatEvent<S, N> for Plain
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
        if writer.has_ansi_escapes()
            || from_log(metadata)
            || ctx.event_scope().is_some_and(|mut s| s.next().is_some())
        {
            return self.full.format_event(ctx, writer, event);
        }
        timestamp(&mut writer)?;
        writer.write_str(level(*metadata.level()))?;
        writer.write_str(metadata.target())?;
        writer.write_str(": ")?;
        let mut fields = Fields {
            writer: &mut writer,
            first: true,
            result: Ok(()),
        };
        event.record(&mut fields);
        fields.result?;
        writer.write_char('\n')
    }
}

/// The level as the line shows it, with the spaces around it.
pub(super) fn level(level: Level) -> &'static str {
    match level {
        Level::TRACE => " TRACE ",
        Level::DEBUG => " DEBUG ",
        Level::INFO => "  INFO ",
        Level::WARN => "  WARN ",
        Level::ERROR => " ERROR ",
    }
}

/// A string field's value as `Debug` writes it: quoted as it is when nothing in it needs
/// escaping, which is almost always.
pub(super) fn quoted(writer: &mut impl Write, value: &str) -> fmt::Result {
    if super::text::quotable(value.as_bytes()) {
        writer.write_char('"')?;
        writer.write_str(value)?;
        writer.write_char('"')
    } else {
        write!(writer, "{value:?}")
    }
}

/// Whether the event came from the `log` crate (its target is in a field).
pub(super) fn from_log(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.fields().field("log.target").is_some()
}

/// The current time as `2026-01-02T03:04:05.123456Z`.
pub(super) fn timestamp(writer: &mut impl Write) -> fmt::Result {
    utc(writer, std::time::SystemTime::now(), 6)
}

/// `time` in UTC as `2026-01-02T03:04:05`, then `.` and the first `digits` digits of its
/// fraction of a second (at most 9; none, without the dot, for 0), then `Z`. Each thread keeps
/// the last time it wrote as text (the date and time of day, and all nine digits of the
/// fraction): a request line, which writes its time twice, and every line of the same second
/// copy instead of computing.
pub(super) fn utc(
    writer: &mut impl Write,
    time: std::time::SystemTime,
    digits: u32,
) -> fmt::Result {
    thread_local! {
        static LAST: std::cell::RefCell<LastTime> = const {
            std::cell::RefCell::new(LastTime {
                seconds: u64::MAX,
                date: String::new(),
                nanos: u32::MAX,
                fraction: String::new(),
            })
        };
    }
    let since = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let (seconds, nanos) = (since.as_secs(), since.subsec_nanos());
    let digits = digits.min(9) as usize;
    LAST.with_borrow_mut(|last| {
        if last.seconds != seconds {
            let (year, month, day) = civil(seconds / 86_400);
            let of_day = seconds % 86_400;
            last.date.clear();
            let _ = write!(
                last.date,
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
                of_day / 3600,
                of_day / 60 % 60,
                of_day % 60
            );
            last.seconds = seconds;
        }
        writer.write_str(&last.date)?;
        if digits == 0 {
            return writer.write_char('Z');
        }
        if last.nanos != nanos {
            // `.` and nine digits, written from the last.
            let mut tail = *b".000000000";
            let mut value = nanos;
            for digit in tail[1..].iter_mut().rev() {
                *digit = b'0' + (value % 10) as u8;
                value /= 10;
            }
            last.fraction.clear();
            last.fraction.extend(tail.iter().map(|&b| char::from(b)));
            last.nanos = nanos;
        }
        // ASCII: every index is a character boundary.
        writer.write_str(last.fraction.get(..=digits).unwrap_or("."))?;
        writer.write_char('Z')
    })
}

/// The last time a thread wrote, as text.
struct LastTime {
    seconds: u64,
    /// `2026-01-02T03:04:05`.
    date: String,
    nanos: u32,
    /// `.` and nine digits.
    fraction: String,
}

/// The year, month and day of a day counted from 1970-01-01 (Howard Hinnant's algorithm).
fn civil(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let of_era = z - era * 146_097;
    let year_of_era = (of_era - of_era / 1460 + of_era / 36_524 - of_era / 146_096) / 365;
    let day_of_year = of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

/// The fields as tracing-subscriber's default visitor writes them: the message as it is
/// (terminal control characters escaped), the others as ` name=value` with `Debug` values.
struct Fields<'a, 'w> {
    writer: &'a mut Writer<'w>,
    first: bool,
    result: fmt::Result,
}

impl Fields<'_, '_> {
    fn separate(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.result = self.writer.write_char(' ');
        }
    }

    /// Writes ` name=` (only the value for the message) and then the value with `value`,
    /// unless writing failed before or the field is one of a `log` record's (written by the
    /// bridge already). Values whose `Debug` text is known go through here without the
    /// formatting machinery.
    fn field(&mut self, field: &Field, value: impl FnOnce(&mut Writer<'_>) -> fmt::Result) {
        let name = field.name();
        if self.result.is_err() || name.starts_with("log.") {
            return;
        }
        self.separate();
        if self.result.is_err() {
            return;
        }
        let writer = &mut *self.writer;
        self.result = (|| {
            if name != "message" {
                writer.write_str(name.strip_prefix("r#").unwrap_or(name))?;
                writer.write_char('=')?;
            }
            value(writer)
        })();
    }
}

impl Visit for Fields<'_, '_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.field(field, |w| Escaping(w).write_str(value));
        } else {
            self.field(field, |w| quoted(w, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.field(field, |w| super::text::decimal(w, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.field(field, |w| {
            if value < 0 {
                w.write_char('-')?;
            }
            super::text::decimal(w, value.unsigned_abs())
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.field(field, |w| w.write_str(if value { "true" } else { "false" }));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        match value.source() {
            Some(source) => self.record_debug(
                field,
                &format_args!(
                    "{} {}.sources={}",
                    Escaped(value),
                    field.name(),
                    Sources(source)
                ),
            ),
            None => self.record_debug(field, &format_args!("{}", Escaped(value))),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.field(field, |w| write!(Escaping(w), "{value:?}"));
        } else {
            self.field(field, |w| write!(w, "{value:?}"));
        }
    }
}

/// A `Display` value written through [`Escaping`].
struct Escaped<T>(T);

impl<T: fmt::Display> fmt::Display for Escaped<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(Escaping(f), "{}", self.0)
    }
}

/// An error's chain of sources as `[first, second]`.
struct Sources<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for Sources<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        let mut next = Some(self.0);
        while let Some(error) = next {
            list.entry(&format_args!("{}", Escaped(error)));
            next = error.source();
        }
        list.finish()
    }
}

/// Passes text on with the terminal control characters a log line must not carry escaped
/// (ESC, BEL, BS, FF, DEL and the C1 controls), as tracing-subscriber escapes messages; text
/// without any goes on in one piece.
pub(super) struct Escaping<W>(pub(super) W);

impl<W: Write> Write for Escaping<W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // C1 controls start with the byte 0xC2 in UTF-8.
        if super::text::printable(s.as_bytes())
            || !s
                .bytes()
                .any(|b| matches!(b, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f | 0xc2))
        {
            return self.0.write_str(s);
        }
        for ch in s.chars() {
            match ch {
                '\x1b' => self.0.write_str("\\x1b")?,
                '\x07' => self.0.write_str("\\x07")?,
                '\x08' => self.0.write_str("\\x08")?,
                '\x0c' => self.0.write_str("\\x0c")?,
                '\x7f' => self.0.write_str("\\x7f")?,
                ch if ('\u{80}'..='\u{9f}').contains(&ch) => {
                    write!(self.0, "\\u{{{:x}}}", ch as u32)?;
                }
                ch => self.0.write_char(ch)?,
            }
        }
        Ok(())
    }
}

/// Formats the same events with `ours` and with `theirs` (span fields with `fields`), both
/// without colours, and returns both texts with their timestamps masked.
#[cfg(test)]
pub(super) fn both<F, G, N>(ours: F, theirs: G, fields: fn() -> N, events: fn()) -> (String, String)
where
    F: FormatEvent<tracing_subscriber::Registry, N> + Send + Sync + 'static,
    G: FormatEvent<tracing_subscriber::Registry, N> + Send + Sync + 'static,
    N: for<'w> FormatFields<'w> + Send + Sync + 'static,
{
    use std::sync::{Arc, Mutex};
    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);
    impl std::io::Write for Buffer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let run = |subscriber: Box<dyn Subscriber + Send + Sync>, buffer: Buffer| {
        tracing::subscriber::with_default(subscriber, events);
        let bytes = buffer.0.lock().unwrap_or_else(|p| p.into_inner()).clone();
        mask_timestamps(&String::from_utf8_lossy(&bytes))
    };
    let (one, two) = (Buffer::default(), Buffer::default());
    let make = |buffer: Buffer| move || buffer.clone();
    let first = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(Level::TRACE)
        .with_writer(make(one.clone()))
        .fmt_fields(fields())
        .event_format(ours)
        .finish();
    let second = tracing_subscriber::fmt()
        .with_ansi(false)
        .with_max_level(Level::TRACE)
        .with_writer(make(two.clone()))
        .fmt_fields(fields())
        .event_format(theirs)
        .finish();
    (run(Box::new(first), one), run(Box::new(second), two))
}

/// `text` with every `2026-01-02T03:04:05.123456Z` replaced by `<time>`.
#[cfg(test)]
pub(super) fn mask_timestamps(text: &str) -> String {
    const SHAPE: &[u8; 27] = b"dddd-dd-ddTdd:dd:dd.ddddddZ";
    let bytes = text.as_bytes();
    let mut out = String::new();
    let mut i = 0;
    while i < bytes.len() {
        let matches = bytes.get(i..i + 27).is_some_and(|window| {
            window.iter().zip(SHAPE).all(|(b, s)| match s {
                b'd' => b.is_ascii_digit(),
                s => b == s,
            })
        });
        if matches {
            out.push_str("<time>");
            i += 27;
        } else {
            let ch = text[i..].chars().next().unwrap_or('?');
            out.push(ch);
            i += ch.len_utf8();
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn days_become_dates_across_leap_years_and_centuries() {
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(civil(11_016), (2000, 2, 29));
        assert_eq!(civil(11_017), (2000, 3, 1));
        assert_eq!(civil(20_787), (2026, 11, 30));
        assert_eq!(civil(47_540), (2100, 2, 28));
        assert_eq!(civil(47_541), (2100, 3, 1));
    }

    #[test]
    fn lines_read_as_tracing_subscribers_full_format() {
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl fmt::Display for Outer {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("could not read")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let (ours, theirs) = both(
            Plain::default(),
            format::Format::default(),
            format::DefaultFields::new,
            || {
                tracing::info!("PONG! plugin=carmen");
                tracing::warn!(target: "backstage::http", r#type = "incomingRequest", status = 200_u16, ok = true, ratio = 0.5, url = "/a \"b\"", method = %"GET", list = ?vec![1, 2], "[t] \"GET /a HTTP/1.1\" 200");
                tracing::error!(message = "in a field \x1b[31m", code = -3_i64);
                tracing::info!(message = 5_u64, negative = i64::MIN, yes = true);
                tracing::info!(message = false, r#type = "plain");
                let error = Outer(std::io::Error::other("disk \x07 gone"));
                tracing::debug!(
                    error = &error as &(dyn std::error::Error + 'static),
                    "failed"
                );
                tracing::trace!(
                    plain_error =
                        &std::io::Error::other("just one") as &(dyn std::error::Error + 'static)
                );
                tracing::info!("escape \x1b[2J\u{85} in a message");
                let span = tracing::info_span!("request", id = 7);
                let _inside = span.enter();
                tracing::info!(inner = 1, "inside a span");
            },
        );
        assert_eq!(ours, theirs);
        assert!(
            ours.contains("  INFO ") && ours.contains("request{id=7}: "),
            "{ours}"
        );
    }

    #[test]
    fn timestamps_are_utc_with_microseconds() {
        let mut out = String::new();
        timestamp(&mut out).unwrap();
        let expected = tracing_subscriber::fmt::time::SystemTime;
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::FormatTime::format_time(
            &expected,
            &mut Writer::new(&mut theirs),
        )
        .unwrap();
        assert_eq!(out.len(), 27, "{out}");
        // The same second (unless the two calls straddle one).
        assert_eq!(out[..19], theirs[..19], "{out} vs {theirs}");
        assert!(out.ends_with('Z') && out.as_bytes()[19] == b'.', "{out}");
    }

    #[test]
    fn times_read_as_humantimes_rfc3339_as_the_second_changes() {
        use std::time::{Duration, UNIX_EPOCH};
        let base = UNIX_EPOCH + Duration::new(1_795_000_000, 123_456_789);
        // Forward, back, across days and leap years, and within a second: the per-thread
        // time must follow.
        for offset in [
            0,
            1_000_000_000,
            0,
            5,
            876_543_210,
            59_000_000_000,
            86_400_000_000_000,
            86_400_000_000_000 * 366 * 3,
            1,
            0,
        ] {
            let time = base + Duration::from_nanos(offset);
            let ours = |digits| {
                let mut out = String::new();
                utc(&mut out, time, digits).unwrap();
                out
            };
            assert_eq!(ours(0), humantime::format_rfc3339_seconds(time).to_string());
            assert_eq!(ours(3), humantime::format_rfc3339_millis(time).to_string());
            assert_eq!(ours(6), humantime::format_rfc3339_micros(time).to_string());
            assert_eq!(ours(9), humantime::format_rfc3339_nanos(time).to_string());
            // Every other number of digits is the nine cut short; more than nine are nine.
            let nanos = humantime::format_rfc3339_nanos(time).to_string();
            for digits in 1..=9 {
                assert_eq!(ours(digits), format!("{}Z", &nanos[..20 + digits as usize]));
            }
            assert_eq!(ours(12), nanos);
        }
    }

    #[test]
    fn control_characters_are_escaped_and_other_text_is_not() {
        let mut out = String::new();
        Escaping(&mut out)
            .write_str("a\x1b[31mred\u{85}é\u{7f}")
            .unwrap();
        assert_eq!(out, "a\\x1b[31mred\\u{85}é\\x7f");
    }
}
