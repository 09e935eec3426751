//! One audit event: logged when it begins, and again when it succeeds or fails.

use axum::response::Response;
use serde::Serialize;
use serde_json::{Map, Value};

use super::origin::AuditOrigin;
use super::service::{AuditRecord, Auditor, Level, Severity};
use crate::error::{Error, ErrorReport};
use crate::logging::AUDIT_TARGET;

/// An audit event that has begun: [`AuditEvent::success`] or [`AuditEvent::fail`] records how it
/// ended. Made by [`Auditor::create_event`].
#[derive(Debug)]
#[must_use = "an audit event records its outcome with `.success(..)` or `.fail(..)`"]
pub struct AuditEvent {
    auditor: Auditor,
    event_id: String,
    severity: Severity,
    origin: AuditOrigin,
    meta: Map<String, Value>,
}

/// An error as the failed event carries it.
struct Failure<'a> {
    name: &'a str,
    message: &'a str,
}

impl Auditor {
    /// Records that `event_id` began, on behalf of `origin` (an [`crate::auditor::AuditRequest`],
    /// `&Credentials`, or [`AuditOrigin::Plugin`]), with `meta` (any serializable value; an
    /// object's members are kept, `()` is none); the returned event records how it ended.
    pub fn create_event(
        &self,
        event_id: &str,
        severity: Severity,
        origin: impl Into<AuditOrigin>,
        meta: impl Serialize,
    ) -> AuditEvent {
        let event = AuditEvent::new(
            self.clone(),
            event_id,
            severity,
            origin.into(),
            members(meta),
        );
        event.initiated();
        event
    }
}

/// The members of `meta` as an object: an object's own, anything else under `value`.
pub(crate) fn members(meta: impl Serialize) -> Map<String, Value> {
    match serde_json::to_value(meta) {
        Ok(Value::Object(map)) => map,
        Ok(Value::Null) => Map::new(),
        Ok(other) => Map::from_iter([("value".to_owned(), other)]),
        Err(e) => Map::from_iter([("unserializable".to_owned(), Value::String(e.to_string()))]),
    }
}

impl AuditEvent {
    pub(crate) fn new(
        auditor: Auditor,
        event_id: &str,
        severity: Severity,
        origin: AuditOrigin,
        meta: Map<String, Value>,
    ) -> AuditEvent {
        AuditEvent {
            auditor,
            event_id: event_id.to_owned(),
            severity,
            origin,
            meta,
        }
    }

    pub(crate) fn initiated(&self) {
        self.write("initiated", &self.meta, None);
    }

    /// Records that the event succeeded, adding `meta`'s members to those it began with.
    pub fn success(self, meta: impl Serialize) {
        let meta = self.merged(meta);
        self.write("succeeded", &meta, None);
    }

    /// Records that the event failed with `error`, adding `meta`'s members to those it began
    /// with.
    pub fn fail(self, error: &Error, meta: impl Serialize) {
        let meta = self.merged(meta);
        let failure = Failure {
            name: error.kind().name(),
            message: error.message(),
        };
        self.write("failed", &meta, Some(failure));
    }

    /// Records the outcome of a route from its answer: success below 400, otherwise failure
    /// with the error the handler returned (or the status's reason).
    #[doc(hidden)]
    pub fn finish(self, response: &Response) {
        let status = response.status();
        if status.as_u16() < 400 {
            return self.success(());
        }
        let meta = self.meta.clone();
        let failure = match response.extensions().get::<ErrorReport>() {
            Some(report) => Failure {
                name: report.name,
                message: &report.message,
            },
            None => Failure {
                name: "Error",
                message: status.canonical_reason().unwrap_or("request failed"),
            },
        };
        self.write("failed", &meta, Some(failure));
    }

    fn merged(&self, meta: impl Serialize) -> Map<String, Value> {
        let mut merged = self.meta.clone();
        merged.extend(members(meta));
        merged
    }

    /// One log line, as Backstage's auditor writes it through the plugin's logger.
    fn write(&self, status: &str, meta: &Map<String, Value>, failure: Option<Failure<'_>>) {
        let plugin = self.auditor.plugin();
        let (actor, request) = self.origin.parts(plugin);
        if let Some(log) = self.auditor.log() {
            log.push(AuditRecord {
                plugin: plugin.to_owned(),
                event_id: self.event_id.clone(),
                severity: self.severity,
                status: status.to_owned(),
                actor_id: actor.actor_id.clone(),
                request: request.as_ref().map(|r| (r.method.clone(), r.url.clone())),
                meta: meta.clone(),
                error: failure
                    .as_ref()
                    .map(|f| (f.name.to_owned(), f.message.to_owned())),
            });
        }
        let actor = json(&actor);
        let request = request.as_ref().map(json);
        let meta = (!meta.is_empty()).then(|| json(meta));
        let event_id = self.event_id.as_str();
        let severity = self.severity.name();
        let (name, message) = match &failure {
            Some(failure) => (
                Some(failure.name),
                format!("{plugin}.{event_id} {}", failure.message),
            ),
            None => (None, format!("{plugin}.{event_id}")),
        };
        macro_rules! audit {
            ($level:expr) => {
                tracing::event!(
                    target: AUDIT_TARGET,
                    $level,
                    plugin,
                    isAuditEvent = true,
                    eventId = event_id,
                    severityLevel = severity,
                    actor = %actor,
                    request = request.as_deref().map(tracing::field::display),
                    meta = meta.as_deref().map(tracing::field::display),
                    status,
                    name,
                    "{message}"
                )
            };
        }
        match self.auditor.level(self.severity) {
            Level::Debug => audit!(tracing::Level::DEBUG),
            Level::Info => audit!(tracing::Level::INFO),
            Level::Warn => audit!(tracing::Level::WARN),
            Level::Error => audit!(tracing::Level::ERROR),
        }
    }
}

fn json(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_is_an_objects_members() {
        assert!(members(()).is_empty());
        assert_eq!(members(serde_json::json!({"id": 1}))["id"], 1);
        assert_eq!(members(5)["value"], 5);
    }
}
