//! Portable queries on the engine's own driver: SQL written once, rows read without going
//! through sqlx's `Any` driver (which converts every value of every row on the way).

use sqlx::mysql::{MySql, MySqlRow};
use sqlx::postgres::{PgRow, Postgres};
use sqlx::sqlite::{Sqlite, SqliteRow};
use sqlx::{FromRow, Pool};

use super::{Database, Engine, InlineRow};
use crate::error::{Error, Result};

/// A value for a `?` parameter of [`Database::fetch_all`] and its siblings.
///
/// ```
/// use backstage::database::Param;
/// let params: [Param; 4] = [7.into(), "ada".into(), true.into(), None::<i64>.into()];
/// assert_eq!(params[1], Param::Text(Some("ada".into())));
/// ```
#[derive(Clone, Debug, PartialEq)]
pub enum Param {
    /// An integer (`BIGINT` on the wire), or a typed null.
    Int(Option<i64>),
    /// A floating-point number.
    Float(Option<f64>),
    /// A boolean.
    Bool(Option<bool>),
    /// Text.
    Text(Option<String>),
    /// Bytes.
    Bytes(Option<Vec<u8>>),
}

macro_rules! param_from {
    ($($ty:ty => $variant:ident($convert:expr)),* $(,)?) => {$(
        impl From<$ty> for Param {
            fn from(value: $ty) -> Param {
                Param::$variant(Some($convert(value)))
            }
        }
        impl From<Option<$ty>> for Param {
            fn from(value: Option<$ty>) -> Param {
                Param::$variant(value.map($convert))
            }
        }
    )*};
}

param_from!(
    i64 => Int(|v| v),
    i32 => Int(i64::from),
    u32 => Int(i64::from),
    f64 => Float(|v| v),
    bool => Bool(|v| v),
    String => Text(|v| v),
    &str => Text(str::to_owned),
    Vec<u8> => Bytes(|v| v),
);

/// A row type every engine can read: tuples of `i64`, `String`, `f64`, `bool`, `Vec<u8>` and
/// their `Option`s, or a struct of your own with `#[derive(PortableRow)]`, which implements
/// sqlx's `FromRow` for the three engines' row types and [`InlineRow`] for reads on SQLite's
/// calling thread (or both by hand).
///
/// ```
/// fn portable<T: backstage::database::PortableRow>() {}
/// portable::<(i64, String, Option<f64>, bool)>();
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be read by `Database::fetch_all` and its siblings",
    label = "rows are read into a `PortableRow`",
    note = "put `#[derive(PortableRow)]` on the struct (`use backstage::prelude::*`), or read tuples of i64, String, f64, bool, Vec<u8> and their Options"
)]
pub trait PortableRow:
    Send
    + Unpin
    + InlineRow
    + for<'r> FromRow<'r, SqliteRow>
    + for<'r> FromRow<'r, PgRow>
    + for<'r> FromRow<'r, MySqlRow>
{
}

impl<T> PortableRow for T where
    T: Send
        + Unpin
        + InlineRow
        + for<'r> FromRow<'r, SqliteRow>
        + for<'r> FromRow<'r, PgRow>
        + for<'r> FromRow<'r, MySqlRow>
{
}

macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                Param::Int(v) => query.bind(*v),
                Param::Float(v) => query.bind(*v),
                Param::Bool(v) => query.bind(*v),
                Param::Text(v) => query.bind(v.as_deref()),
                Param::Bytes(v) => query.bind(v.as_deref()),
            };
        }
        query
    }};
}

/// Runs `$body` with `$exec` an executor of the engine's own driver and `$sql` written for it:
/// on SQLite a kept connection (see `kept`), elsewhere the pool.
macro_rules! on_engine {
    ($db:expr, $sql:ident, |$exec:ident| $body:expr) => {{
        let sql = $db.sql($sql);
        let $sql: &str = &sql;
        match $db.engine() {
            Engine::Sqlite => {
                let pool: Pool<Sqlite> = $db.sqlite().await?.ok_or_else(engine_gone)?;
                let mut kept = $db.inner.kept.take(&pool).await?;
                let $exec = kept.connection();
                let value = $body;
                kept.finished();
                value
            }
            Engine::Postgres => {
                let pool: Pool<Postgres> = $db.postgres().await?.ok_or_else(engine_gone)?;
                let $exec = &pool;
                $body
            }
            Engine::MySql => {
                let pool: Pool<MySql> = $db.mysql().await?.ok_or_else(engine_gone)?;
                let $exec = &pool;
                $body
            }
        }
    }};
}

fn engine_gone() -> Error {
    Error::internal("the database's own pool is not available")
}

impl Database {
    /// Every row of `sql` (with `?` parameters bound to `params`), read as `T` on the engine's
    /// own driver: portable like [`Database::pool`], without the `Any` driver's conversion of
    /// every value. Uses the engine's own pool ([`Database::sqlite`] and its siblings; made on
    /// first use, at most 5 connections). On SQLite a plain read runs on the calling thread,
    /// with no trip to a connection thread (bounded by [`BOUND`](super::BOUND); what it does
    /// not take, such as a write or a locked table, runs as below). Elsewhere, a SQLite
    /// connection whose query finished is kept for the next query rather than handed back to
    /// the pool (which would test it with a round trip to its thread); the pool counts kept
    /// connections as in use.
    ///
    /// ```
    /// use backstage::database::Param;
    /// # async fn example(db: backstage::Database) -> backstage::Result<()> {
    /// let items: Vec<(i64, String)> = db
    ///     .fetch_all("SELECT id, name FROM items WHERE name <> ? ORDER BY id", &["hidden".into()])
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub async fn fetch_all<T: PortableRow>(&self, sql: &str, params: &[Param]) -> Result<Vec<T>> {
        if let Some(rows) = self.read_inline(sql, params, usize::MAX) {
            return Ok(rows);
        }
        Ok(on_engine!(self, sql, |exec| bind_all!(
            sqlx::query_as(sql),
            params
        )
        .fetch_all(exec)
        .await?))
    }

    /// The first row of `sql`, if any, read as `T`. See [`Database::fetch_all`].
    pub async fn fetch_optional<T: PortableRow>(
        &self,
        sql: &str,
        params: &[Param],
    ) -> Result<Option<T>> {
        if let Some(rows) = self.read_inline(sql, params, 1) {
            return Ok(rows.into_iter().next());
        }
        Ok(on_engine!(self, sql, |exec| bind_all!(
            sqlx::query_as(sql),
            params
        )
        .fetch_optional(exec)
        .await?))
    }

    /// On SQLite, the rows of a plain read, read on the calling thread; `None` for what goes to
    /// the connection's thread (see `inline`).
    fn read_inline<T: PortableRow>(
        &self,
        sql: &str,
        params: &[Param],
        limit: usize,
    ) -> Option<Vec<T>> {
        self.inner.inline.as_ref()?.read(sql, params, limit)
    }

    /// Runs `sql` and returns how many rows it changed. See [`Database::fetch_all`].
    pub async fn execute(&self, sql: &str, params: &[Param]) -> Result<u64> {
        Ok(on_engine!(self, sql, |exec| bind_all!(
            sqlx::query(sql),
            params
        )
        .execute(exec)
        .await?
        .rows_affected()))
    }
}
