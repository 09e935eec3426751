//! `backend.database`, as Backstage reads it, resolved for one plugin.

use serde::Deserialize;
use serde_json::Value;

use crate::config::RootConfig;
use crate::error::{Error, Result};

/// A database engine.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// SQLite (in memory or in files): the embedded default.
    Sqlite,
    /// PostgreSQL (`client: pg`).
    Postgres,
    /// MySQL or MariaDB (`client: mysql` or `mysql2`).
    MySql,
}

impl Engine {
    /// The engine's name as this crate's messages and migration files use it.
    pub fn name(self) -> &'static str {
        match self {
            Engine::Sqlite => "sqlite",
            Engine::Postgres => "postgres",
            Engine::MySql => "mysql",
        }
    }

    fn from_client(client: &str) -> Option<Self> {
        match client {
            "pg" | "postgres" | "postgresql" => Some(Engine::Postgres),
            "mysql" | "mysql2" => Some(Engine::MySql),
            "better-sqlite3" | "sqlite3" | "sqlite" => Some(Engine::Sqlite),
            _ => None,
        }
    }
}

/// How plugins get their own space on one server.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Division {
    /// One database per plugin (`<prefix><pluginId>`), the default.
    Database,
    /// One schema per plugin (named by the plugin id) in one database (PostgreSQL only).
    Schema,
}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PoolSettings {
    pub(crate) min: Option<u32>,
    pub(crate) max: Option<u32>,
    pub(crate) idle_timeout_millis: Option<u64>,
    pub(crate) acquire_timeout_millis: Option<u64>,
}

/// The connection settings, in either of Backstage's forms.
#[derive(Clone, Debug, Default)]
pub(crate) struct Connection {
    /// A connection string (`postgresql://...`), when given as one.
    pub(crate) url: Option<String>,
    pub(crate) host: Option<String>,
    pub(crate) port: Option<u16>,
    pub(crate) user: Option<String>,
    pub(crate) password: Option<String>,
    pub(crate) database: Option<String>,
    pub(crate) ssl: bool,
    /// SQLite: a directory for one file per plugin.
    pub(crate) directory: Option<String>,
    /// SQLite: one file (or `:memory:`).
    pub(crate) filename: Option<String>,
}

/// What one plugin's database is, after merging the plugin's overrides over the defaults.
#[derive(Clone, Debug)]
pub(crate) struct PluginDatabase {
    pub(crate) plugin_id: String,
    pub(crate) engine: Engine,
    pub(crate) connection: Connection,
    pub(crate) division: Division,
    pub(crate) prefix: String,
    pub(crate) ensure_exists: bool,
    pub(crate) ensure_schema_exists: bool,
    pub(crate) role: Option<String>,
    pub(crate) skip_migrations: bool,
    pub(crate) pool: PoolSettings,
    /// The connect timeout for the first connection, in milliseconds.
    pub(crate) connect_timeout_millis: u64,
}

impl PluginDatabase {
    /// The database (database mode) the plugin uses on a server.
    pub(crate) fn database_name(&self) -> String {
        match (self.division, &self.connection.database) {
            (Division::Schema, Some(database)) => database.clone(),
            (Division::Schema, None) => "postgres".to_owned(),
            (Division::Database, _) => format!("{}{}", self.prefix, self.plugin_id),
        }
    }

    /// Where the server is, for messages (never with the password).
    pub(crate) fn server(&self) -> String {
        if let Some(url) = &self.connection.url
            && let Ok(parsed) = url::Url::parse(url)
        {
            return format!(
                "{}:{}",
                parsed.host_str().unwrap_or("localhost"),
                parsed.port().unwrap_or(self.default_port())
            );
        }
        format!(
            "{}:{}",
            self.connection.host.as_deref().unwrap_or("localhost"),
            self.connection.port.unwrap_or(self.default_port())
        )
    }

    fn default_port(&self) -> u16 {
        match self.engine {
            Engine::Postgres => 5432,
            Engine::MySql => 3306,
            Engine::Sqlite => 0,
        }
    }
}

/// Reads `backend.database` and `backend.database.plugin.<id>` for plugin `plugin_id`.
pub(crate) fn for_plugin(config: &RootConfig, plugin_id: &str) -> Result<PluginDatabase> {
    let base: Value = config
        .get_optional("backend.database")?
        .unwrap_or(Value::Null);
    let over: Value = config
        .get_optional(&format!("backend.database.plugin.{plugin_id}"))?
        .unwrap_or(Value::Null);
    let key = |name: &str| -> Option<&Value> { over.get(name).or_else(|| base.get(name)) };
    let at = |name: &str| {
        if over.get(name).is_some() {
            format!("backend.database.plugin.{plugin_id}.{name}")
        } else {
            format!("backend.database.{name}")
        }
    };
    let text = |name: &str| -> Result<Option<String>> {
        match key(name) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(Error::input(format!(
                "{} must be a string, not {other}",
                at(name)
            ))),
        }
    };
    let flag = |name: &str, default: bool| -> Result<bool> {
        match key(name) {
            None | Some(Value::Null) => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(Error::input(format!("{} must be true or false", at(name)))),
        }
    };

    let client = text("client")?;
    let engine = match client.as_deref() {
        None => Engine::Sqlite,
        Some(client) => Engine::from_client(client).ok_or_else(|| {
            Error::input(format!(
                "{}: unknown database client '{client}'; use 'pg' (PostgreSQL), 'mysql' (MySQL or MariaDB) or 'better-sqlite3' (SQLite)",
                at("client")
            ))
        })?,
    };
    // A plugin that names its own client does not inherit another engine's connection.
    let own_client = over.get("client").is_some();
    let connection_value = match (over.get("connection"), own_client) {
        (Some(value), _) => Some(value.clone()),
        (None, true) => None,
        (None, false) => base.get("connection").cloned(),
    };
    let connection = parse_connection(connection_value, &at("connection"))?;

    let division = match key("pluginDivisionMode") {
        None | Some(Value::Null) => Division::Database,
        Some(value) => serde_json::from_value(value.clone()).map_err(|_| {
            Error::input(format!(
                "{} must be 'database' or 'schema'",
                at("pluginDivisionMode")
            ))
        })?,
    };
    if division == Division::Schema && engine != Engine::Postgres {
        return Err(Error::input(format!(
            "{}: 'schema' division needs PostgreSQL; {} has no schemas within a database",
            at("pluginDivisionMode"),
            engine.name()
        )));
    }
    let pool = {
        let pool_value = over
            .get("pool")
            .or_else(|| over.pointer("/knexConfig/pool"))
            .or_else(|| base.get("pool"))
            .or_else(|| base.pointer("/knexConfig/pool"))
            .cloned();
        match pool_value {
            None | Some(Value::Null) => PoolSettings::default(),
            Some(value) => serde_json::from_value(value)
                .map_err(|e| Error::input(format!("{}: {e}", at("pool"))))?,
        }
    };
    let connect_timeout_millis = match key("connectTimeoutMillis") {
        None | Some(Value::Null) => 10_000,
        Some(value) => value.as_u64().ok_or_else(|| {
            Error::input(format!(
                "{} must be a number of milliseconds",
                at("connectTimeoutMillis")
            ))
        })?,
    };
    let ensure_exists = flag("ensureExists", true)?;
    Ok(PluginDatabase {
        plugin_id: plugin_id.to_owned(),
        engine,
        connection,
        division,
        prefix: text("prefix")?.unwrap_or_else(|| "backstage_plugin_".to_owned()),
        ensure_exists,
        ensure_schema_exists: flag("ensureSchemaExists", ensure_exists)?,
        role: text("role")?,
        skip_migrations: flag("skipMigrations", false)?,
        pool,
        connect_timeout_millis,
    })
}

fn parse_connection(value: Option<Value>, at: &str) -> Result<Connection> {
    let mut connection = Connection::default();
    match value {
        None | Some(Value::Null) => {}
        Some(Value::String(text)) if text == ":memory:" => connection.filename = Some(text),
        Some(Value::String(text)) => {
            // The database named in the URL is the one `schema` division uses.
            if let Ok(parsed) = url::Url::parse(&text) {
                let path = parsed.path().trim_start_matches('/');
                if !path.is_empty() {
                    connection.database = Some(path.to_owned());
                }
            }
            connection.url = Some(text);
        }
        Some(Value::Object(map)) => {
            let text = |name: &str| -> Result<Option<String>> {
                match map.get(name) {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::String(s)) => Ok(Some(s.clone())),
                    Some(Value::Number(n)) => Ok(Some(n.to_string())),
                    Some(_) => Err(Error::input(format!("{at}.{name} must be a string"))),
                }
            };
            connection.host = text("host")?;
            connection.port = match text("port")? {
                None => None,
                Some(port) => Some(
                    port.parse()
                        .map_err(|_| Error::input(format!("{at}.port: '{port}' is not a port")))?,
                ),
            };
            connection.user = text("user")?;
            connection.password = text("password")?;
            connection.database = text("database")?;
            connection.directory = text("directory")?;
            connection.filename = text("filename")?;
            connection.ssl = match map.get("ssl") {
                None | Some(Value::Null) | Some(Value::Bool(false)) => false,
                Some(_) => true,
            };
        }
        Some(other) => {
            return Err(Error::input(format!(
                "{at} must be a connection string or an object, not {other}"
            )));
        }
    }
    Ok(connection)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(database: Value, plugin: &str) -> Result<PluginDatabase> {
        for_plugin(
            &RootConfig::from_value(json!({ "backend": { "database": database } })),
            plugin,
        )
    }

    #[test]
    fn defaults_are_sqlite_in_memory_database_mode() {
        let db = for_plugin(&RootConfig::empty(), "carmen").unwrap();
        assert_eq!(db.engine, Engine::Sqlite);
        assert_eq!(db.division, Division::Database);
        assert_eq!(db.database_name(), "backstage_plugin_carmen");
        assert!(db.ensure_exists && !db.skip_migrations);
    }

    #[test]
    fn only_connections_to_a_server_are_pinged_before_use() {
        let sqlite = for_plugin(&RootConfig::empty(), "carmen").unwrap();
        let options = super::super::connect::pool_options::<sqlx::Sqlite>(&sqlite, 1, true);
        assert!(!options.get_test_before_acquire());
        let pg = read(
            json!({ "client": "pg", "connection": "postgresql://db" }),
            "carmen",
        )
        .unwrap();
        let options = super::super::connect::pool_options::<sqlx::Postgres>(&pg, 1, false);
        assert!(options.get_test_before_acquire());
    }

    #[test]
    fn plugin_overrides_win() {
        let database = json!({
            "client": "pg",
            "connection": "postgresql://u:p@db:5433/x",
            "prefix": "bs_",
            "plugin": { "carmen": { "client": "better-sqlite3", "connection": ":memory:" }, "other": { "prefix": "o_", "skipMigrations": true } },
        });
        let carmen = read(database.clone(), "carmen").unwrap();
        assert_eq!(carmen.engine, Engine::Sqlite);
        assert_eq!(carmen.connection.url, None);
        let other = read(database.clone(), "other").unwrap();
        assert_eq!(
            (
                other.engine,
                other.database_name().as_str(),
                other.skip_migrations
            ),
            (Engine::Postgres, "o_other", true)
        );
        assert_eq!(other.server(), "db:5433");
        let third = read(database, "third").unwrap();
        assert_eq!(third.database_name(), "bs_third");
    }

    #[test]
    fn bad_settings_name_their_key() {
        let err = read(json!({ "client": "oracle" }), "carmen").unwrap_err();
        assert!(
            err.message()
                .starts_with("backend.database.client: unknown database client 'oracle'"),
            "{}",
            err.message()
        );
        let err = read(
            json!({ "client": "mysql", "pluginDivisionMode": "schema" }),
            "carmen",
        )
        .unwrap_err();
        assert!(
            err.message().contains("needs PostgreSQL"),
            "{}",
            err.message()
        );
        let err = read(
            json!({ "client": "pg", "connection": { "port": "x" } }),
            "carmen",
        )
        .unwrap_err();
        assert!(
            err.message().contains("backend.database.connection.port"),
            "{}",
            err.message()
        );
        let err = read(
            json!({ "plugin": { "carmen": { "pluginDivisionMode": "tables" } } }),
            "carmen",
        )
        .unwrap_err();
        assert!(
            err.message()
                .contains("backend.database.plugin.carmen.pluginDivisionMode"),
            "{}",
            err.message()
        );
    }
}
