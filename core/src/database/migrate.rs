//! Plugin migrations: embedded SQL files, applied once per plugin database, safe when several
//! instances start at once.

use sqlx::{Acquire, AnyPool, Executor, Row};

use super::settings::Engine;
use crate::error::{Error, Result};

/// One migration: a version, a description and its SQL for every engine or for one.
#[derive(Clone, Copy, Debug)]
pub struct Migration {
    /// The version, from the file name's leading number (`0001_create_items.sql` is 1).
    pub version: i64,
    /// The description, from the rest of the file name.
    pub description: &'static str,
    /// The engine the SQL is for, or `None` for every engine.
    pub engine: Option<Engine>,
    /// The SQL, which may hold several statements.
    pub sql: &'static str,
}

/// A plugin's migrations, as `backstage::migrate!("./migrations")` embeds them.
///
/// In the folder, `0001_create_items.sql` applies to every engine; `0001_create_items.postgres.sql`,
/// `.mysql.sql` or `.sqlite.sql` replace it for that engine (for the DDL the engines disagree on,
/// like auto-incrementing keys).
///
/// ```
/// use backstage::database::{Migration, Migrations};
/// static ALL: &[Migration] = &[Migration { version: 1, description: "create items", engine: None, sql: "CREATE TABLE items (id INTEGER)" }];
/// let migrations = Migrations::new(ALL);
/// assert_eq!(migrations.len(), 1);
/// ```
#[derive(Clone, Copy, Debug)]
pub struct Migrations {
    all: &'static [Migration],
}

impl Migrations {
    /// The migrations `all`.
    pub const fn new(all: &'static [Migration]) -> Self {
        Migrations { all }
    }

    /// How many versions there are.
    pub fn len(&self) -> usize {
        self.versions().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    fn versions(&self) -> Vec<i64> {
        let mut versions: Vec<i64> = self.all.iter().map(|m| m.version).collect();
        versions.sort_unstable();
        versions.dedup();
        versions
    }

    /// The migrations for `engine`, in version order: the engine's own file where there is one.
    pub(crate) fn for_engine(&self, engine: Engine) -> Vec<&'static Migration> {
        self.versions()
            .into_iter()
            .filter_map(|version| {
                let mut candidates = self.all.iter().filter(|m| m.version == version);
                let specific = self
                    .all
                    .iter()
                    .find(|m| m.version == version && m.engine == Some(engine));
                specific.or_else(|| candidates.find(|m| m.engine.is_none()))
            })
            .collect()
    }
}

/// The table of applied migrations, in each plugin's own database (or schema).
pub const HISTORY_TABLE: &str = "backstage_migrations";

/// A stable checksum of a migration's SQL (FNV-1a), to notice a file changed after it ran.
fn checksum(sql: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in sql.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// Applies what has not been applied, under a lock so one instance does it while the others
/// wait; a migration whose file changed since it ran is an error.
pub(crate) async fn run(
    pool: &AnyPool,
    engine: Engine,
    plugin_id: &str,
    migrations: &Migrations,
) -> Result<usize> {
    let fail = |what: &str, e: sqlx::Error| {
        Error::internal(format!("plugin '{plugin_id}': migrations: {what}: {e}"))
    };
    let mut connection = pool
        .acquire()
        .await
        .map_err(|e| fail("cannot get a connection", e))?;
    match engine {
        Engine::Postgres => {
            connection
                .execute("SELECT pg_advisory_lock(70070001)")
                .await
                .map_err(|e| fail("cannot take the lock", e))?;
        }
        Engine::MySql => {
            connection
                .execute("SELECT GET_LOCK('backstage_migrations', 60)")
                .await
                .map_err(|e| fail("cannot take the lock", e))?;
        }
        Engine::Sqlite => {}
    }
    let result = apply(&mut connection, engine, plugin_id, migrations).await;
    match engine {
        Engine::Postgres => {
            let _ = connection
                .execute("SELECT pg_advisory_unlock(70070001)")
                .await;
        }
        Engine::MySql => {
            let _ = connection
                .execute("SELECT RELEASE_LOCK('backstage_migrations')")
                .await;
        }
        Engine::Sqlite => {}
    }
    result
}

async fn apply(
    connection: &mut sqlx::pool::PoolConnection<sqlx::Any>,
    engine: Engine,
    plugin_id: &str,
    migrations: &Migrations,
) -> Result<usize> {
    let fail = |what: String, e: sqlx::Error| {
        Error::internal(format!("plugin '{plugin_id}': migrations: {what}: {e}"))
    };
    let create = format!(
        "CREATE TABLE IF NOT EXISTS {HISTORY_TABLE} (version BIGINT PRIMARY KEY, description VARCHAR(255) NOT NULL, checksum VARCHAR(64) NOT NULL)"
    );
    connection
        .execute(create.as_str())
        .await
        .map_err(|e| fail("cannot create the history table".into(), e))?;
    let rows = sqlx::query(&format!("SELECT version, checksum FROM {HISTORY_TABLE}"))
        .fetch_all(&mut **connection)
        .await
        .map_err(|e| fail("cannot read the history table".into(), e))?;
    let applied: Vec<(i64, String)> = rows
        .iter()
        .map(|row| Ok((row.try_get::<i64, _>(0)?, row.try_get::<String, _>(1)?)))
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(|e| fail("cannot read the history table".into(), e))?;
    let insert_sql =
        format!("INSERT INTO {HISTORY_TABLE} (version, description, checksum) VALUES (?, ?, ?)");
    let insert = super::portable(engine, &insert_sql);
    let mut count = 0;
    for migration in migrations.for_engine(engine) {
        let sum = checksum(migration.sql);
        if let Some((_, recorded)) = applied.iter().find(|(v, _)| *v == migration.version) {
            if *recorded != sum {
                return Err(Error::internal(format!(
                    "plugin '{plugin_id}': migration {} ({}) changed after it was applied; add a new migration instead of editing an applied one",
                    migration.version, migration.description
                )));
            }
            continue;
        }
        let what = || {
            format!(
                "migration {} ({})",
                migration.version, migration.description
            )
        };
        let mut transaction = connection.begin().await.map_err(|e| fail(what(), e))?;
        transaction
            .execute(migration.sql)
            .await
            .map_err(|e| fail(what(), e))?;
        sqlx::query(&insert)
            .bind(migration.version)
            .bind(migration.description)
            .bind(sum)
            .execute(&mut *transaction)
            .await
            .map_err(|e| fail(what(), e))?;
        transaction.commit().await.map_err(|e| fail(what(), e))?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    static ALL: &[Migration] = &[
        Migration {
            version: 2,
            description: "b",
            engine: None,
            sql: "b",
        },
        Migration {
            version: 1,
            description: "a",
            engine: None,
            sql: "a",
        },
        Migration {
            version: 1,
            description: "a",
            engine: Some(Engine::Postgres),
            sql: "a-pg",
        },
    ];

    #[test]
    fn an_engine_file_replaces_the_common_one() {
        let m = Migrations::new(ALL);
        assert_eq!(
            m.for_engine(Engine::Postgres)
                .iter()
                .map(|m| m.sql)
                .collect::<Vec<_>>(),
            ["a-pg", "b"]
        );
        assert_eq!(
            m.for_engine(Engine::MySql)
                .iter()
                .map(|m| m.sql)
                .collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(m.len(), 2);
        assert_ne!(checksum("a"), checksum("b"));
    }
}
