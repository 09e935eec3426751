//! `TestDatabases`: one test body against every database engine that is configured.

use std::fmt;

use serde_json::{Value, json};
use sqlx::{Connection, Executor, Row};

use crate::database::Engine;

/// The environment variable with a PostgreSQL connection string for tests.
pub const POSTGRES_ENV: &str = "BACKSTAGE_TEST_DATABASE_POSTGRES_CONNECTION_STRING";
/// The environment variable with a MySQL/MariaDB connection string for tests.
pub const MYSQL_ENV: &str = "BACKSTAGE_TEST_DATABASE_MYSQL_CONNECTION_STRING";

/// The engines a test runs against: SQLite always; PostgreSQL and MySQL when their connection
/// strings ([`POSTGRES_ENV`], [`MYSQL_ENV`]) are set. The ones skipped are reported on stderr.
///
/// Each [`TestDatabase`] has a prefix of its own, so tests running at once never share a
/// database; [`TestDatabase::cleanup`] drops what it created.
///
/// ```
/// use backstage::testing::TestDatabases;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// for db in TestDatabases::each() {
///     let config = db.config(); // merge into TestBackend::builder().config(...)
///     assert!(config["backend"]["database"].is_object());
///     db.cleanup().await;
/// }
/// # });
/// ```
pub struct TestDatabases;

impl TestDatabases {
    /// One [`TestDatabase`] per available engine.
    pub fn each() -> Vec<TestDatabase> {
        let mut databases = vec![TestDatabase::new(Engine::Sqlite, None)];
        for (engine, var) in [(Engine::Postgres, POSTGRES_ENV), (Engine::MySql, MYSQL_ENV)] {
            match std::env::var(var) {
                Ok(url) if !url.trim().is_empty() => {
                    databases.push(TestDatabase::new(engine, Some(url)))
                }
                _ => {
                    // Written to the process's stderr directly: the test harness captures
                    // `eprintln!`, and a skipped engine should show in every run's output.
                    let line = format!(
                        "TestDatabases: skipped {}: {var} is not set\n",
                        engine.name()
                    );
                    let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
                }
            }
        }
        databases
    }

    /// The available engines, for tests that only need to know.
    pub fn engines() -> Vec<Engine> {
        Self::each().iter().map(TestDatabase::engine).collect()
    }
}

/// One engine for one test.
pub struct TestDatabase {
    engine: Engine,
    url: Option<String>,
    prefix: String,
}

impl fmt::Debug for TestDatabase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestDatabase")
            .field("engine", &self.engine)
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl TestDatabase {
    fn new(engine: Engine, url: Option<String>) -> Self {
        let prefix = format!("bt{}_", &crate::error::log_id()[..10]);
        TestDatabase {
            engine,
            url,
            prefix,
        }
    }

    /// The engine.
    pub fn engine(&self) -> Engine {
        self.engine
    }

    /// The connection string, for engines with a server.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The database prefix this test's plugins get (`bt<random>_`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{"backend": {"database": ...}}` for this engine, with this test's own prefix.
    pub fn config(&self) -> Value {
        self.config_with(json!({}))
    }

    /// [`TestDatabase::config`] with more settings merged into `backend.database`.
    pub fn config_with(&self, extra: Value) -> Value {
        let mut database = match (&self.url, self.engine) {
            (Some(url), Engine::Postgres) => {
                json!({ "client": "pg", "connection": url, "prefix": self.prefix })
            }
            (Some(url), _) => {
                json!({ "client": "mysql", "connection": url, "prefix": self.prefix })
            }
            (None, _) => json!({ "client": "better-sqlite3", "connection": ":memory:" }),
        };
        if let (Value::Object(base), Value::Object(extra)) = (&mut database, extra) {
            base.extend(extra);
        }
        json!({ "backend": { "database": database } })
    }

    /// Drops the databases and schemas this test's prefix created (server engines only).
    pub async fn cleanup(&self) {
        let Some(url) = &self.url else { return };
        crate::database::install();
        let Ok(mut connection) = sqlx::AnyConnection::connect(url).await else {
            return;
        };
        let pattern = format!("{}%", self.prefix.replace('_', "\\_"));
        let names: Vec<String> = match self.engine {
            Engine::Postgres => {
                sqlx::query("SELECT datname::text FROM pg_database WHERE datname LIKE $1")
                    .bind(&pattern)
                    .fetch_all(&mut connection)
                    .await
                    .map(|rows| {
                        rows.iter()
                            .filter_map(|r| r.try_get::<String, _>(0).ok())
                            .collect()
                    })
                    .unwrap_or_default()
            }
            _ => sqlx::query(
                "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME LIKE ?",
            )
            .bind(&pattern)
            .fetch_all(&mut connection)
            .await
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r.try_get::<String, _>(0).ok())
                    .collect()
            })
            .unwrap_or_default(),
        };
        for name in names {
            let statement = match self.engine {
                Engine::Postgres => format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"),
                _ => format!("DROP DATABASE IF EXISTS `{name}`"),
            };
            let _ = connection.execute(statement.as_str()).await;
        }
        let _ = connection.close().await;
    }
}
