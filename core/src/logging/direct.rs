//! The lines a busy backend writes most, its request lines and its plugins' logger lines,
//! written straight to the log writer when the backend's own subscriber is the one in use: the
//! text the line formats ([`super::plain`], [`super::json_line`]) write, without visiting the
//! fields through `tracing` and passing every piece through a `dyn Write`. Anywhere else
//! (another subscriber, a test's, an entered span, a filter on fields or spans, colours) the
//! caller logs through `tracing` instead.

use std::fmt::Write;

use tracing::Level;

use super::{json_line, plain, text};

/// One line being written: its fields after the message, in the line's format.
pub(crate) struct Line<'a> {
    text: &'a mut String,
    json: bool,
    /// The line's own timestamp: its time, and where its text starts in `text`.
    stamp: (std::time::SystemTime, usize),
}

impl Line<'_> {
    /// A field logged with `%`: as it displays (`name=value`), or a JSON string.
    pub(crate) fn shown(&mut self, name: &str, value: &str) {
        self.name(name);
        if self.json {
            let _ = json_line::string(self.text, value);
        } else {
            self.text.push_str(value);
        }
    }

    /// Text of the line's own making, already as each format writes it: `plain` for readable
    /// lines, `json` for JSON lines (constants at the call site, so that a run of fixed text,
    /// names and punctuation, is one copy of a known length).
    #[inline]
    pub(crate) fn own(&mut self, plain: &str, json: &str) {
        if self.json {
            self.text.push_str(json);
        } else {
            self.text.push_str(plain);
        }
    }

    /// A value with nothing to escape in either format (an HTTP token, an IP address), as it
    /// is: its quotes, where the format has them, are the caller's [`Line::own`] text.
    pub(crate) fn clean(&mut self, value: &str) {
        debug_assert!(text::quotable(value.as_bytes()), "{value:?}");
        self.text.push_str(value);
    }

    /// A text value from elsewhere, quoted as a `&str` field's value is logged (`"value"`
    /// with `Debug`'s escapes), or a JSON string; its name is the caller's [`Line::own`] text.
    pub(crate) fn quoted(&mut self, value: &str) {
        let _ = if self.json {
            json_line::string(self.text, value)
        } else {
            plain::quoted(self.text, value)
        };
    }

    /// A time as a line's timestamp writes it, with `digits` digits of its fraction (its
    /// quotes, where the format has them, are the caller's [`Line::own`] text).
    pub(crate) fn time(&mut self, time: std::time::SystemTime, digits: u32) {
        if !copy_stamp(self.text, Some(self.stamp), time, digits) {
            let _ = plain::utc(&mut *self.text, time, digits);
        }
    }

    /// A number value, in decimal.
    pub(crate) fn decimal(&mut self, value: u64) {
        text::push_decimal(self.text, value);
    }

    // Inlined: each call site knows its name's length, and pushes it without a call.
    #[inline(always)]
    fn name(&mut self, name: &str) {
        if self.json {
            self.text.push(',');
            let _ = json_line::string(self.text, name);
            self.text.push(':');
        } else {
            self.text.push(' ');
            self.text.push_str(name);
            self.text.push('=');
        }
    }
}

/// Writes `time` with `digits` digits of its fraction by copying it from the line's own
/// timestamp (`stamp`: its time and where its text starts in `text`), where that is the same
/// moment; says whether it did.
fn copy_stamp(
    text: &mut String,
    stamp: Option<(std::time::SystemTime, usize)>,
    time: std::time::SystemTime,
    digits: u32,
) -> bool {
    let Some((stamp, at)) = stamp else {
        return false;
    };
    // `2026-01-02T03:04:05` (19 characters), `.` and the digits.
    let end = at + 20 + digits as usize;
    if stamp != time || !(1..=6).contains(&digits) || end > text.len() {
        return false;
    }
    text.extend_from_within(at..end);
    text.push('Z');
    true
}

/// How a message's text goes into its line.
#[derive(Clone, Copy, PartialEq)]
enum Escape {
    /// As it is: for a message handed to `tracing`, whose formatter escapes it.
    Raw,
    /// Terminal control characters escaped, as readable lines carry them: written as it is
    /// and looked at once, as a whole, when the message is done (it rarely has any).
    Plain,
    /// Escaped for the inside of a JSON string.
    Json,
}

/// A line's message being written: the pieces of the message's own making go in as they are
/// (a `"` escaped in JSON lines); in JSON lines, text from elsewhere is escaped piece by piece
/// as it comes, so that the message's own quotes do not send the whole of it through the
/// escaping.
pub(crate) struct Message<'a> {
    text: &'a mut String,
    escape: Escape,
    /// The line's own timestamp: its time, and where its text (with six digits of fraction)
    /// starts in `text`.
    stamp: Option<(std::time::SystemTime, usize)>,
}

impl<'a> Message<'a> {
    /// A message written as it is into `text`, for `tracing` to escape.
    pub(crate) fn raw(text: &'a mut String) -> Self {
        Message {
            text,
            escape: Escape::Raw,
            stamp: None,
        }
    }

    /// Text of the message's own making with nothing to escape in any format: digits, an HTTP
    /// token, punctuation other than `"` and `\`.
    #[inline]
    pub(crate) fn own(&mut self, own: &str) {
        debug_assert!(text::quotable(own.as_bytes()), "{own:?}");
        self.text.push_str(own);
    }

    /// Text of the message's own making with quotes in it: `plain` as it is, `json` the same
    /// with each `"` escaped, for JSON lines.
    #[inline]
    pub(crate) fn own_quoted(&mut self, plain: &str, json: &str) {
        debug_assert_eq!(plain.replace('"', "\\\""), json);
        // A push in each branch: inlined where both are constants, each copy is of a length
        // known at compile time (no call to copy bytes).
        if self.escape == Escape::Json {
            self.text.push_str(json);
        } else {
            self.text.push_str(plain);
        }
    }

    /// Text from elsewhere (a URL, a header), escaped where the line's format needs it.
    #[inline]
    pub(crate) fn text(&mut self, value: &str) {
        if self.escape == Escape::Json && text::first_to_escape(value.as_bytes()).is_some() {
            let _ = json_line::Escaping(&mut *self.text).write_str(value);
        } else {
            self.text.push_str(value);
        }
    }

    /// `time` as a line's timestamp writes it, with `digits` digits of its fraction. The
    /// line's own time (a request line's message says when it was written) is copied from the
    /// line's timestamp.
    pub(crate) fn time(&mut self, time: std::time::SystemTime, digits: u32) {
        if !copy_stamp(self.text, self.stamp, time, digits) {
            let _ = plain::utc(&mut *self.text, time, digits);
        }
    }

    /// What `value` displays, escaped where the line's format needs it.
    pub(crate) fn display(&mut self, value: &dyn std::fmt::Display) {
        let from = self.text.len();
        let _ = write!(self.text, "{value}");
        // Written as it is, then escaped where it must be (rarely): one pass over the text.
        if self.escape == Escape::Json
            && text::first_to_escape(&self.text.as_bytes()[from..]).is_some()
        {
            let written = self.text.split_off(from);
            let _ = json_line::Escaping(&mut *self.text).write_str(&written);
        }
    }
}

#[cfg(test)]
thread_local! {
    /// How many lines this thread wrote directly (for tests that must know which way a line
    /// went).
    pub(super) static WRITTEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Whose line it is, for the `service` it names (with `backend.logger.meta`).
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Service {
    /// The root logger's and the plugins' lines: the meta's own `service`.
    Root,
    /// The request lines: `service: rootHttpRouter`, as Backstage's root HTTP router logs them.
    HttpRouter,
}

/// Writes a line of `level` and `target`, stamped `time`, its message written by `message` and
/// then its `fields`, straight to the backend's log writer, and says whether it did: where it did not,
/// nothing was written and the line is the caller's to log through `tracing`. The caller has
/// checked that the level and target are enabled.
pub(crate) fn write(
    level: Level,
    target: &str,
    service: Service,
    time: std::time::SystemTime,
    message: impl FnOnce(&mut Message<'_>),
    fields: impl FnOnce(&mut Line<'_>),
) -> bool {
    let mut parts = Some((message, fields));
    tracing::dispatcher::get_default(|dispatch| {
        let Some(writer) = dispatch.downcast_ref::<super::MetaWriter>() else {
            return false;
        };
        if !writer.direct || dispatch.current_span().id().is_some() {
            return false;
        }
        let Some((message, fields)) = parts.take() else {
            return false;
        };
        thread_local! {
            static TEXT: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
        }
        TEXT.with(|text| {
            // Taken already: a message whose `Display` logs. That line goes through tracing.
            let Ok(mut text) = text.try_borrow_mut() else {
                return false;
            };
            text.clear();
            let json = writer.json;
            let suffix = match service {
                Service::Root => &writer.suffix,
                Service::HttpRouter => &writer.router_suffix,
            };
            let at = start(&mut text, level, target, json, time, message);
            fields(&mut Line {
                text: &mut text,
                json,
                stamp: (time, at),
            });
            if json {
                text.push_str(",\"target\":");
                let _ = json_line::string(&mut *text, target);
                text.push_str(suffix);
                text.push_str("}\n");
            } else {
                text.push_str(suffix);
                text.push('\n');
            }
            writer.inner.send(text.as_bytes());
            #[cfg(test)]
            WRITTEN.set(WRITTEN.get() + 1);
            true
        })
    })
}

/// The line up to the end of its message; where its timestamp starts.
fn start(
    text: &mut String,
    level: Level,
    target: &str,
    json: bool,
    time: std::time::SystemTime,
    message: impl FnOnce(&mut Message<'_>),
) -> usize {
    let at;
    if json {
        text.push_str("{\"timestamp\":\"");
        at = text.len();
        let _ = plain::utc(text, time, 6);
        text.push_str(json_line::level(level));
        text.push_str(",\"message\":\"");
        message(&mut Message {
            text,
            escape: Escape::Json,
            stamp: Some((time, at)),
        });
        text.push('"');
    } else {
        at = text.len();
        let _ = plain::utc(text, time, 6);
        text.push_str(plain::level(level));
        text.push_str(target);
        text.push_str(": ");
        let from = text.len();
        message(&mut Message {
            text,
            escape: Escape::Plain,
            stamp: Some((time, at)),
        });
        if !text::printable(&text.as_bytes()[from..]) {
            let raw = text.split_off(from);
            let _ = plain::Escaping(&mut *text).write_str(&raw);
        }
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_at_the_lines_own_time_copies_the_lines_timestamp() {
        let time = std::time::UNIX_EPOCH + std::time::Duration::new(1_764_547_200, 123_456_789);
        let other = time + std::time::Duration::from_millis(1500);
        for json in [false, true] {
            for digits in [1, 3, 6, 9] {
                for (at, expected) in [
                    (time, "2025-12-01T00:00:00"),
                    (other, "2025-12-01T00:00:01"),
                ] {
                    let mut text = String::new();
                    start(&mut text, Level::INFO, "t", json, time, |message| {
                        message.own("[");
                        message.time(at, digits);
                        message.own("]");
                    });
                    let mut stamp = String::new();
                    plain::utc(&mut stamp, at, digits).unwrap();
                    assert!(stamp.starts_with(expected), "{stamp}");
                    assert!(text.contains(&format!("[{stamp}]")), "{text} lacks {stamp}");
                }
            }
        }
    }
}
