//! The `database` service on sqlx: one logical database per plugin.
//!
//! With no configuration each plugin gets its own in-memory SQLite database (nothing to
//! install). `backend.database` selects PostgreSQL (`client: pg`) or MySQL/MariaDB
//! (`client: mysql`) as Backstage does: `pluginDivisionMode: database` (the default, database
//! `<prefix><pluginId>`, prefix `backstage_plugin_`) or `schema` (PostgreSQL: one schema per
//! plugin), `ensureExists`, `ensureSchemaExists`, `role`, `skipMigrations`, and per-plugin
//! overrides under `backend.database.plugin.<pluginId>`. SQLite keeps files with
//! `connection.directory` (`<dir>/<pluginId>.sqlite`).
//!
//! # Portable SQL
//!
//! A plugin gets a [`Database`]: an `sqlx::AnyPool` for SQL written once for all three engines.
//! Write `?` for parameters and pass the text through [`Database::sql`], which rewrites them to
//! `$1, $2, ...` on PostgreSQL. [`Database::fetch_all`], [`Database::fetch_optional`] and
//! [`Database::execute`] take the same portable SQL with [`Param`]s and run it on the engine's own
//! driver, reading rows straight into tuples or structs with `#[derive(PortableRow)]`: the `Any`
//! driver converts every value of every row, which on a 20-row read costs about a sixth more
//! work per request. On SQLite a plain read runs on the calling thread (see [`InlineRow`]), as
//! better-sqlite3 does under Backstage, instead of a round trip to sqlx's connection thread.
//! Engine-specific features are a concrete pool away
//! ([`Database::postgres`], [`Database::mysql`], [`Database::sqlite`]; a second pool, made on
//! first use). On MariaDB, rows of `INSERT ... RETURNING` carry no column names through sqlx:
//! read them by position (`row.try_get(0)`).
//!
//! # Connections
//!
//! Each plugin has its own pool: `backend.database.pool` (or `knexConfig.pool`, or per plugin)
//! sets `min`, `max` (default 10), `idleTimeoutMillis` (default 60 000, idle connections are
//! closed) and `acquireTimeoutMillis`. The arithmetic that runs PostgreSQL out of connections is
//! `instances x plugins x max`: 3 instances of a backend with 12 plugins at the default 10 is 360,
//! far over PostgreSQL's default `max_connections` of 100. `backend.database.maxConnections`
//! caps the total per instance: each plugin's `max` becomes at most
//! `maxConnections / number of plugins` (at least 1). Pools close when the backend stops.

use std::borrow::Cow;
use std::fmt;
use std::sync::{Arc, Mutex};

use sqlx::AnyPool;
use tokio::sync::OnceCell;

use crate::config::RootConfig;
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Root, Service, ServiceContext};

mod connect;
mod inline;
mod kept;
mod migrate;
mod native;
mod settings;

/// `#[derive(PortableRow)]`: see the trait [`PortableRow`].
pub use backstage_macros::PortableRow;
pub use inline::{BOUND, InlineColumns, InlineRow, InlineValue, InlineValueRef, SLOW_FOR};
pub use migrate::{HISTORY_TABLE, Migration, Migrations};
pub use native::{Param, PortableRow};
pub use settings::Engine;

/// A plugin's database.
///
/// ```no_run
/// use backstage::prelude::*;
/// use backstage::sqlx::{self, Row};
///
/// #[backend_plugin(id = "carmen")]
/// pub struct Carmen {
///     #[inject]
///     db: Database,
/// }
///
/// #[routes]
/// impl Carmen {
///     #[init]
///     async fn init(&self) -> Result<()> {
///         self.db.migrate(backstage::migrate!("../examples/carmen/migrations")).await
///     }
///
///     #[route(get, "/items/{id}")]
///     async fn item(&self, Path(id): Path<i64>, _creds: Credentials) -> Result<String> {
///         let row = sqlx::query(&self.db.sql("SELECT name FROM items WHERE id = ?"))
///             .bind(id)
///             .fetch_optional(self.db.pool())
///             .await?
///             .ok_or_else(|| Error::not_found(format!("no item {id}")))?;
///         Ok(row.try_get::<String, _>("name")?)
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    plugin_id: String,
    engine: Engine,
    pool: AnyPool,
    skip_migrations: bool,
    settings: settings::PluginDatabase,
    postgres: OnceCell<sqlx::PgPool>,
    mysql: OnceCell<sqlx::MySqlPool>,
    sqlite: OnceCell<sqlx::SqlitePool>,
    /// Connections of the SQLite pool kept between portable queries (see `kept`).
    kept: Arc<kept::Kept>,
    /// On SQLite, connections for reads on the calling thread (see `inline`).
    inline: Option<Arc<inline::Inline>>,
    /// `backend.database.maxConnections` spread over the plugins: also caps the engine's pool.
    cap: Option<u32>,
    /// Where the engine's own pools are kept for closing when the backend stops.
    natives: Arc<Mutex<Vec<NativePool>>>,
}

/// An engine's own pool, kept to be closed with the portable ones.
enum NativePool {
    Postgres(sqlx::PgPool),
    MySql(sqlx::MySqlPool),
    Sqlite(sqlx::SqlitePool, Arc<kept::Kept>),
    Inline(Arc<inline::Inline>),
}

impl NativePool {
    async fn close(self) {
        match self {
            NativePool::Postgres(pool) => pool.close().await,
            NativePool::MySql(pool) => pool.close().await,
            NativePool::Sqlite(pool, kept) => {
                kept.close();
                pool.close().await
            }
            NativePool::Inline(inline) => inline.close(),
        }
    }
}

impl fmt::Debug for Database {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Database")
            .field("plugin", &self.inner.plugin_id)
            .field("engine", &self.inner.engine)
            .finish()
    }
}

impl Database {
    /// The portable pool.
    pub fn pool(&self) -> &AnyPool {
        &self.inner.pool
    }

    /// The engine behind it.
    pub fn engine(&self) -> Engine {
        self.inner.engine
    }

    /// `sql` with its `?` parameters written for this engine (`$1, $2, ...` on PostgreSQL).
    /// Question marks inside quotes are left alone.
    ///
    /// ```
    /// use backstage::database::{portable, Engine};
    /// assert_eq!(portable(Engine::Postgres, "SELECT * FROM t WHERE a = ? AND b = '?' AND c = ?"),
    ///            "SELECT * FROM t WHERE a = $1 AND b = '?' AND c = $2");
    /// assert_eq!(portable(Engine::MySql, "SELECT ?"), "SELECT ?");
    /// ```
    pub fn sql<'a>(&self, sql: &'a str) -> Cow<'a, str> {
        portable(self.inner.engine, sql)
    }

    /// Applies `migrations` that have not run yet, unless `skipMigrations` is set for this
    /// plugin. Safe when several instances start at once: one applies, the others wait.
    pub async fn migrate(&self, migrations: Migrations) -> Result<()> {
        if self.inner.skip_migrations {
            tracing::info!(plugin = %self.inner.plugin_id, "skipping migrations (skipMigrations)");
            return Ok(());
        }
        let applied = migrate::run(
            &self.inner.pool,
            self.inner.engine,
            &self.inner.plugin_id,
            &migrations,
        )
        .await?;
        if applied > 0 {
            tracing::info!(plugin = %self.inner.plugin_id, "applied {applied} migration(s)");
        }
        Ok(())
    }

    /// A PostgreSQL pool to the same database (and schema), for PostgreSQL-only features;
    /// `None` on other engines. Made on first use: it is a second pool, with the settings of
    /// the first (size, timeouts, role, schema).
    pub async fn postgres(&self) -> Result<Option<sqlx::PgPool>> {
        if self.inner.engine != Engine::Postgres {
            return Ok(None);
        }
        let pool = self
            .inner
            .postgres
            .get_or_try_init(|| async {
                let options: sqlx::postgres::PgConnectOptions =
                    self.concrete_url()?.parse_options()?;
                let pool = self.native_options().connect_with(options).await?;
                self.keep(NativePool::Postgres(pool.clone()));
                Ok::<_, Error>(pool)
            })
            .await?;
        Ok(Some(pool.clone()))
    }

    /// A MySQL pool to the same database; `None` on other engines. Made on first use, with the
    /// settings of the portable pool.
    pub async fn mysql(&self) -> Result<Option<sqlx::MySqlPool>> {
        if self.inner.engine != Engine::MySql {
            return Ok(None);
        }
        let pool = self
            .inner
            .mysql
            .get_or_try_init(|| async {
                let options: sqlx::mysql::MySqlConnectOptions =
                    self.concrete_url()?.parse_options()?;
                let pool = self.native_options().connect_with(options).await?;
                self.keep(NativePool::MySql(pool.clone()));
                Ok::<_, Error>(pool)
            })
            .await?;
        Ok(Some(pool.clone()))
    }

    /// A SQLite pool to the same database; `None` on other engines. Made on first use, with the
    /// settings of the portable pool.
    pub async fn sqlite(&self) -> Result<Option<sqlx::SqlitePool>> {
        if self.inner.engine != Engine::Sqlite {
            return Ok(None);
        }
        let pool = self
            .inner
            .sqlite
            .get_or_try_init(|| async {
                let options: sqlx::sqlite::SqliteConnectOptions =
                    self.concrete_url()?.parse_options()?;
                let pool = self.native_options().connect_with(options).await?;
                self.keep(NativePool::Sqlite(pool.clone(), self.inner.kept.clone()));
                Ok::<_, Error>(pool)
            })
            .await?;
        Ok(Some(pool.clone()))
    }

    /// Options of an engine's own pool: the portable pool's size (at most 5), timeouts and
    /// session statements.
    fn native_options<DB: sqlx::Database>(&self) -> sqlx::pool::PoolOptions<DB>
    where
        for<'c> &'c mut DB::Connection: sqlx::Executor<'c, Database = DB>,
    {
        let settings = &self.inner.settings;
        let in_memory = self.inner.engine == Engine::Sqlite
            && self
                .inner
                .pool
                .connect_options()
                .database_url
                .as_str()
                .contains("mode=memory");
        let statements = connect::session_statements(settings);
        connect::pool_options::<DB>(settings, self.concrete_max(), in_memory).after_connect(
            move |connection, _| {
                let statements = statements.clone();
                Box::pin(async move {
                    for statement in statements.iter() {
                        sqlx::Executor::execute(&mut *connection, statement.as_str()).await?;
                    }
                    Ok(())
                })
            },
        )
    }

    /// The URL the portable pool connects with.
    fn concrete_url(&self) -> Result<String> {
        Ok(self.inner.pool.connect_options().database_url.to_string())
    }

    fn concrete_max(&self) -> u32 {
        let max = self.inner.settings.pool.max.unwrap_or(10).min(5);
        self.inner.cap.map_or(max, |cap| max.min(cap))
    }

    fn keep(&self, pool: NativePool) {
        self.inner
            .natives
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pool);
    }
}

/// `sql` with `?` parameters written for `engine`. See [`Database::sql`].
pub fn portable(engine: Engine, sql: &str) -> Cow<'_, str> {
    if engine != Engine::Postgres || !sql.contains('?') {
        return Cow::Borrowed(sql);
    }
    let mut out = String::with_capacity(sql.len() + 8);
    let mut quote: Option<char> = None;
    let mut n = 0;
    for c in sql.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => {
                quote = None;
                out.push(c);
            }
            (Some(_), c) => out.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                out.push(c);
            }
            (None, '?') => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            (None, c) => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Parses a connection URL into a driver's options, with this crate's error.
trait ParseOptions {
    fn parse_options<T: std::str::FromStr<Err = sqlx::Error>>(&self) -> Result<T>;
}

impl ParseOptions for String {
    fn parse_options<T: std::str::FromStr<Err = sqlx::Error>>(&self) -> Result<T> {
        self.parse().map_err(|e: sqlx::Error| {
            Error::input(format!("invalid database connection settings: {e}"))
        })
    }
}

impl Service for Database {
    type Scope = PluginScoped;
    const ID: &'static str = "core.database";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::config::RootConfig, crate::database::DatabaseManager);

    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let plugin_id = ctx
                .plugin_id()
                .ok_or_else(|| Error::internal("the database service belongs to a plugin"))?;
            let manager = ctx.get::<DatabaseManager>().await?;
            manager.for_plugin(plugin_id).await
        })
    }
}

/// Makes the plugins' databases and owns their pools (closed when the backend stops).
#[derive(Clone)]
pub struct DatabaseManager {
    inner: Arc<ManagerInner>,
}

struct ManagerInner {
    config: RootConfig,
    /// `backend.database.maxConnections` spread over the backend's plugins.
    per_plugin_cap: Option<u32>,
    pools: Mutex<Vec<AnyPool>>,
    natives: Arc<Mutex<Vec<NativePool>>>,
}

impl fmt::Debug for DatabaseManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseManager")
            .field("per_plugin_cap", &self.inner.per_plugin_cap)
            .finish()
    }
}

impl DatabaseManager {
    /// Connects plugin `plugin_id` to its database, creating it when allowed.
    pub async fn for_plugin(&self, plugin_id: &str) -> Result<Database> {
        install();
        let settings = settings::for_plugin(&self.inner.config, plugin_id)?;
        connect::ensure_exists(&settings).await?;
        let pool = connect::pool(&settings, self.inner.per_plugin_cap).await?;
        self.inner
            .pools
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(pool.clone());
        let inline = match settings.engine {
            Engine::Sqlite => {
                inline::Inline::for_url(pool.connect_options().database_url.as_str()).map(Arc::new)
            }
            _ => None,
        };
        if let Some(inline) = &inline {
            self.inner
                .natives
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(NativePool::Inline(inline.clone()));
        }
        Ok(Database {
            inner: Arc::new(Inner {
                plugin_id: plugin_id.to_owned(),
                engine: settings.engine,
                pool,
                skip_migrations: settings.skip_migrations,
                settings,
                postgres: OnceCell::new(),
                mysql: OnceCell::new(),
                sqlite: OnceCell::new(),
                kept: Arc::default(),
                inline,
                cap: self.inner.per_plugin_cap,
                natives: self.inner.natives.clone(),
            }),
        })
    }

    /// A manager reading `config`, for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(config: RootConfig) -> Self {
        DatabaseManager {
            inner: Arc::new(ManagerInner {
                config,
                per_plugin_cap: None,
                pools: Mutex::new(Vec::new()),
                natives: Arc::default(),
            }),
        }
    }

    /// Closes every pool.
    pub async fn close(&self) {
        let pools =
            std::mem::take(&mut *self.inner.pools.lock().unwrap_or_else(|p| p.into_inner()));
        for pool in pools {
            pool.close().await;
        }
        let natives =
            std::mem::take(&mut *self.inner.natives.lock().unwrap_or_else(|p| p.into_inner()));
        for pool in natives {
            pool.close().await;
        }
    }
}

impl Service for DatabaseManager {
    type Scope = Root;
    const ID: &'static str = "core.rootDatabaseManager";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::config::RootConfig, crate::lifecycle::RootLifecycle);

    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let config = ctx.config().clone();
            let total: Option<u32> = config.get_optional("backend.database.maxConnections")?;
            let plugins = ctx.instance_metadata().plugins().len().max(1) as u32;
            let per_plugin_cap = total.map(|total| (total / plugins).max(1));
            let manager = DatabaseManager {
                inner: Arc::new(ManagerInner {
                    config,
                    per_plugin_cap,
                    pools: Mutex::new(Vec::new()),
                    natives: Arc::default(),
                }),
            };
            let lifecycle = ctx.get::<crate::lifecycle::RootLifecycle>().await?;
            let closing = manager.clone();
            lifecycle.add_shutdown_hook(move || async move {
                closing.close().await;
                Ok(())
            });
            Ok(manager)
        })
    }
}

pub(crate) fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

crate::plugin::register!(Database, root DatabaseManager);
