//! The `auditor` service of one plugin, and the severities it maps to log levels.

use std::sync::{Arc, Mutex};

use serde_json::{Map, Value};

use crate::config::RootConfig;
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service, ServiceContext};

/// How grave an audit event is; `backend.auditor.severityLogLevelMappings` maps each to a log
/// level.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Severity {
    /// Routine reads (logged at `debug` by default).
    #[default]
    Low,
    /// Changes (`info`).
    Medium,
    /// Changes with a wide effect (`info`).
    High,
    /// Changes to security or to everything (`info`).
    Critical,
}

impl Severity {
    /// Backstage's name: `low`, `medium`, `high`, `critical`.
    pub fn name(self) -> &'static str {
        match self {
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }

    /// The severity named `name`, as `#[route(..., severity = "...")]` writes it.
    #[doc(hidden)]
    pub const fn named(name: &str) -> Severity {
        match name.as_bytes() {
            b"medium" => Severity::Medium,
            b"high" => Severity::High,
            b"critical" => Severity::Critical,
            _ => Severity::Low,
        }
    }
}

/// The log level of an audit event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// The `auditor` service of one plugin: records audit events as Backstage's auditor does.
/// See [the module](crate::auditor).
///
/// ```
/// use backstage::auditor::{AuditOrigin, Auditor, Severity};
///
/// let auditor = Auditor::for_plugin("vault");
/// let event = auditor.create_event("cleanup", Severity::Low, AuditOrigin::Plugin, ());
/// event.success(serde_json::json!({ "removed": 3 }));
/// ```
#[derive(Clone, Debug)]
pub struct Auditor {
    plugin: Arc<str>,
    /// The levels of low, medium, high and critical.
    levels: [Level; 4],
    /// Where tests read the events back ([`crate::testing::mock::auditor`]).
    record: Option<AuditLog>,
}

/// Audit events kept in memory, as tests read them: [`crate::testing::mock::auditor`], and
/// every event of a [`crate::testing::TestBackend`] (`backend.audit_log()`).
///
/// ```
/// use backstage::auditor::{AuditOrigin, Severity};
/// use backstage::testing::mock;
///
/// let (auditor, log) = mock::auditor("vault");
/// auditor.create_event("cleanup", Severity::Low, AuditOrigin::Plugin, ()).success(());
/// let statuses: Vec<_> = log.events().iter().map(|e| e.status.clone()).collect();
/// assert_eq!(statuses, ["initiated", "succeeded"]);
/// ```
#[derive(Clone, Debug, Default)]
pub struct AuditLog {
    events: Arc<Mutex<Vec<AuditRecord>>>,
}

impl AuditLog {
    /// The events recorded so far, oldest first.
    pub fn events(&self) -> Vec<AuditRecord> {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn push(&self, record: AuditRecord) {
        self.events
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(record);
    }
}

/// One audit log line, as a test reads it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct AuditRecord {
    /// The plugin that recorded it.
    pub plugin: String,
    /// The event id.
    pub event_id: String,
    /// Its severity.
    pub severity: Severity,
    /// `initiated`, `succeeded` or `failed`.
    pub status: String,
    /// Who acted: a user's entity ref, a service's subject, `plugin:<id>`; none for anonymous.
    pub actor_id: Option<String>,
    /// The request's method and URL, when it was about a request.
    pub request: Option<(String, String)>,
    /// The event's `meta` members.
    pub meta: Map<String, Value>,
    /// A failed event's error: its name and message.
    pub error: Option<(String, String)>,
}

impl Auditor {
    /// An auditor for plugin `id`, with Backstage's default levels.
    pub fn for_plugin(id: &str) -> Auditor {
        Auditor {
            plugin: id.into(),
            levels: [Level::Debug, Level::Info, Level::Info, Level::Info],
            record: None,
        }
    }

    /// This auditor, also keeping its events in `log`.
    pub(crate) fn recording(mut self, log: AuditLog) -> Auditor {
        self.record = Some(log);
        self
    }

    pub(crate) fn log(&self) -> Option<&AuditLog> {
        self.record.as_ref()
    }

    pub(crate) fn plugin(&self) -> &str {
        &self.plugin
    }

    pub(crate) fn level(&self, severity: Severity) -> Level {
        self.levels[severity as usize]
    }

    /// Reads `backend.auditor.severityLogLevelMappings`, refusing a level that is not one of
    /// Backstage's with its message.
    pub(crate) fn from_config(plugin: &str, config: &RootConfig) -> Result<Auditor> {
        let mut auditor = Auditor::for_plugin(plugin);
        for (i, severity) in ["low", "medium", "high", "critical"].iter().enumerate() {
            let key = format!("backend.auditor.severityLogLevelMappings.{severity}");
            let Some(value) = config.get_optional::<String>(&key)? else {
                continue;
            };
            auditor.levels[i] = match value.as_str() {
                "debug" => Level::Debug,
                "info" => Level::Info,
                "warn" => Level::Warn,
                "error" => Level::Error,
                _ => {
                    return Err(Error::input(format!(
                        "The configuration value for '{key}' was given an invalid value: '{value}'. Expected one of the following valid values: 'debug, info, warn, error'."
                    )));
                }
            };
        }
        Ok(auditor)
    }
}

impl Service for Auditor {
    type Scope = PluginScoped;
    const ID: &'static str = "core.auditor";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::logging::Logger, RootConfig);
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(
            async move { Auditor::from_config(ctx.plugin_id().unwrap_or("root"), ctx.config()) },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn severities_map_to_levels_from_config() {
        let config = RootConfig::from_value(serde_json::json!({
            "backend": { "auditor": { "severityLogLevelMappings": { "low": "info", "critical": "error" } } }
        }));
        let auditor = Auditor::from_config("vault", &config).unwrap();
        assert_eq!(auditor.level(Severity::Low), Level::Info);
        assert_eq!(auditor.level(Severity::Medium), Level::Info);
        assert_eq!(auditor.level(Severity::Critical), Level::Error);
        let config = RootConfig::from_value(serde_json::json!({
            "backend": { "auditor": { "severityLogLevelMappings": { "high": "loud" } } }
        }));
        let error = Auditor::from_config("vault", &config).unwrap_err();
        assert_eq!(
            error.message(),
            "The configuration value for 'backend.auditor.severityLogLevelMappings.high' was given an invalid value: 'loud'. Expected one of the following valid values: 'debug, info, warn, error'."
        );
    }
}
