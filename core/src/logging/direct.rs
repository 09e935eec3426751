//! The lines a busy backend writes most, its request lines and its plugins' logger lines,
//! written straight to the log writer when the backend's own subscriber is the one in use: the
//! text the line formats ([`super::plain`], [`super::json_line`]) write, without visiting the
//! fields through `tracing` and passing every piece through a `dyn Write`. Anywhere else
//! (another subscriber, a test's, an entered span, a filter on fields or spans, colours) the
//! caller logs through `tracing` instead.

use std::fmt::{self, Write};

use tracing::Level;

use super::{json_line, plain, text};

/// One line being written: its fields after the message, in the line's format.
pub(crate) struct Line<'a> {
    text: &'a mut String,
    json: bool,
}

impl Line<'_> {
    /// A text field, as a `&str` value is logged: quoted (`name="value"`), or a JSON string.
    pub(crate) fn text(&mut self, name: &str, value: &str) {
        self.name(name);
        let _ = if self.json {
            json_line::string(self.text, value)
        } else {
            plain::quoted(self.text, value)
        };
    }

    /// A field logged with `%`: as it displays (`name=value`), or a JSON string.
    pub(crate) fn shown(&mut self, name: &str, value: &str) {
        self.name(name);
        if self.json {
            let _ = json_line::string(self.text, value);
        } else {
            self.text.push_str(value);
        }
    }

    /// A text field whose value has nothing to escape in either format (an HTTP token, an IP
    /// address): as [`Line::text`] writes it, without looking for what to escape.
    pub(crate) fn clean_text(&mut self, name: &str, value: &str) {
        self.name(name);
        debug_assert!(text::quotable(value.as_bytes()), "{value:?}");
        self.text.push('"');
        self.text.push_str(value);
        self.text.push('"');
    }

    /// A field logged with `%` whose value has nothing to escape in either format (an HTTP
    /// token): as [`Line::shown`] writes it, without looking for what to escape.
    pub(crate) fn clean_shown(&mut self, name: &str, value: &str) {
        if self.json {
            self.clean_text(name, value);
        } else {
            self.name(name);
            self.text.push_str(value);
        }
    }

    /// A number field.
    pub(crate) fn number(&mut self, name: &str, value: u64) {
        self.name(name);
        self.text.push_str(text::digits(value, &mut [0; 20]));
    }

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

#[cfg(test)]
thread_local! {
    /// How many lines this thread wrote directly (for tests that must know which way a line
    /// went).
    pub(super) static WRITTEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Writes a line of `level` and `target`, stamped `time`, its message written by `message` and
/// then its `fields`, straight to the backend's log writer, and says whether it did: where it did not,
/// nothing was written and the line is the caller's to log through `tracing`. The caller has
/// checked that the level and target are enabled.
pub(crate) fn write(
    level: Level,
    target: &str,
    time: std::time::SystemTime,
    message: impl FnOnce(&mut String),
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
            let _ = start(&mut text, level, target, json, time, message);
            fields(&mut Line {
                text: &mut text,
                json,
            });
            if json {
                text.push_str(",\"target\":");
                let _ = json_line::string(&mut *text, target);
                text.push_str(&writer.suffix);
                text.push_str("}\n");
            } else {
                text.push_str(&writer.suffix);
                text.push('\n');
            }
            writer.inner.send(text.as_bytes());
            #[cfg(test)]
            WRITTEN.set(WRITTEN.get() + 1);
            true
        })
    })
}

/// The line up to the end of its message.
fn start(
    text: &mut String,
    level: Level,
    target: &str,
    json: bool,
    time: std::time::SystemTime,
    message: impl FnOnce(&mut String),
) -> fmt::Result {
    if json {
        text.push_str("{\"timestamp\":\"");
        plain::utc(text, time, 6)?;
        text.push_str(json_line::level(level));
        text.push_str(",\"message\":\"");
        let from = text.len();
        message(text);
        // Written as it is, then escaped where it must be (rarely): one pass over the text.
        if text::first_to_escape(&text.as_bytes()[from..]).is_some() {
            let raw = text.split_off(from);
            json_line::Escaping(&mut *text).write_str(&raw)?;
        }
        text.push('"');
    } else {
        plain::utc(text, time, 6)?;
        text.push_str(plain::level(level));
        text.push_str(target);
        text.push_str(": ");
        let from = text.len();
        message(text);
        if !text::printable(&text.as_bytes()[from..]) {
            let raw = text.split_off(from);
            plain::Escaping(&mut *text).write_str(&raw)?;
        }
    }
    Ok(())
}
