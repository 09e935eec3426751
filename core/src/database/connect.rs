//! Making a plugin's database exist and connecting a pool to it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyPool, ConnectOptions, Connection, Executor};

use super::settings::{Division, Engine, PluginDatabase};
use crate::error::{Error, Result};

/// A URL for `db`'s engine, pointing at `database` (or the server's default when `None`).
pub(crate) fn url(db: &PluginDatabase, database: Option<&str>) -> Result<String> {
    let c = &db.connection;
    if db.engine == Engine::Sqlite {
        return Ok(sqlite_url(db));
    }
    let scheme = if db.engine == Engine::Postgres {
        "postgres"
    } else {
        "mysql"
    };
    let mut url = match &c.url {
        Some(text) => url::Url::parse(text).map_err(|e| {
            Error::input(format!(
                "backend.database.connection for plugin '{}' is not a valid URL: {e}",
                db.plugin_id
            ))
        })?,
        None => {
            let mut url = url::Url::parse(&format!("{scheme}://localhost"))
                .map_err(|e| Error::internal(format!("cannot build a database URL: {e}")))?;
            let bad = |what: &str| {
                Error::input(format!(
                    "backend.database.connection.{what} for plugin '{}' is not valid",
                    db.plugin_id
                ))
            };
            url.set_host(Some(c.host.as_deref().unwrap_or("localhost")))
                .map_err(|_| bad("host"))?;
            url.set_port(c.port).map_err(|_| bad("port"))?;
            if let Some(user) = &c.user {
                url.set_username(user).map_err(|_| bad("user"))?;
            }
            if let Some(password) = &c.password {
                url.set_password(Some(password))
                    .map_err(|_| bad("password"))?;
            }
            if c.ssl {
                let (key, value) = if db.engine == Engine::Postgres {
                    ("sslmode", "require")
                } else {
                    ("ssl-mode", "REQUIRED")
                };
                url.query_pairs_mut().append_pair(key, value);
            }
            url
        }
    };
    let _ = url.set_scheme(scheme);
    let path = match database {
        Some(name) => format!("/{name}"),
        None if db.engine == Engine::Postgres => "/postgres".to_owned(),
        None => String::new(),
    };
    url.set_path(&path);
    Ok(url.to_string())
}

static MEMORY_DATABASES: AtomicU64 = AtomicU64::new(0);

/// SQLite: a file per plugin in `connection.directory`, the file `connection.filename`, or a
/// named in-memory database of its own (shared by the plugin's pool, gone with it).
fn sqlite_url(db: &PluginDatabase) -> String {
    let c = &db.connection;
    if let Some(directory) = &c.directory {
        let path = std::path::Path::new(directory).join(format!("{}.sqlite", db.plugin_id));
        return format!("sqlite://{}?mode=rwc", path.display());
    }
    match c.filename.as_deref() {
        Some(file) if file != ":memory:" => format!("sqlite://{file}?mode=rwc"),
        _ => {
            let n = MEMORY_DATABASES.fetch_add(1, Ordering::Relaxed);
            format!(
                "sqlite:file:backstage-{}-{}-{n}?mode=memory&cache=shared",
                std::process::id(),
                db.plugin_id
            )
        }
    }
}

/// Creates the plugin's database (or schema) when missing and allowed to; serialised with a
/// lock on PostgreSQL and retried, so instances starting together do not trip over each other.
pub(crate) async fn ensure_exists(db: &PluginDatabase) -> Result<()> {
    match db.engine {
        Engine::Sqlite => {
            if let Some(directory) = &db.connection.directory {
                tokio::fs::create_dir_all(directory).await.map_err(|e| {
                    Error::internal(format!(
                        "plugin '{}': cannot create the SQLite directory {directory}: {e}",
                        db.plugin_id
                    ))
                })?;
            }
            Ok(())
        }
        Engine::MySql if db.ensure_exists => {
            let name = db.database_name();
            let mut admin = admin_connection(db, None).await?;
            admin
                .execute(
                    format!(
                        "CREATE DATABASE IF NOT EXISTS `{}`",
                        name.replace('`', "``")
                    )
                    .as_str(),
                )
                .await
                .map_err(|e| {
                    Error::internal(format!(
                        "plugin '{}': cannot create database {name} on {}: {e}",
                        db.plugin_id,
                        db.server()
                    ))
                })?;
            let _ = admin.close().await;
            Ok(())
        }
        Engine::Postgres if db.division == Division::Database && db.ensure_exists => {
            let name = db.database_name();
            let mut last = None;
            for _ in 0..3 {
                match create_pg_database(db, &name).await {
                    Ok(()) => return Ok(()),
                    Err(e) => last = Some(e),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(last.unwrap_or_else(|| Error::internal("cannot create the database")))
        }
        _ => Ok(()),
    }
}

async fn create_pg_database(db: &PluginDatabase, name: &str) -> Result<()> {
    let mut admin = admin_connection(db, None).await?;
    let lock = sqlx::query("SELECT pg_advisory_lock(7007)")
        .execute(&mut admin)
        .await;
    let result = async {
        let exists = sqlx::query("SELECT 1 FROM pg_database WHERE datname = $1")
            .bind(name)
            .fetch_optional(&mut admin)
            .await
            .map_err(|e| {
                Error::internal(format!(
                    "plugin '{}': cannot look up database {name}: {e}",
                    db.plugin_id
                ))
            })?;
        if exists.is_none() {
            let statement = format!("CREATE DATABASE \"{}\"", name.replace('"', "\"\""));
            if let Err(e) = admin.execute(statement.as_str()).await {
                // Another instance created it between the check and here (without the lock).
                let duplicate = e
                    .as_database_error()
                    .and_then(|d| d.code())
                    .is_some_and(|c| c == "42P04" || c == "23505");
                if !duplicate {
                    return Err(Error::internal(format!(
                        "plugin '{}': cannot create database {name} on {}: {e}",
                        db.plugin_id,
                        db.server()
                    )));
                }
            }
        }
        Ok(())
    }
    .await;
    if lock.is_ok() {
        let _ = sqlx::query("SELECT pg_advisory_unlock(7007)")
            .execute(&mut admin)
            .await;
    }
    let _ = admin.close().await;
    result
}

async fn admin_connection(
    db: &PluginDatabase,
    database: Option<&str>,
) -> Result<sqlx::AnyConnection> {
    let options = connect_options(db, &url(db, database)?)?;
    let timeout = Duration::from_millis(db.connect_timeout_millis);
    match tokio::time::timeout(timeout, sqlx::AnyConnection::connect_with(&options)).await {
        Ok(Ok(connection)) => Ok(connection),
        Ok(Err(e)) => Err(connect_error(db, &e)),
        Err(_) => Err(Error::internal(format!(
            "plugin '{}': cannot connect to {} at {} within {} ms",
            db.plugin_id,
            db.engine.name(),
            db.server(),
            db.connect_timeout_millis
        ))),
    }
}

/// Connection options from `url`, without statement logging (queries are the plugin's to log).
fn connect_options(db: &PluginDatabase, url: &str) -> Result<AnyConnectOptions> {
    let options: AnyConnectOptions = url.parse().map_err(|e| {
        Error::input(format!(
            "plugin '{}': invalid database connection settings: {e}",
            db.plugin_id
        ))
    })?;
    Ok(options.disable_statement_logging())
}

fn connect_error(db: &PluginDatabase, e: &sqlx::Error) -> Error {
    Error::internal(format!(
        "plugin '{}': cannot connect to {} at {}: {e}",
        db.plugin_id,
        db.engine.name(),
        db.server()
    ))
}

/// What every pool of a plugin shares, on any driver: at most `max` connections, a request
/// waits `acquireTimeoutMillis` (else `connectTimeoutMillis`) for one, idle ones close after
/// `idleTimeoutMillis` (an in-memory SQLite database lives only as long as a connection to it:
/// those are kept). A server's connection is pinged before it is handed out (the server may
/// have closed it); a SQLite one, a file handle of this process, is not: the ping is a round
/// trip to the connection's thread on every query.
pub(crate) fn pool_options<DB: sqlx::Database>(
    db: &PluginDatabase,
    max: u32,
    in_memory: bool,
) -> sqlx::pool::PoolOptions<DB> {
    let acquire = db
        .pool
        .acquire_timeout_millis
        .unwrap_or(db.connect_timeout_millis);
    let options = sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_millis(acquire))
        .test_before_acquire(db.engine != Engine::Sqlite);
    if in_memory {
        options.idle_timeout(None).max_lifetime(None)
    } else {
        options.idle_timeout(Duration::from_millis(
            db.pool.idle_timeout_millis.unwrap_or(60_000),
        ))
    }
}

/// The statements every new connection of a plugin runs: SQLite's foreign keys, the
/// configured `role`, and the plugin's schema under `pluginDivisionMode: schema`.
pub(crate) fn session_statements(db: &PluginDatabase) -> std::sync::Arc<[String]> {
    let quoted = |name: &str| format!("\"{}\"", name.replace('"', "\"\""));
    let mut statements = Vec::new();
    if db.engine == Engine::Sqlite {
        statements.push("PRAGMA foreign_keys = ON".to_owned());
    }
    if let Some(role) = &db.role {
        statements.push(format!("SET ROLE {}", quoted(role)));
    }
    if db.division == Division::Schema {
        statements.push(format!("SET search_path TO {}", quoted(&db.plugin_id)));
    }
    statements.into()
}

/// The plugin's pool: sized by the settings (and the backend-wide cap), idle connections
/// closed, `SET ROLE`, `search_path` and SQLite's foreign keys applied to every connection.
pub(crate) async fn pool(db: &PluginDatabase, cap: Option<u32>) -> Result<AnyPool> {
    let database = match db.engine {
        Engine::Sqlite => None,
        _ => Some(db.database_name()),
    };
    let url = url(db, database.as_deref())?;
    let options = connect_options(db, &url)?;
    let mut max = db.pool.max.unwrap_or(10);
    if let Some(cap) = cap {
        max = max.min(cap.max(1));
    }
    let min = db
        .pool
        .min
        .unwrap_or(if db.engine == Engine::Sqlite { 1 } else { 0 })
        .min(max);
    let in_memory = db.engine == Engine::Sqlite && url.contains("mode=memory");
    let statements = session_statements(db);
    let pool = pool_options::<sqlx::Any>(db, max, in_memory)
        .min_connections(if in_memory { 0 } else { min })
        .after_connect(move |connection, _meta| {
            let statements = statements.clone();
            Box::pin(async move {
                for statement in statements.iter() {
                    connection.execute(statement.as_str()).await?;
                }
                Ok(())
            })
        });
    // An in-memory database cannot fail to open: its pool connects on first use, so a plugin
    // that queries through the engine's own pool (`Database::fetch_all` and its siblings) has
    // one connection, and one SQLite thread, not two. It lives while either pool has one open
    // (neither closes idle ones).
    if in_memory {
        return Ok(pool.connect_lazy_with(options));
    }
    let timeout = Duration::from_millis(db.connect_timeout_millis);
    let pool = match tokio::time::timeout(timeout, pool.connect_with(options)).await {
        Ok(Ok(pool)) => pool,
        Ok(Err(e)) => return Err(connect_error(db, &e)),
        Err(_) => {
            return Err(Error::internal(format!(
                "plugin '{}': cannot connect to {} at {} within {} ms",
                db.plugin_id,
                db.engine.name(),
                db.server(),
                db.connect_timeout_millis
            )));
        }
    };
    if let Some(schema) = (db.division == Division::Schema).then(|| db.plugin_id.clone())
        && db.ensure_schema_exists
    {
        let statement = format!(
            "CREATE SCHEMA IF NOT EXISTS \"{}\"",
            schema.replace('"', "\"\"")
        );
        pool.execute(statement.as_str()).await.map_err(|e| {
            Error::internal(format!(
                "plugin '{}': cannot create schema {schema} on {}: {e}",
                db.plugin_id,
                db.server()
            ))
        })?;
    }
    Ok(pool)
}
