//! When a task runs: every so long, a cron expression or on demand, with a timeout, a first
//! delay and a scope; read from code or from Backstage's config shape.

use std::time::Duration;

use serde::Serialize;
use serde_json::{Value, json};

use crate::config::RootConfig;
use crate::error::{Error, Result};

/// How often a task runs.
///
/// ```
/// use std::time::Duration;
/// use backstage::scheduler::{Frequency, TaskSchedule};
/// assert_eq!(TaskSchedule::every(Duration::from_secs(60)).frequency, Frequency::Every(Duration::from_secs(60)));
/// assert_eq!(TaskSchedule::manual().frequency, Frequency::Manual);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Frequency {
    /// Every so long, counted from the start of the previous run.
    Every(Duration),
    /// At the times of a cron expression (5 fields, or 6 with seconds first), in UTC.
    Cron(String),
    /// Only when triggered ([`Scheduler::trigger_task`](crate::scheduler::Scheduler::trigger_task) or the scheduler's HTTP endpoint).
    Manual,
}

/// Where a task runs: once across all instances, or in each.
///
/// ```
/// use std::time::Duration;
/// use backstage::scheduler::{TaskSchedule, TaskScope};
/// assert_eq!(TaskSchedule::every(Duration::from_secs(1)).scope, TaskScope::Global);
/// assert_eq!(TaskSchedule::every(Duration::from_secs(1)).local().scope, TaskScope::Local);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TaskScope {
    /// Once across every instance that shares the plugin's database (the default).
    #[default]
    Global,
    /// In every instance, independently.
    Local,
}

/// When and how a task runs: Backstage's `SchedulerServiceTaskScheduleDefinition`.
///
/// ```
/// use std::time::Duration;
/// use backstage::scheduler::{Frequency, TaskSchedule, TaskScope};
/// let schedule = TaskSchedule::cron("*/5 * * * *").unwrap()
///     .timeout(Duration::from_secs(30))
///     .initial_delay(Duration::from_secs(10))
///     .local();
/// assert_eq!(schedule.frequency, Frequency::Cron("*/5 * * * *".into()));
/// assert_eq!(schedule.scope, TaskScope::Local);
/// assert!(TaskSchedule::cron("every tuesday").is_err());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TaskSchedule {
    /// How often it runs.
    pub frequency: Frequency,
    /// The longest a run may take; a run past it is cancelled. One hour unless set.
    pub timeout: Duration,
    /// How long each instance waits after start-up before its first run.
    pub initial_delay: Option<Duration>,
    /// Once across instances, or in each.
    pub scope: TaskScope,
}

/// The timeout of a schedule that does not set one.
///
/// ```
/// use backstage::scheduler::{DEFAULT_TIMEOUT, TaskSchedule};
/// assert_eq!(TaskSchedule::manual().timeout, DEFAULT_TIMEOUT);
/// ```
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(3600);

impl TaskSchedule {
    fn with(frequency: Frequency) -> TaskSchedule {
        TaskSchedule {
            frequency,
            timeout: DEFAULT_TIMEOUT,
            initial_delay: None,
            scope: TaskScope::Global,
        }
    }

    /// Runs every `period`.
    pub fn every(period: Duration) -> TaskSchedule {
        TaskSchedule::with(Frequency::Every(period))
    }

    /// Runs at the times of `expression` (checked here).
    pub fn cron(expression: &str) -> Result<TaskSchedule> {
        parse_cron(expression)
            .map_err(|e| Error::input(format!("'{expression}' is not a cron expression: {e}")))?;
        Ok(TaskSchedule::with(Frequency::Cron(expression.to_owned())))
    }

    /// Runs only when triggered.
    pub fn manual() -> TaskSchedule {
        TaskSchedule::with(Frequency::Manual)
    }

    /// Sets the timeout.
    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> TaskSchedule {
        self.timeout = timeout;
        self
    }

    /// Sets the initial delay.
    #[must_use]
    pub fn initial_delay(mut self, delay: Duration) -> TaskSchedule {
        self.initial_delay = Some(delay);
        self
    }

    /// Runs in each instance instead of once across them.
    #[must_use]
    pub fn local(mut self) -> TaskSchedule {
        self.scope = TaskScope::Local;
        self
    }

    /// Reads a schedule from config as Backstage does: `frequency` (a duration, `{ cron: "..." }`
    /// or `{ trigger: manual }`), `timeout` (a duration, required), `initialDelay` and `scope`.
    /// Errors name the key.
    ///
    /// ```
    /// use backstage::RootConfig;
    /// use backstage::scheduler::{Frequency, TaskSchedule};
    /// let config = RootConfig::from_value(serde_json::json!({ "carmen": { "schedule": {
    ///     "frequency": { "cron": "0 * * * *" }, "timeout": { "minutes": 3 }, "scope": "local"
    /// } } }));
    /// let schedule = TaskSchedule::from_config(&config, "carmen.schedule").unwrap();
    /// assert_eq!(schedule.frequency, Frequency::Cron("0 * * * *".into()));
    /// assert_eq!(schedule.timeout.as_secs(), 180);
    /// ```
    pub fn from_config(config: &RootConfig, key: &str) -> Result<TaskSchedule> {
        let at = |field: &str| format!("{key}.{field}");
        let frequency: Value = config.get(&at("frequency"))?;
        let frequency = match &frequency {
            Value::Object(map) if map.contains_key("cron") => {
                let expression = map.get("cron").and_then(Value::as_str).ok_or_else(|| {
                    Error::input(format!("{}: must be a string", at("frequency.cron")))
                })?;
                TaskSchedule::cron(expression)
                    .map_err(|e| {
                        Error::input(format!("{}: {}", at("frequency.cron"), e.message()))
                    })?
                    .frequency
            }
            Value::Object(map) if map.contains_key("trigger") => {
                match map.get("trigger").and_then(Value::as_str) {
                    Some("manual") => Frequency::Manual,
                    _ => {
                        return Err(Error::input(format!(
                            "{}: the only trigger is 'manual'",
                            at("frequency.trigger")
                        )));
                    }
                }
            }
            _ => Frequency::Every(
                crate::config::duration(config, &at("frequency"))?
                    .ok_or_else(|| Error::input(format!("{} is missing", at("frequency"))))?,
            ),
        };
        let timeout = crate::config::duration(config, &at("timeout"))?.ok_or_else(|| {
            Error::input(format!(
                "{} is missing: say how long a run may take",
                at("timeout")
            ))
        })?;
        let initial_delay = crate::config::duration(config, &at("initialDelay"))?;
        let scope = match config.get_optional::<String>(&at("scope"))? {
            None => TaskScope::Global,
            Some(text) => text
                .parse()
                .map_err(|e: Error| Error::input(format!("{}: {}", at("scope"), e.message())))?,
        };
        Ok(TaskSchedule {
            frequency,
            timeout,
            initial_delay,
            scope,
        })
    }

    /// The settings as Backstage stores and shows them (`version: 2`, ISO durations).
    pub(crate) fn settings(&self) -> Value {
        let cadence = match &self.frequency {
            Frequency::Every(period) => iso(*period),
            Frequency::Cron(expression) => expression.clone(),
            Frequency::Manual => "manual".to_owned(),
        };
        let mut settings = json!({
            "version": 2,
            "cadence": cadence,
            "timeoutAfterDuration": iso(self.timeout),
        });
        if let Some(delay) = self.initial_delay {
            settings["initialDelayDuration"] = Value::from(iso(delay));
        }
        settings
    }
}

pub(crate) fn parse_cron(
    expression: &str,
) -> std::result::Result<croner::Cron, croner::errors::CronError> {
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(expression)
}

/// `PT1M30S`-style text for a duration.
pub(crate) fn iso(duration: Duration) -> String {
    let ms = duration.as_millis();
    if ms.is_multiple_of(1000) {
        format!("PT{}S", ms / 1000)
    } else {
        format!("PT{}.{:03}S", ms / 1000, ms % 1000)
    }
}
