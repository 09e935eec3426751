//! The database service against every engine that is configured (SQLite always; PostgreSQL and
//! MySQL/MariaDB where their connection strings are set), through carmen's items and plugins
//! of these tests.

use std::time::{Duration, Instant};

use backstage::database::{Engine, Migration, Migrations};
use backstage::prelude::*;
use backstage::sqlx::{self, Row};
use backstage::testing::{TestBackend, TestDatabase, TestDatabases, json, mock};
use carmen_backend::{Carmen, Item};

fn user() -> mock::MockCredentials {
    mock::user("user:default/alice")
}

async fn carmen_on(db: &TestDatabase) -> TestBackend {
    TestBackend::builder()
        .plugin::<Carmen>()
        .config(db.config())
        .start()
        .await
        .unwrap()
}

#[backstage::test]
async fn carmen_stores_items_on_every_engine() {
    for db in TestDatabases::each() {
        let backend = carmen_on(&db).await;
        let engine = db.engine().name();
        let res = backend
            .post("/api/carmen/items")
            .credentials(user())
            .json(&json!({"name": "first"}))
            .send()
            .await;
        assert_eq!(res.status(), 201, "{engine}: {}", res.text());
        let first: Item = res.json();
        assert_eq!(first.name, "first", "{engine}");
        let second: Item = backend
            .post("/api/carmen/items")
            .credentials(user())
            .json(&json!({"name": " second "}))
            .send()
            .await
            .json();
        assert_eq!(second.name, "second", "{engine}");
        assert!(second.id > first.id, "{engine}");

        let all: Vec<Item> = backend
            .get("/api/carmen/items")
            .credentials(user())
            .send()
            .await
            .json();
        assert_eq!(all, [first.clone(), second.clone()], "{engine}");
        let one: Item = backend
            .get(&format!("/api/carmen/items/{}", first.id))
            .credentials(user())
            .send()
            .await
            .json();
        assert_eq!(one, first, "{engine}");

        let res = backend
            .delete(&format!("/api/carmen/items/{}", first.id))
            .credentials(user())
            .send()
            .await;
        assert_eq!(res.status(), 204, "{engine}");
        let res = backend
            .get(&format!("/api/carmen/items/{}", first.id))
            .credentials(user())
            .send()
            .await;
        assert_eq!(res.status(), 404, "{engine}");
        assert_eq!(
            res.error(),
            (
                "NotFoundError".to_owned(),
                format!("no item with id {}", first.id)
            ),
            "{engine}"
        );
        let res = backend
            .delete("/api/carmen/items/999999")
            .credentials(user())
            .send()
            .await;
        assert_eq!(res.status(), 404, "{engine}");

        for bad in [
            json!({"name": "   "}),
            json!({"name": "x".repeat(256)}),
            json!({"title": "x"}),
            json!({"name": 3}),
        ] {
            let res = backend
                .post("/api/carmen/items")
                .credentials(user())
                .json(&bad)
                .send()
                .await;
            assert_eq!(res.status(), 400, "{engine}: {bad}");
            assert_eq!(res.error().0, "InputError", "{engine}");
        }
        assert_eq!(
            backend.get("/api/carmen/items").send().await.status(),
            401,
            "{engine}"
        );
        backend.stop().await.unwrap();
        db.cleanup().await;
    }
}

// ---- isolation, migrations, errors

/// Creates a table of its own.
#[backend_plugin(id = "vault")]
pub struct Vault {
    #[inject]
    db: Database,
}

#[routes]
impl Vault {
    #[init]
    async fn init(&self) -> Result<()> {
        sqlx::query("CREATE TABLE secrets (name VARCHAR(100))")
            .execute(self.db.pool())
            .await?;
        Ok(())
    }
}

/// Tries to read the vault's table, and runs broken SQL.
#[backend_plugin(id = "snoop")]
pub struct Snoop {
    #[inject]
    db: Database,
}

#[routes]
impl Snoop {
    #[route(get, "/peek", auth = "unauthenticated")]
    async fn peek(&self) -> Result<String> {
        let rows = sqlx::query("SELECT name FROM secrets")
            .fetch_all(self.db.pool())
            .await?;
        Ok(format!("{} rows", rows.len()))
    }

    #[route(get, "/pool", auth = "unauthenticated")]
    async fn pool(&self) -> String {
        format!(
            "{} {}",
            self.db.pool().options().get_max_connections(),
            self.db.engine().name()
        )
    }
}

#[backstage::test]
async fn a_plugin_cannot_see_another_plugins_tables_and_sql_errors_stay_in_the_log() {
    for db in TestDatabases::each() {
        let engine = db.engine().name();
        let backend = TestBackend::builder()
            .plugin::<Vault>()
            .plugin::<Snoop>()
            .config(db.config())
            .start()
            .await
            .unwrap();
        let res = backend.get("/api/snoop/peek").send().await;
        assert_eq!(res.status(), 500, "{engine}: {}", res.text());
        let (name, message) = res.error();
        assert_eq!(name, "Error");
        assert!(
            message.starts_with("An internal error occurred logId="),
            "{engine}: {message}"
        );
        assert!(
            !res.text().contains("secrets"),
            "{engine}: the SQL error is not sent: {}",
            res.text()
        );
        backend.stop().await.unwrap();
        db.cleanup().await;
    }
}

static V1: &[Migration] = &[Migration {
    version: 1,
    description: "create notes",
    engine: None,
    sql: "CREATE TABLE notes (body VARCHAR(100))",
}];
static V1_CHANGED: &[Migration] = &[Migration {
    version: 1,
    description: "create notes",
    engine: None,
    sql: "CREATE TABLE notes (body VARCHAR(200))",
}];

#[backend_plugin(id = "notes")]
pub struct Notes {
    #[inject]
    db: Database,
}

#[routes]
impl Notes {
    #[init]
    async fn init(&self, #[inject] config: RootConfig) -> Result<()> {
        let changed: Option<bool> = config.get_optional("notes.changed")?;
        self.db
            .migrate(Migrations::new(if changed == Some(true) {
                V1_CHANGED
            } else {
                V1
            }))
            .await
    }

    #[route(get, "/history", auth = "unauthenticated")]
    async fn history(&self) -> Result<String> {
        let rows = sqlx::query("SELECT version FROM backstage_migrations")
            .fetch_all(self.db.pool())
            .await?;
        let tables = sqlx::query("SELECT COUNT(*) AS n FROM notes")
            .fetch_one(self.db.pool())
            .await
            .is_ok();
        Ok(format!(
            "{} applied, table {}",
            rows.len(),
            if tables { "exists" } else { "missing" }
        ))
    }
}

#[backstage::test]
async fn two_instances_starting_at_once_create_the_database_and_migrate_once() {
    for db in TestDatabases::each()
        .into_iter()
        .filter(|db| db.engine() != Engine::Sqlite)
    {
        let engine = db.engine().name();
        let start = || {
            TestBackend::builder()
                .plugin::<Notes>()
                .config(db.config())
                .start()
        };
        let (a, b) = tokio::join!(start(), start());
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            a.get("/api/notes/history").send().await.text(),
            "1 applied, table exists",
            "{engine}"
        );
        assert_eq!(
            b.get("/api/notes/history").send().await.text(),
            "1 applied, table exists",
            "{engine}"
        );
        a.stop().await.unwrap();
        b.stop().await.unwrap();

        // the same migration, edited after it ran: refused
        let err = TestBackend::builder()
            .plugin::<Notes>()
            .config(db.config())
            .config(json!({ "notes": { "changed": true } }))
            .start()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("migration 1 (create notes) changed after it was applied"),
            "{engine}: {err}"
        );
        db.cleanup().await;
    }
}

#[backstage::test]
async fn skip_migrations_globally_or_per_plugin() {
    for db in TestDatabases::each() {
        let engine = db.engine().name();
        for extra in [
            json!({ "skipMigrations": true }),
            json!({ "plugin": { "notes": { "skipMigrations": true } } }),
        ] {
            let backend = TestBackend::builder()
                .plugin::<Notes>()
                .config(db.config_with(extra.clone()))
                .start()
                .await
                .unwrap();
            let res = backend.get("/api/notes/history").send().await;
            assert_eq!(
                res.status(),
                500,
                "{engine} {extra}: no history table, since nothing ran"
            );
            backend.stop().await.unwrap();
        }
        db.cleanup().await;
    }
}

#[backstage::test]
async fn pools_are_capped_and_closed() {
    for db in TestDatabases::each() {
        let engine = db.engine().name();
        let config = db.config_with(json!({ "maxConnections": 6, "pool": { "max": 20 } }));
        let backend = TestBackend::builder()
            .plugin::<Vault>()
            .plugin::<Snoop>()
            .config(config)
            .start()
            .await
            .unwrap();
        assert_eq!(
            backend.get("/api/snoop/pool").send().await.text(),
            format!("3 {engine}"),
            "6 over 2 plugins"
        );
        backend.stop().await.unwrap();
        let config = db.config_with(json!({ "pool": { "max": 4 } }));
        let backend = TestBackend::builder()
            .plugin::<Snoop>()
            .config(config)
            .start()
            .await
            .unwrap();
        assert_eq!(
            backend.get("/api/snoop/pool").send().await.text(),
            format!("4 {engine}")
        );
        backend.stop().await.unwrap();
        db.cleanup().await;
    }
}

/// Remembers a pool so the test can look at it after the backend stopped.
#[backend_plugin(id = "keeper")]
pub struct Keeper {
    #[inject]
    db: Database,
}

static KEPT: std::sync::Mutex<Vec<backstage::sqlx::AnyPool>> = std::sync::Mutex::new(Vec::new());
static KEPT_NATIVE: std::sync::Mutex<Vec<backstage::sqlx::SqlitePool>> =
    std::sync::Mutex::new(Vec::new());

#[routes]
impl Keeper {
    #[init]
    async fn init(&self) {
        KEPT.lock().unwrap().push(self.db.pool().clone());
        let native = self.db.sqlite().await.unwrap().unwrap();
        KEPT_NATIVE.lock().unwrap().push(native);
    }
}

#[backstage::test]
async fn stopping_the_backend_closes_the_pools() {
    KEPT.lock().unwrap().clear();
    let backend = TestBackend::builder()
        .plugin::<Keeper>()
        .start()
        .await
        .unwrap();
    let pool = KEPT.lock().unwrap()[0].clone();
    let native = KEPT_NATIVE.lock().unwrap()[0].clone();
    assert!(!pool.is_closed() && !native.is_closed());
    backend.stop().await.unwrap();
    assert!(pool.is_closed());
    assert!(native.is_closed(), "the engine's own pool closes too");
}

#[backstage::test]
async fn sqlite_files_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("backstage-sqlite-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let config = json!({ "backend": { "database": { "client": "better-sqlite3", "connection": { "directory": dir.display().to_string() } } } });
    let backend = TestBackend::builder()
        .plugin::<Carmen>()
        .config(config.clone())
        .start()
        .await
        .unwrap();
    let res = backend
        .post("/api/carmen/items")
        .credentials(user())
        .json(&json!({"name": "kept"}))
        .send()
        .await;
    assert_eq!(res.status(), 201);
    backend.stop().await.unwrap();
    assert!(dir.join("carmen.sqlite").exists());

    let backend = TestBackend::builder()
        .plugin::<Carmen>()
        .config(config)
        .start()
        .await
        .unwrap();
    let items: Vec<Item> = backend
        .get("/api/carmen/items")
        .credentials(user())
        .send()
        .await
        .json();
    assert_eq!(
        items.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(),
        ["kept"]
    );
    backend.stop().await.unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
}

#[backstage::test]
async fn postgres_schema_mode_gives_each_plugin_a_schema() {
    let Some(db) = TestDatabases::each()
        .into_iter()
        .find(|db| db.engine() == Engine::Postgres)
    else {
        eprintln!("skipped: {} is not set", backstage::testing::POSTGRES_ENV);
        return;
    };
    let url = db.url().unwrap().to_owned();
    // one database of this test's own, holding a schema per plugin
    let shared = format!("{}shared", db.prefix());
    let mut admin = sqlx::PgPool::connect(&url).await.unwrap();
    sqlx::query(&format!("CREATE DATABASE \"{shared}\""))
        .execute(&admin)
        .await
        .unwrap();
    admin.close().await;
    let base = url
        .trim_end_matches('/')
        .rsplit_once('/')
        .map(|(a, b)| {
            if b.contains(':') || b.contains('@') {
                url.clone()
            } else {
                a.to_owned()
            }
        })
        .unwrap();
    let shared_url = format!("{base}/{shared}");
    let config = json!({ "backend": { "database": { "client": "pg", "connection": shared_url, "pluginDivisionMode": "schema" } } });
    let backend = TestBackend::builder()
        .plugin::<Carmen>()
        .plugin::<Vault>()
        .config(config)
        .start()
        .await
        .unwrap();
    let res = backend
        .post("/api/carmen/items")
        .credentials(user())
        .json(&json!({"name": "in a schema"}))
        .send()
        .await;
    assert_eq!(res.status(), 201, "{}", res.text());
    backend.stop().await.unwrap();

    admin = sqlx::PgPool::connect(&shared_url).await.unwrap();
    let rows = sqlx::query("SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema IN ('carmen', 'vault') ORDER BY 1, 2")
        .fetch_all(&admin)
        .await
        .unwrap();
    let tables: Vec<String> = rows
        .iter()
        .map(|r| format!("{}.{}", r.get::<String, _>(0), r.get::<String, _>(1)))
        .collect();
    assert_eq!(
        tables,
        [
            "carmen.backstage_migrations",
            "carmen.items",
            "vault.secrets"
        ]
    );
    admin.close().await;
    db.cleanup().await;
}

#[backstage::test]
async fn server_errors_are_clear_and_bounded() {
    // nothing listens on port 1: start-up fails quickly, naming the plugin, the host and the cause
    let started = Instant::now();
    let config = json!({ "backend": { "database": { "client": "pg", "connection": "postgres://u@127.0.0.1:1/x", "connectTimeoutMillis": 3000 } } });
    let err = TestBackend::builder()
        .plugin::<Carmen>()
        .config(config)
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(started.elapsed() < Duration::from_secs(20));
    assert!(
        err.contains("plugin 'carmen': cannot connect to postgres at 127.0.0.1:1"),
        "{err}"
    );

    let err = TestBackend::builder()
        .plugin::<Carmen>()
        .config(json!({ "backend": { "database": { "client": "oracle" } } }))
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("unknown database client 'oracle'"), "{err}");

    for db in TestDatabases::each()
        .into_iter()
        .filter(|db| db.engine() != Engine::Sqlite)
    {
        let engine = db.engine().name();
        let err = TestBackend::builder()
            .plugin::<Carmen>()
            .config(db.config_with(json!({ "ensureExists": false })))
            .start()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("{}carmen", db.prefix())),
            "{engine}: the missing database is named: {err}"
        );

        let mut url = url::Url::parse(db.url().unwrap()).unwrap();
        url.set_username("no_such_user_for_backstage").unwrap();
        url.set_password(Some("wrong")).unwrap();
        let config = json!({ "backend": { "database": { "client": if db.engine() == Engine::Postgres { "pg" } else { "mysql" }, "connection": url.to_string() } } });
        let err = TestBackend::builder()
            .plugin::<Carmen>()
            .config(config)
            .start()
            .await
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("plugin 'carmen': cannot connect to"),
            "{engine}: {err}"
        );
        assert!(
            !err.contains("wrong"),
            "{engine}: the password is not repeated: {err}"
        );
        db.cleanup().await;
    }
}

/// Reports the database role its connections use.
#[backend_plugin(id = "whoami")]
pub struct WhoAmI {
    #[inject]
    db: Database,
}

#[routes]
impl WhoAmI {
    #[route(get, "/", auth = "unauthenticated")]
    async fn who(&self) -> Result<String> {
        let row = sqlx::query("SELECT current_user::text")
            .fetch_one(self.db.pool())
            .await?;
        Ok(row.try_get(0)?)
    }
}

#[backstage::test]
async fn postgres_role_is_set_on_every_connection() {
    let Some(db) = TestDatabases::each()
        .into_iter()
        .find(|db| db.engine() == Engine::Postgres)
    else {
        eprintln!("skipped: {} is not set", backstage::testing::POSTGRES_ENV);
        return;
    };
    let role = format!("{}role", db.prefix());
    let admin = sqlx::PgPool::connect(db.url().unwrap()).await.unwrap();
    sqlx::query(&format!("CREATE ROLE \"{role}\" NOLOGIN"))
        .execute(&admin)
        .await
        .unwrap();
    sqlx::query(&format!("GRANT \"{role}\" TO CURRENT_USER"))
        .execute(&admin)
        .await
        .unwrap();
    let backend = TestBackend::builder()
        .plugin::<WhoAmI>()
        .config(db.config_with(json!({ "role": role })))
        .start()
        .await;
    let result = match backend {
        Ok(backend) => Ok(backend.get("/api/whoami/").send().await.text()),
        Err(e) => Err(e.to_string()),
    };
    db.cleanup().await;
    let _ = sqlx::query(&format!("DROP OWNED BY \"{role}\""))
        .execute(&admin)
        .await;
    let _ = sqlx::query(&format!("DROP ROLE \"{role}\""))
        .execute(&admin)
        .await;
    admin.close().await;
    assert_eq!(result.unwrap(), role);
}

#[backstage::test]
async fn native_queries_read_and_write_the_same_values_on_every_engine() {
    use backstage::database::Param;
    use backstage::testing::ServiceFactoryTester;
    for test_db in TestDatabases::each() {
        let engine = test_db.engine().name();
        let tester = ServiceFactoryTester::new().config(test_db.config());
        let db: Database = tester.get_for_plugin("native").await.unwrap();
        db.execute(
            "CREATE TABLE native_t (id BIGINT NOT NULL PRIMARY KEY, name VARCHAR(100) NOT NULL, score DOUBLE PRECISION, flag BOOLEAN, note VARCHAR(100))",
            &[],
        )
        .await
        .unwrap();
        let insert = "INSERT INTO native_t (id, name, score, flag, note) VALUES (?, ?, ?, ?, ?)";
        let rows: [[Param; 5]; 2] = [
            [
                1.into(),
                "ada".into(),
                1.5.into(),
                true.into(),
                None::<String>.into(),
            ],
            [
                2.into(),
                "grace".into(),
                None::<f64>.into(),
                false.into(),
                "hi".into(),
            ],
        ];
        for row in &rows {
            assert_eq!(db.execute(insert, row).await.unwrap(), 1, "{engine}");
        }
        type Row = (i64, String, Option<f64>, Option<bool>, Option<String>);
        let read: Vec<Row> = db
            .fetch_all(
                "SELECT id, name, score, flag, note FROM native_t WHERE id >= ? ORDER BY id",
                &[1.into()],
            )
            .await
            .unwrap();
        assert_eq!(
            read,
            [
                (1, "ada".to_owned(), Some(1.5), Some(true), None),
                (
                    2,
                    "grace".to_owned(),
                    None,
                    Some(false),
                    Some("hi".to_owned())
                ),
            ],
            "{engine}"
        );
        // A struct of the user's, by column name, on every engine.
        #[derive(Debug, PartialEq, backstage::database::PortableRow)]
        #[sqlx(rename_all = "lowercase")]
        struct Named {
            #[sqlx(rename = "name")]
            who: String,
            score: Option<f64>,
            id: i64,
        }
        let named: Vec<Named> = db
            .fetch_all("SELECT id, name, score FROM native_t ORDER BY id", &[])
            .await
            .unwrap();
        assert_eq!(
            named,
            [
                Named {
                    who: "ada".into(),
                    score: Some(1.5),
                    id: 1
                },
                Named {
                    who: "grace".into(),
                    score: None,
                    id: 2
                },
            ],
            "{engine}"
        );
        // A value that SQLite's calling thread does not read natively (an integer into `f64`)
        // goes to sqlx, which says what is wrong, on every engine alike.
        let mismatched = db
            .fetch_optional::<(f64,)>("SELECT id FROM native_t WHERE id = ?", &[2.into()])
            .await
            .unwrap_err();
        assert!(
            mismatched.to_string().contains("mismatched types"),
            "{engine}: {mismatched}"
        );
        let changed = db
            .execute(
                "UPDATE native_t SET note = ? WHERE name = ?",
                &["set".into(), "ada".into()],
            )
            .await
            .unwrap();
        assert_eq!(changed, 1, "{engine}");
        let one: Option<(String,)> = db
            .fetch_optional("SELECT note FROM native_t WHERE id = ?", &[1.into()])
            .await
            .unwrap();
        assert_eq!(one, Some(("set".to_owned(),)), "{engine}");
        let none: Option<(i64,)> = db
            .fetch_optional("SELECT id FROM native_t WHERE id = ?", &[99.into()])
            .await
            .unwrap();
        assert_eq!(none, None, "{engine}");
        // The portable pool sees what the native one wrote: one database behind both.
        let count = sqlx::query("SELECT COUNT(*) FROM native_t")
            .fetch_one(db.pool())
            .await
            .unwrap()
            .try_get::<i64, _>(0)
            .unwrap();
        assert_eq!(count, 2, "{engine}");
        test_db.cleanup().await;
    }
}

/// Reads through the engine's own pool, and holds one of its connections on demand.
#[backend_plugin(id = "holder")]
pub struct Holder {
    #[inject]
    db: Database,
}

#[routes]
impl Holder {
    #[route(get, "/read", auth = "unauthenticated")]
    async fn read(&self) -> Result<String> {
        let rows: Vec<(i64,)> = self.db.fetch_all("SELECT 1", &[]).await?;
        Ok(rows.len().to_string())
    }

    #[route(post, "/write", auth = "unauthenticated")]
    async fn write(&self) -> Result<String> {
        let changed = self
            .db
            .execute("CREATE TABLE IF NOT EXISTS written (x INTEGER)", &[])
            .await?;
        Ok(changed.to_string())
    }

    #[route(post, "/echo", auth = "unauthenticated")]
    async fn echo(&self, Json(texts): Json<Vec<String>>) -> Result<Json<String>> {
        let text = texts.concat();
        let row: Option<(String,)> = self
            .db
            .fetch_optional("SELECT ?", &[text.as_str().into()])
            .await?;
        Ok(Json(row.map(|(t,)| t).unwrap_or_default()))
    }

    /// The open connections of the portable pool and of the engine's own.
    #[route(get, "/connections", auth = "unauthenticated")]
    async fn connections(&self) -> Result<String> {
        let native = self.db.sqlite().await?.map_or(0, |pool| pool.size());
        Ok(format!("{} {native}", self.db.pool().size()))
    }

    #[route(get, "/hold/{ms}", auth = "unauthenticated")]
    async fn hold(&self, Path(ms): Path<u64>) -> Result<&'static str> {
        let Some(pool) = self.db.sqlite().await? else {
            return Err(Error::not_implemented("SQLite only"));
        };
        let _connection = pool.acquire().await?;
        tokio::time::sleep(Duration::from_millis(ms)).await;
        Ok("held")
    }
}

/// Each SQLite connection is a thread of its own: an in-memory database's portable pool connects
/// on first use, so a plugin that only queries through the engine's pool holds one.
#[backstage::test]
async fn an_in_memory_plugin_querying_the_engines_pool_holds_one_connection() {
    let backend = TestBackend::builder()
        .plugin::<Holder>()
        .config(json!({ "backend": { "database": {
            "client": "better-sqlite3",
            "connection": ":memory:",
        } } }))
        .start()
        .await
        .unwrap();
    assert_eq!(backend.get("/api/holder/read").send().await.text(), "1");
    assert_eq!(
        backend.get("/api/holder/connections").send().await.text(),
        "0 1"
    );
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_pool_honours_the_acquire_timeout_and_an_exhausted_database_is_503() {
    let backend = TestBackend::builder()
        .plugin::<Holder>()
        .config(json!({ "backend": { "database": {
            "client": "better-sqlite3",
            "connection": ":memory:",
            "pool": { "max": 1, "acquireTimeoutMillis": 300 },
        } } }))
        .start()
        .await
        .unwrap();
    assert_eq!(backend.post("/api/holder/write").send().await.text(), "0");
    let url = backend.url("/api/holder/hold/3000");
    let holding = tokio::spawn(async move { reqwest::get(url).await.map(|r| r.status()) });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A plain read runs on the calling thread: it needs no connection of the pool.
    let started = Instant::now();
    assert_eq!(backend.get("/api/holder/read").send().await.text(), "1");
    assert!(started.elapsed() < Duration::from_millis(300));
    // A write does, and waits no longer than configured.
    let started = Instant::now();
    let res = backend.post("/api/holder/write").send().await;
    let waited = started.elapsed();
    assert_eq!(res.status(), 503, "{}", res.text());
    assert_eq!(
        res.error(),
        (
            "ServiceUnavailableError".to_owned(),
            "The database is unavailable".to_owned()
        )
    );
    assert!(
        waited < Duration::from_secs(2),
        "the engine's own pool waited {waited:?}, not the configured 300 ms"
    );
    assert_eq!(holding.await.unwrap().unwrap(), 200);
}

#[backstage::test]
async fn a_value_the_database_refuses_is_an_input_error_not_a_500() {
    for db in TestDatabases::each() {
        let engine = db.engine();
        let backend = TestBackend::builder()
            .plugin::<Holder>()
            .config(db.config())
            .start()
            .await
            .unwrap();
        let res = backend
            .post("/api/holder/echo")
            .json(&["a\u{0}b"])
            .send()
            .await;
        if engine == Engine::Postgres {
            // PostgreSQL refuses NUL in text (SQLSTATE 22021).
            assert_eq!(res.status(), 400, "{}", res.text());
            assert_eq!(res.error().0, "InputError");
            assert!(
                !res.text().contains("0x00"),
                "the database's words stay in the log"
            );
        } else {
            assert_eq!(res.status(), 200, "{}: {}", engine.name(), res.text());
        }
        backend.stop().await.unwrap();
        db.cleanup().await;
    }
}
