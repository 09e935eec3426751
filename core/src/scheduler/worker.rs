//! One worker per scheduled task: waits for the backend to start, then claims and runs the
//! task at its times until shutdown.

use std::sync::Arc;
use std::time::Duration;

use super::store::{Claim, GlobalStore};
use std::sync::atomic::Ordering;

use super::{LastRun, Task, TaskScope, WORKER_IDLE, WORKER_RUNNING, now_ms};

/// The longest a worker sleeps before looking at the shared table again: a trigger or a
/// changed schedule from another instance is seen within this.
const POLL: Duration = Duration::from_secs(5);
/// How long a worker waits after the table failed it (database down).
const RETRY: Duration = Duration::from_secs(5);

pub(crate) struct Context {
    pub(crate) task: Arc<Task>,
    pub(crate) global: GlobalStore,
    pub(crate) started: tokio::sync::watch::Receiver<bool>,
    pub(crate) stopping: tokio::sync::watch::Receiver<bool>,
}

pub(crate) async fn run(mut cx: Context) {
    // A backend that fails to start may stop without ever starting: stop waiting then too.
    let started = tokio::select! {
        started = cx.started.wait_for(|s| *s) => started.is_ok(),
        _ = cx.stopping.wait_for(|s| *s) => false,
    };
    if !started {
        return;
    }
    if let Some(delay) = cx.task.schedule.initial_delay
        && !pause(&mut cx, Some(delay)).await
    {
        return;
    }
    cx.task.worker.store(WORKER_IDLE, Ordering::Relaxed);
    loop {
        if *cx.stopping.borrow() {
            return;
        }
        let wait = match cx.task.schedule.scope {
            TaskScope::Local => step_local(&cx.task).await,
            TaskScope::Global => step_global(&cx).await,
        };
        if !pause(&mut cx, wait).await {
            return;
        }
    }
}

/// Sleeps `wait` (none: until woken), or until woken by a trigger. `false` at shutdown.
async fn pause(cx: &mut Context, wait: Option<Duration>) -> bool {
    if wait.is_some_and(|w| w.is_zero()) {
        return !*cx.stopping.borrow();
    }
    let sleep = async {
        match wait {
            Some(wait) => tokio::time::sleep(wait).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        () = sleep => {}
        () = cx.task.wake.notified() => {}
        _ = cx.stopping.wait_for(|s| *s) => {}
    }
    !*cx.stopping.borrow()
}

/// Runs the task once, within its timeout; logs a failure and returns its message.
async fn execute(task: &Task) -> LastRun {
    tracing::debug!(plugin = task.plugin_id, task = %task.id, "task started");
    task.worker.store(WORKER_RUNNING, Ordering::Relaxed);
    let error = match tokio::time::timeout(task.schedule.timeout, (task.run)()).await {
        Ok(Ok(())) => {
            tracing::debug!(plugin = task.plugin_id, task = %task.id, "task finished");
            None
        }
        Ok(Err(e)) => {
            tracing::error!(plugin = task.plugin_id, task = %task.id, "task failed: {e}");
            Some(e.to_string())
        }
        Err(_) => {
            let message = format!(
                "task timed out after {:?} and was cancelled",
                task.schedule.timeout
            );
            tracing::error!(plugin = task.plugin_id, task = %task.id, "{message}");
            Some(message)
        }
    };
    task.worker.store(WORKER_IDLE, Ordering::Relaxed);
    let last = LastRun {
        ended_at: Some(now_ms()),
        error,
    };
    *task.last_run.lock().unwrap_or_else(|p| p.into_inner()) = last.clone();
    last
}

fn until(at: Option<i64>, now: i64) -> Option<Duration> {
    at.map(|at| Duration::from_millis(at.saturating_sub(now).max(0) as u64))
}

async fn step_local(task: &Task) -> Option<Duration> {
    let now = now_ms();
    {
        let mut state = task.local.lock().unwrap_or_else(|p| p.into_inner());
        match state.next_run {
            Some(at) if at <= now => state.running_since = Some(now),
            other => return until(other, now),
        }
    }
    execute(task).await;
    let mut state = task.local.lock().unwrap_or_else(|p| p.into_inner());
    state.running_since = None;
    state.next_run = task.next_start(now, now_ms());
    until(state.next_run, now_ms())
}

async fn step_global(cx: &Context) -> Option<Duration> {
    let task = &cx.task;
    let now = now_ms();
    let claim = match cx.global.claim(task, now).await {
        Ok(claim) => claim,
        Err(e) => {
            tracing::warn!(plugin = task.plugin_id, task = %task.id, "{e}");
            return Some(RETRY);
        }
    };
    match claim {
        Claim::Wait(next) => Some(until(next, now).map_or(POLL, |w| w.min(POLL))),
        Claim::Run(ticket) => {
            let last = execute(task).await;
            let next = task.next_start(now, now_ms());
            if let Err(e) = cx.global.release(task, &ticket, next, &last).await {
                // The ticket expires after the timeout and the run is released then.
                tracing::warn!(plugin = task.plugin_id, task = %task.id, "{e}");
            }
            Some(Duration::ZERO)
        }
    }
}
