//! The table that global tasks coordinate through, in the plugin's database.
//!
//! Times are milliseconds since the epoch in `BIGINT` columns: the same on every engine and
//! through sqlx's `Any` driver. Each instance uses its own clock; claims are atomic updates
//! guarded by the ticket column, so clock skew can shift a run, never double it.

use std::sync::Arc;

use sqlx::Row;

use super::{LastRun, Task, TaskTimes, running, task_state};
use crate::database::{Database, DatabaseManager};
use crate::error::{Error, Result};

const TABLE: &str = "backstage_rs_scheduler__tasks";

/// What a worker may do now.
pub(crate) enum Claim {
    /// This instance holds the run; release it with the ticket.
    Run(String),
    /// Not due: the next start (epoch ms), if one is set.
    Wait(Option<i64>),
}

#[derive(Clone)]
pub(crate) struct GlobalStore {
    inner: Arc<Inner>,
}

struct Inner {
    plugin_id: &'static str,
    manager: DatabaseManager,
    database: tokio::sync::OnceCell<Database>,
}

impl GlobalStore {
    pub(crate) fn new(plugin_id: &'static str, manager: DatabaseManager) -> GlobalStore {
        GlobalStore {
            inner: Arc::new(Inner {
                plugin_id,
                manager,
                database: tokio::sync::OnceCell::new(),
            }),
        }
    }

    /// The plugin's database with the task table in it; connected when the first global task
    /// is scheduled.
    async fn database(&self) -> Result<&Database> {
        self.inner
            .database
            .get_or_try_init(|| async {
                let database = self.inner.manager.for_plugin(self.inner.plugin_id).await?;
                let create = format!(
                    "CREATE TABLE IF NOT EXISTS {TABLE} (id varchar(255) NOT NULL PRIMARY KEY, settings_json text NOT NULL, next_run_start_at bigint NULL, current_run_ticket varchar(255) NULL, current_run_started_at bigint NULL, current_run_expires_at bigint NULL, last_run_error_json varchar(4000) NULL, last_run_ended_at bigint NULL)"
                );
                // Instances starting together may race to create it; the loser's retry sees it.
                if sqlx::query(&create).execute(database.pool()).await.is_err() {
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    sqlx::query(&create)
                        .execute(database.pool())
                        .await
                        .map_err(|e| self.error("could not create the task table", &e))?;
                }
                Ok(database)
            })
            .await
    }

    fn error(&self, what: &str, e: &sqlx::Error) -> Error {
        Error::internal(format!(
            "plugin '{}': {what} ({TABLE}): {e}",
            self.inner.plugin_id
        ))
    }

    /// Inserts the task's row, or updates its settings; moves its next start earlier when the
    /// new schedule asks for that.
    pub(crate) async fn register(&self, task: &Task, now: i64) -> Result<()> {
        let db = self.database().await?;
        let settings = task.schedule.settings().to_string();
        let first = task.first_start(now);
        let exists = sqlx::query(&db.sql(&format!("SELECT id FROM {TABLE} WHERE id = ?")))
            .bind(&task.id)
            .fetch_optional(db.pool())
            .await
            .map_err(|e| self.error("could not read the task table", &e))?
            .is_some();
        if !exists {
            let inserted = sqlx::query(&db.sql(&format!(
                "INSERT INTO {TABLE} (id, settings_json, next_run_start_at) VALUES (?, ?, ?)"
            )))
            .bind(&task.id)
            .bind(&settings)
            .bind(first)
            .execute(db.pool())
            .await;
            if inserted.is_ok() {
                return Ok(());
            }
            // Another instance inserted it first: fall through to the update.
        }
        let update = match first {
            Some(_) => format!(
                "UPDATE {TABLE} SET settings_json = ?, next_run_start_at = CASE WHEN next_run_start_at IS NULL OR next_run_start_at > ? THEN ? ELSE next_run_start_at END WHERE id = ?"
            ),
            None => format!(
                "UPDATE {TABLE} SET settings_json = ?, next_run_start_at = NULL WHERE id = ? AND current_run_ticket IS NULL"
            ),
        };
        let update = db.sql(&update);
        let mut query = sqlx::query(&update).bind(&settings);
        if let Some(first) = first {
            query = query.bind(first).bind(first);
        }
        query
            .bind(&task.id)
            .execute(db.pool())
            .await
            .map_err(|e| self.error("could not register the task", &e))?;
        Ok(())
    }

    /// Tries to claim the run: due, and no ticket, or a ticket whose instance did not release
    /// it before the run's timeout (that instance died; its run is taken over).
    pub(crate) async fn claim(&self, task: &Task, now: i64) -> Result<Claim> {
        let db = self.database().await?;
        let ticket = uuid::Uuid::new_v4().to_string();
        let claimed = sqlx::query(&db.sql(&format!(
            "UPDATE {TABLE} SET current_run_ticket = ?, current_run_started_at = ?, current_run_expires_at = ? WHERE id = ? AND (current_run_ticket IS NULL OR current_run_expires_at < ?) AND next_run_start_at IS NOT NULL AND next_run_start_at <= ?"
        )))
        .bind(&ticket)
        .bind(now)
        .bind(now.saturating_add(task.schedule.timeout.as_millis() as i64))
        .bind(&task.id)
        .bind(now)
        .bind(now)
        .execute(db.pool())
        .await
        .map_err(|e| self.error("could not claim a run", &e))?
        .rows_affected();
        if claimed == 1 {
            return Ok(Claim::Run(ticket));
        }
        let next = sqlx::query(&db.sql(&format!(
            "SELECT next_run_start_at FROM {TABLE} WHERE id = ?"
        )))
        .bind(&task.id)
        .fetch_optional(db.pool())
        .await
        .map_err(|e| self.error("could not read the task table", &e))?
        .and_then(|row| row.try_get::<Option<i64>, _>(0).ok().flatten());
        Ok(Claim::Wait(next))
    }

    /// Ends the run held by `ticket` and sets the next start.
    pub(crate) async fn release(
        &self,
        task: &Task,
        ticket: &str,
        next: Option<i64>,
        last: &LastRun,
    ) -> Result<()> {
        let db = self.database().await?;
        // Backstage keeps the error as JSON: `{"name":"Error","message":...}`.
        let error = last.error.as_ref().map(|message| {
            let message: String = message.chars().take(3000).collect();
            serde_json::json!({ "name": "Error", "message": message }).to_string()
        });
        sqlx::query(&db.sql(&format!(
            "UPDATE {TABLE} SET next_run_start_at = ?, current_run_ticket = NULL, current_run_started_at = NULL, current_run_expires_at = NULL, last_run_error_json = ?, last_run_ended_at = ? WHERE id = ? AND current_run_ticket = ?"
        )))
        .bind(next)
        .bind(error)
        .bind(last.ended_at)
        .bind(&task.id)
        .bind(ticket)
        .execute(db.pool())
        .await
        .map_err(|e| self.error("could not release a run", &e))?;
        Ok(())
    }

    /// Backstage's `taskState` of task `id` from the shared table (`None`: no row).
    pub(crate) async fn state(&self, id: &str) -> Result<Option<serde_json::Value>> {
        let db = self.database().await?;
        let row = sqlx::query(&db.sql(&format!(
            "SELECT next_run_start_at, current_run_started_at, current_run_expires_at, last_run_error_json, last_run_ended_at FROM {TABLE} WHERE id = ?"
        )))
        .bind(id)
        .fetch_optional(db.pool())
        .await
        .map_err(|e| self.error("could not read the task table", &e))?;
        let Some(row) = row else { return Ok(None) };
        let time = |i: usize| row.try_get::<Option<i64>, _>(i).ok().flatten();
        // MySQL's text comes back through the `Any` driver as bytes.
        let error_json = row
            .try_get::<Option<String>, _>(3)
            .ok()
            .flatten()
            .or_else(|| {
                row.try_get::<Option<Vec<u8>>, _>(3)
                    .ok()
                    .flatten()
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
            });
        let error = error_json.map(|json| {
            serde_json::from_str::<serde_json::Value>(&json)
                .ok()
                .and_then(|v| v.get("message").and_then(|m| m.as_str()).map(str::to_owned))
                .unwrap_or(json)
        });
        Ok(Some(task_state(TaskTimes {
            next_run: time(0),
            started_at: time(1),
            times_out_at: time(2),
            last: LastRun {
                ended_at: time(4),
                error,
            },
        })))
    }

    /// Makes task `id` due now, unless a run is under way (a run past its timeout is not).
    pub(crate) async fn trigger(&self, id: &str, now: i64) -> Result<()> {
        let db = self.database().await?;
        let updated = sqlx::query(&db.sql(&format!(
            "UPDATE {TABLE} SET next_run_start_at = ? WHERE id = ? AND (current_run_ticket IS NULL OR current_run_expires_at < ?)"
        )))
        .bind(now)
        .bind(id)
        .bind(now)
        .execute(db.pool())
        .await
        .map_err(|e| self.error("could not trigger the task", &e))?
        .rows_affected();
        if updated == 1 {
            return Ok(());
        }
        // Both counts are BIGINT on every engine: (0, _) no task, (1, 1) a run holds a ticket.
        let row = sqlx::query(&db.sql(&format!(
            "SELECT COUNT(*), COUNT(current_run_ticket) FROM {TABLE} WHERE id = ?"
        )))
        .bind(id)
        .fetch_one(db.pool())
        .await
        .map_err(|e| self.error("could not read the task table", &e))?;
        let counts = (
            row.try_get::<i64, _>(0).unwrap_or(0),
            row.try_get::<i64, _>(1).unwrap_or(0),
        );
        match counts {
            (0, _) => Err(Error::not_found(format!(
                "there is no task '{id}' in plugin '{}'",
                self.inner.plugin_id
            ))),
            (_, 1) => Err(running(id)),
            // Due at this very millisecond already (MySQL counts unchanged rows as untouched).
            _ => Ok(()),
        }
    }
}
