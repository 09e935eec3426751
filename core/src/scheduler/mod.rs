//! The `scheduler` service: tasks that run on a cadence (every so long, a cron expression, or
//! only when triggered), once across every instance of the backend (`global`, the default) or
//! in each instance (`local`).
//!
//! Global tasks coordinate through the plugin's database: one row per task in
//! `backstage_rs_scheduler__tasks`, which an instance claims with a ticket before it runs the
//! task, and releases with the next start time when the run ends. A ticket whose instance died
//! expires after the task's timeout and the next instance takes over. Workers start when the
//! backend has started (so a task never runs before its plugin is ready) and stop at shutdown,
//! letting a run in progress finish.
//!
//! ```
//! use std::time::Duration;
//! use backstage::prelude::*;
//! use backstage::scheduler::{Scheduler, TaskSchedule};
//!
//! #[backend_plugin(id = "carmen")]
//! pub struct Carmen {
//!     #[inject]
//!     scheduler: Scheduler,
//!     #[inject]
//!     logger: Logger,
//! }
//!
//! #[routes]
//! impl Carmen {
//!     #[init]
//!     async fn init(&self) -> Result<()> {
//!         let logger = self.logger.clone();
//!         let schedule = TaskSchedule::every(Duration::from_secs(600)).timeout(Duration::from_secs(60));
//!         self.scheduler
//!             .schedule_task("refresh", schedule, move || {
//!                 let logger = logger.clone();
//!                 async move {
//!                     logger.info("refreshing");
//!                     Ok(())
//!                 }
//!             })
//!             .await
//!     }
//! }
//! # fn main() {}
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Value, json};

use crate::database::DatabaseManager;
use crate::error::{Error, Result};
use crate::lifecycle::Lifecycle;
use crate::plugin::{BoxFuture, PluginScoped, Service, ServiceContext};

pub(crate) mod endpoints;
mod schedule;
mod store;
mod worker;

pub(crate) use schedule::parse_cron;
pub use schedule::{DEFAULT_TIMEOUT, Frequency, TaskSchedule, TaskScope};

use store::GlobalStore;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

type TaskFn = Arc<dyn Fn() -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// A scheduled task as this instance knows it.
pub(crate) struct Task {
    plugin_id: &'static str,
    id: String,
    schedule: TaskSchedule,
    cron: Option<croner::Cron>,
    run: TaskFn,
    /// Wakes the worker (a trigger, or shutdown).
    wake: tokio::sync::Notify,
    /// Local tasks: the next start (epoch ms) and the run under way.
    local: Mutex<LocalState>,
    /// What this instance's worker is doing: [`WORKER_WAITING`], `_IDLE` or `_RUNNING`.
    worker: std::sync::atomic::AtomicU8,
    /// This instance's last run of the task: when it ended and its error (local tasks; global
    /// ones keep theirs in the shared table).
    last_run: Mutex<LastRun>,
}

#[derive(Default)]
struct LocalState {
    next_run: Option<i64>,
    /// When the run under way started (epoch ms).
    running_since: Option<i64>,
}

impl LocalState {
    fn running(&self) -> bool {
        self.running_since.is_some()
    }
}

/// How a task's last run went.
#[derive(Clone, Default)]
pub(crate) struct LastRun {
    pub(crate) ended_at: Option<i64>,
    pub(crate) error: Option<String>,
}

pub(crate) const WORKER_WAITING: u8 = 0;
pub(crate) const WORKER_IDLE: u8 = 1;
pub(crate) const WORKER_RUNNING: u8 = 2;

impl Task {
    /// When the run after one that started at `started` (epoch ms) begins; `None`: when
    /// triggered.
    fn next_start(&self, started: i64, now: i64) -> Option<i64> {
        match &self.schedule.frequency {
            Frequency::Every(period) => Some((started + period.as_millis() as i64).max(now)),
            Frequency::Cron(_) => {
                let cron = self.cron.as_ref()?;
                let from = chrono::DateTime::from_timestamp_millis(now)?;
                let next = cron.find_next_occurrence(&from, false).ok()?;
                Some(next.timestamp_millis())
            }
            Frequency::Manual => None,
        }
    }

    /// The first start of a task just registered.
    fn first_start(&self, now: i64) -> Option<i64> {
        let delay = self.schedule.initial_delay.unwrap_or_default().as_millis() as i64;
        match self.schedule.frequency {
            Frequency::Every(_) => Some(now + delay),
            Frequency::Cron(_) => self.next_start(now, now + delay),
            Frequency::Manual => None,
        }
    }

    fn descriptor(&self) -> TaskDescriptor {
        TaskDescriptor {
            id: self.id.clone(),
            plugin_id: self.plugin_id.to_owned(),
            scope: self.schedule.scope,
            settings: self.schedule.settings(),
            task_state: None,
            worker_state: None,
        }
    }

    /// Backstage's `workerState`.
    fn worker_state(&self) -> Value {
        let status = match self.worker.load(std::sync::atomic::Ordering::Relaxed) {
            WORKER_WAITING => "initial-wait",
            WORKER_RUNNING => "running",
            _ => "idle",
        };
        json!({ "status": status })
    }

    /// Backstage's `taskState` of a local task.
    fn local_state(&self) -> Value {
        let (next_run, running_since) = {
            let state = self.local.lock().unwrap_or_else(|p| p.into_inner());
            (state.next_run, state.running_since)
        };
        let last = self
            .last_run
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        task_state(TaskTimes {
            next_run,
            started_at: running_since,
            times_out_at: running_since
                .map(|at| at.saturating_add(self.schedule.timeout.as_millis() as i64)),
            last,
        })
    }
}

/// The times Backstage's `taskState` is made of (epoch ms).
pub(crate) struct TaskTimes {
    pub(crate) next_run: Option<i64>,
    pub(crate) started_at: Option<i64>,
    pub(crate) times_out_at: Option<i64>,
    pub(crate) last: LastRun,
}

/// `{ status: "running", startedAt, timesOutAt, ... }` or `{ status: "idle", startsAt?, ... }`,
/// times as ISO 8601 in UTC.
pub(crate) fn task_state(times: TaskTimes) -> Value {
    let iso = |ms: i64| {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| Value::from(t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)))
            .unwrap_or(Value::Null)
    };
    let mut state = serde_json::Map::new();
    match times.started_at {
        Some(started) => {
            state.insert("status".into(), "running".into());
            state.insert("startedAt".into(), iso(started));
            if let Some(at) = times.times_out_at {
                state.insert("timesOutAt".into(), iso(at));
            }
        }
        None => {
            state.insert("status".into(), "idle".into());
            if let Some(at) = times.next_run {
                state.insert("startsAt".into(), iso(at));
            }
        }
    }
    if let Some(error) = times.last.error {
        state.insert("lastRunError".into(), Value::from(error));
    }
    if let Some(at) = times.last.ended_at {
        state.insert("lastRunEndedAt".into(), iso(at));
    }
    Value::Object(state)
}

/// A task as [`Scheduler::get_scheduled_tasks`] lists it (Backstage's shape).
///
/// ```
/// use backstage::scheduler::{Scheduler, TaskSchedule, TaskScope};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let scheduler = Scheduler::manual();
/// scheduler.schedule_task("sync", TaskSchedule::manual().local(), || async { Ok(()) }).await.unwrap();
/// let tasks = scheduler.get_scheduled_tasks();
/// assert_eq!((tasks[0].id.as_str(), tasks[0].scope), ("sync", TaskScope::Local));
/// assert_eq!(tasks[0].settings["cadence"], "manual");
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct TaskDescriptor {
    /// The task's id.
    #[serde(rename = "taskId")]
    pub id: String,
    /// The plugin that scheduled it.
    pub plugin_id: String,
    /// Global or local.
    pub scope: TaskScope,
    /// `{ version: 2, cadence, timeoutAfterDuration, initialDelayDuration? }`.
    pub settings: Value,
    /// `{ status: "running", startedAt, timesOutAt }` or `{ status: "idle", startsAt }`, with
    /// `lastRunError` and `lastRunEndedAt` once it has run; filled by
    /// [`Scheduler::describe_tasks`].
    pub task_state: Option<Value>,
    /// `{ status: "initial-wait" | "idle" | "running" }`: this instance's worker; filled by
    /// [`Scheduler::describe_tasks`].
    pub worker_state: Option<Value>,
}

/// The `scheduler` service of one plugin. See the [module docs](self).
///
/// [`Scheduler::manual`] makes a scheduler whose tasks run only when triggered, for tests.
#[derive(Clone)]
pub struct Scheduler {
    plugin_id: &'static str,
    shared: Arc<Shared>,
}

struct Shared {
    /// `None`: the manual (test) scheduler.
    real: Option<Real>,
    tasks: Mutex<BTreeMap<(&'static str, String), Arc<Task>>>,
}

struct Real {
    global: GlobalStore,
    /// `true` once the backend has started; workers wait for it.
    started: tokio::sync::watch::Sender<bool>,
    /// `true` at shutdown: workers stop between runs.
    stopping: tokio::sync::watch::Sender<bool>,
    workers: tokio::sync::Mutex<tokio::task::JoinSet<()>>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler")
            .field("plugin_id", &self.plugin_id)
            .field("manual", &self.shared.real.is_none())
            .finish_non_exhaustive()
    }
}

impl Scheduler {
    /// A scheduler whose tasks never run on their own: [`Scheduler::trigger_task`](crate::scheduler::Scheduler::trigger_task) runs one
    /// at once and returns its result. For tests: hand it to a
    /// [`crate::testing::TestBackend`] with `.service(scheduler.clone())` and keep the clone.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use std::sync::atomic::{AtomicUsize, Ordering};
    /// use backstage::scheduler::{Scheduler, TaskSchedule};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let scheduler = Scheduler::manual();
    /// let runs = Arc::new(AtomicUsize::new(0));
    /// let counter = runs.clone();
    /// scheduler.schedule_task("count", TaskSchedule::manual(), move || {
    ///     let counter = counter.clone();
    ///     async move { counter.fetch_add(1, Ordering::SeqCst); Ok(()) }
    /// }).await.unwrap();
    /// scheduler.trigger_task("count").await.unwrap();
    /// assert_eq!(runs.load(Ordering::SeqCst), 1);
    /// assert!(scheduler.trigger_task("missing").await.is_err());
    /// # });
    /// ```
    pub fn manual() -> Scheduler {
        Scheduler {
            plugin_id: "",
            shared: Arc::new(Shared {
                real: None,
                tasks: Mutex::default(),
            }),
        }
    }

    fn real(plugin_id: &'static str, databases: DatabaseManager) -> Scheduler {
        Scheduler {
            plugin_id,
            shared: Arc::new(Shared {
                real: Some(Real {
                    global: GlobalStore::new(plugin_id, databases),
                    started: tokio::sync::watch::Sender::new(false),
                    stopping: tokio::sync::watch::Sender::new(false),
                    workers: tokio::sync::Mutex::default(),
                }),
                tasks: Mutex::default(),
            }),
        }
    }

    /// Schedules `task` under `id` (unique within the plugin). The function is called for each
    /// run; an error it returns is logged and the task runs again at its next time.
    pub async fn schedule_task<F, Fut>(
        &self,
        id: &str,
        schedule: TaskSchedule,
        task: F,
    ) -> Result<()>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<()>> + Send + 'static,
    {
        if id.is_empty() || id.len() > 255 {
            return Err(Error::input("a task id must be 1 to 255 characters long"));
        }
        let cron = match &schedule.frequency {
            Frequency::Cron(expression) => Some(parse_cron(expression).map_err(|e| {
                Error::input(format!(
                    "task '{id}': '{expression}' is not a cron expression: {e}"
                ))
            })?),
            _ => None,
        };
        if schedule.timeout.is_zero() {
            return Err(Error::input(format!(
                "task '{id}': the timeout must be longer than zero"
            )));
        }
        let task = Arc::new(Task {
            plugin_id: self.plugin_id,
            id: id.to_owned(),
            schedule,
            cron,
            run: Arc::new(move || Box::pin(task())),
            wake: tokio::sync::Notify::new(),
            local: Mutex::default(),
            worker: std::sync::atomic::AtomicU8::new(WORKER_WAITING),
            last_run: Mutex::default(),
        });
        {
            let mut tasks = self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner());
            let key = (self.plugin_id, id.to_owned());
            if tasks.contains_key(&key) {
                return Err(Error::conflict(format!(
                    "task '{id}' is already scheduled by plugin '{}'",
                    self.plugin_id
                )));
            }
            tasks.insert(key, task.clone());
        }
        let Some(real) = &self.shared.real else {
            return Ok(());
        };
        let now = now_ms();
        match task.schedule.scope {
            TaskScope::Global => {
                if let Err(e) = real.global.register(&task, now).await {
                    let mut tasks = self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner());
                    tasks.remove(&(self.plugin_id, id.to_owned()));
                    return Err(e);
                }
            }
            TaskScope::Local => {
                task.local
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .next_run = task.first_start(now);
            }
        }
        let context = worker::Context {
            task,
            global: real.global.clone(),
            started: real.started.subscribe(),
            stopping: real.stopping.subscribe(),
        };
        real.workers.lock().await.spawn(worker::run(context));
        Ok(())
    }

    /// Runs task `id` as soon as possible (on whichever instance claims it first, for a global
    /// task). A task mid-run is a conflict (409); an unknown task is not found (404).
    ///
    /// On [`Scheduler::manual`] the task runs right here and its result is returned.
    pub async fn trigger_task(&self, id: &str) -> Result<()> {
        let task = self.find(id);
        let Some(real) = &self.shared.real else {
            let task = task?;
            let result = (task.run)().await;
            *task.last_run.lock().unwrap_or_else(|p| p.into_inner()) = LastRun {
                ended_at: Some(now_ms()),
                error: result.as_ref().err().map(|e| e.to_string()),
            };
            return result;
        };
        match task {
            Ok(task) if task.schedule.scope == TaskScope::Local => {
                {
                    let mut state = task.local.lock().unwrap_or_else(|p| p.into_inner());
                    if state.running() {
                        return Err(running(id));
                    }
                    state.next_run = Some(now_ms());
                }
                task.wake.notify_one();
                Ok(())
            }
            Ok(task) => {
                real.global.trigger(id, now_ms()).await?;
                task.wake.notify_one();
                Ok(())
            }
            // Scheduled by another instance only: the shared table still knows it.
            Err(not_here) => match real.global.trigger(id, now_ms()).await {
                Err(e) if e.kind() == crate::error::ErrorKind::NotFound => Err(not_here),
                other => other,
            },
        }
    }

    fn find(&self, id: &str) -> Result<Arc<Task>> {
        let tasks = self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(task) = tasks.get(&(self.plugin_id, id.to_owned())) {
            return Ok(task.clone());
        }
        // The manual scheduler handed to several plugins: a test names the task alone.
        if self.shared.real.is_none() {
            let mut matching = tasks.iter().filter(|((_, task_id), _)| task_id == id);
            if let (Some((_, task)), None) = (matching.next(), matching.next()) {
                return Ok(task.clone());
            }
        }
        Err(Error::not_found(format!(
            "there is no task '{id}' in plugin '{}'",
            self.plugin_id
        )))
    }

    /// The tasks this plugin scheduled in this instance.
    pub fn get_scheduled_tasks(&self) -> Vec<TaskDescriptor> {
        self.own_tasks().iter().map(|t| t.descriptor()).collect()
    }

    /// The tasks of this scheduler's plugin (of every plugin, on an unbound manual scheduler).
    fn own_tasks(&self) -> Vec<Arc<Task>> {
        let tasks = self.shared.tasks.lock().unwrap_or_else(|p| p.into_inner());
        tasks
            .values()
            .filter(|t| self.plugin_id.is_empty() || t.plugin_id == self.plugin_id)
            .cloned()
            .collect()
    }

    /// [`Scheduler::get_scheduled_tasks`] with each task's state as Backstage's scheduler
    /// endpoint shows it: from the shared table for global tasks, from this instance for local
    /// ones; the worker's state is this instance's.
    pub async fn describe_tasks(&self) -> Result<Vec<TaskDescriptor>> {
        let tasks = self.own_tasks();
        let mut described = Vec::with_capacity(tasks.len());
        for task in tasks {
            let task_state = match (&self.shared.real, task.schedule.scope) {
                (Some(real), TaskScope::Global) => real.global.state(&task.id).await?,
                _ => Some(task.local_state()),
            };
            described.push(TaskDescriptor {
                task_state,
                worker_state: Some(task.worker_state()),
                ..task.descriptor()
            });
        }
        Ok(described)
    }

    /// Lets workers run (the plugin's start-up hook).
    fn start(&self) {
        if let Some(real) = &self.shared.real {
            real.started.send_replace(true);
        }
    }

    /// Stops workers between runs and waits for runs in progress (bounded by their timeouts).
    async fn stop(&self) {
        let Some(real) = &self.shared.real else {
            return;
        };
        // Workers wait on this flag wherever they wait, before start-up included.
        real.stopping.send_replace(true);
        let mut workers = real.workers.lock().await;
        while workers.join_next().await.is_some() {}
    }
}

fn running(id: &str) -> Error {
    Error::conflict(format!("task '{id}' is currently running"))
}

impl Service for Scheduler {
    type Scope = PluginScoped;
    const ID: &'static str = "core.scheduler";
    const DEPENDENCIES: &'static [&'static str] = crate::plugin::dependencies!(
        crate::database::DatabaseManager,
        crate::lifecycle::Lifecycle
    );

    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let plugin_id = ctx
                .plugin_id()
                .ok_or_else(|| Error::internal("the scheduler service belongs to a plugin"))?;
            let scheduler = Scheduler::real(plugin_id, ctx.get::<DatabaseManager>().await?);
            let lifecycle = ctx.get::<Lifecycle>().await?;
            let starting = scheduler.clone();
            lifecycle.add_startup_hook(move || async move {
                starting.start();
                Ok(())
            });
            let stopping = scheduler.clone();
            lifecycle.add_shutdown_hook(move || async move {
                stopping.stop().await;
                Ok(())
            });
            Ok(scheduler)
        })
    }

    fn bind_to_plugin(mut self, plugin_id: &'static str) -> Self {
        if self.shared.real.is_none() {
            self.plugin_id = plugin_id;
        }
        self
    }
}

impl FromStr for TaskScope {
    type Err = Error;
    fn from_str(text: &str) -> Result<TaskScope> {
        match text {
            "global" => Ok(TaskScope::Global),
            "local" => Ok(TaskScope::Local),
            other => Err(Error::input(format!(
                "'{other}' is not a task scope; use 'global' or 'local'"
            ))),
        }
    }
}

crate::plugin::register!(Scheduler);

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::config::RootConfig;

    #[test]
    fn settings_read_as_backstage_writes_them() {
        let schedule = TaskSchedule::every(Duration::from_secs(90))
            .timeout(Duration::from_millis(1500))
            .initial_delay(Duration::from_secs(5));
        assert_eq!(
            schedule.settings(),
            json!({"version": 2, "cadence": "PT90S", "timeoutAfterDuration": "PT1.500S", "initialDelayDuration": "PT5S"})
        );
        assert_eq!(TaskSchedule::manual().settings()["cadence"], "manual");
    }

    #[test]
    fn schedules_from_config_name_the_key_at_fault() {
        let read = |v: Value| {
            TaskSchedule::from_config(&RootConfig::from_value(json!({ "s": v })), "s")
                .map_err(|e| e.to_string())
        };
        let every = read(json!({"frequency": {"minutes": 5}, "timeout": "PT1M"})).unwrap();
        assert_eq!(every.frequency, Frequency::Every(Duration::from_secs(300)));
        assert_eq!(every.scope, TaskScope::Global);
        assert_eq!(
            read(json!({"frequency": {"trigger": "manual"}, "timeout": 1000}))
                .unwrap()
                .frequency,
            Frequency::Manual
        );
        assert!(
            read(json!({"frequency": {"cron": "nope"}, "timeout": 1000}))
                .unwrap_err()
                .contains("s.frequency.cron")
        );
        assert!(
            read(json!({"frequency": {"trigger": "later"}, "timeout": 1000}))
                .unwrap_err()
                .contains("s.frequency.trigger")
        );
        assert!(
            read(json!({"frequency": 1000}))
                .unwrap_err()
                .contains("s.timeout")
        );
        assert!(
            read(json!({"frequency": 1000, "timeout": 1000, "scope": "everywhere"}))
                .unwrap_err()
                .contains("s.scope")
        );
        assert!(
            read(json!({"timeout": 1000}))
                .unwrap_err()
                .contains("s.frequency")
        );
    }

    #[test]
    fn next_starts_follow_the_cadence() {
        let task = |schedule: TaskSchedule| Task {
            plugin_id: "p",
            id: "t".into(),
            cron: match &schedule.frequency {
                Frequency::Cron(e) => Some(parse_cron(e).unwrap()),
                _ => None,
            },
            schedule,
            run: Arc::new(|| Box::pin(async { Ok(()) })),
            wake: tokio::sync::Notify::new(),
            local: Mutex::default(),
            worker: std::sync::atomic::AtomicU8::new(WORKER_WAITING),
            last_run: Mutex::default(),
        };
        let every = task(TaskSchedule::every(Duration::from_secs(10)));
        assert_eq!(every.next_start(1_000, 2_000), Some(11_000));
        assert_eq!(
            every.next_start(1_000, 60_000),
            Some(60_000),
            "a long run does not pile up runs"
        );
        let cron = task(TaskSchedule::cron("0 * * * *").unwrap());
        // 1970-01-01T00:00:01Z -> the next whole hour.
        assert_eq!(cron.next_start(0, 1_000), Some(3_600_000));
        let seconds = task(TaskSchedule::cron("*/10 * * * * *").unwrap());
        assert_eq!(seconds.next_start(0, 1_000), Some(10_000));
        assert_eq!(task(TaskSchedule::manual()).first_start(5), None);
        let delayed =
            task(TaskSchedule::every(Duration::from_secs(1)).initial_delay(Duration::from_secs(3)));
        assert_eq!(delayed.first_start(1_000), Some(4_000));
    }
}
