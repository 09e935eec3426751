//! The seed plugin `carmen`, as Backstage's backend plugin guide writes it, in Rust.
//!
//! - `GET /api/carmen/health`: unauthenticated, logs "PONG!", answers `{"status":"ok"}`.
//! - `POST /api/carmen/me`: user credentials only; answers the user's `userEntityRef` and
//!   `ownershipEntityRefs`.
//! - `POST /api/carmen/greetings`: typed JSON input (`{"name": "..."}`); malformed or invalid
//!   input is a 400 `InputError`. The greeting comes from the [`Greeter`] service (its word is
//!   `carmen.greeting` in the config, see [`CarmenConfig`]), then passes through every style
//!   that modules added to the [`GreetingStyles`] extension point.
//!
//! - `GET /api/carmen/items`, `POST /api/carmen/items` (`{"name": ...}`, 201), `GET` and
//!   `DELETE /api/carmen/items/{id}` (404 `NotFoundError` for an unknown id): items stored in
//!   carmen's own database, on whichever engine `backend.database` selects (in-memory SQLite by
//!   default); `migrations/` creates the table.
//!
//! Its OpenAPI document, generated from these routes, is served at
//! `GET /api/carmen/openapi.json` and returned by `Carmen::openapi()`.
//!
//! Link it into a backend with `use carmen_backend as _;`.

use std::sync::{Arc, RwLock};

use backstage::prelude::*;
use backstage::sqlx::{self, Row};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

type Style = Arc<dyn Fn(String) -> String + Send + Sync>;

/// The extension point carmen offers its modules: styles applied to every greeting, in the
/// order modules added them.
///
/// ```
/// let styles = carmen_backend::GreetingStyles::default();
/// styles.add(|greeting| greeting.to_uppercase());
/// assert_eq!(styles.apply("Hello, Ada!".to_owned()), "HELLO, ADA!");
/// ```
#[extension_point(plugin = "carmen", id = "carmen.greetingStyles")]
#[derive(Clone, Default)]
pub struct GreetingStyles {
    styles: Arc<RwLock<Vec<Style>>>,
}

impl GreetingStyles {
    /// Adds a style.
    pub fn add(&self, style: impl Fn(String) -> String + Send + Sync + 'static) {
        self.styles
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(Arc::new(style));
    }

    /// Applies every style to `greeting`.
    pub fn apply(&self, greeting: String) -> String {
        let styles = self.styles.read().unwrap_or_else(|p| p.into_inner());
        styles
            .iter()
            .fold(greeting, |greeting, style| style(greeting))
    }
}

/// A plugin-scoped service with its own dependencies: makes greetings.
#[service(id = "carmen.greeter")]
#[derive(Clone)]
pub struct Greeter {
    #[inject]
    config: RootConfig,
    #[inject]
    styles: GreetingStyles,
}

impl Greeter {
    /// `<word>, <name>!`, styled.
    pub fn greet(&self, name: &str) -> Result<String> {
        let word: Option<String> = self.config.get_optional("carmen.greeting")?;
        Ok(self
            .styles
            .apply(format!("{}, {name}!", word.as_deref().unwrap_or("Hello"))))
    }
}

/// The body of `/me`.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    /// The catalog entity ref of the user.
    pub user_entity_ref: String,
    /// The entities that this user or any teams this user is a part of own.
    pub ownership_entity_refs: Vec<String>,
}

/// What `POST /greetings` takes.
#[derive(Debug, Serialize, Deserialize, JsonSchema)]
pub struct GreetingRequest {
    /// Who to greet.
    pub name: String,
}

/// What `POST /greetings` answers.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, JsonSchema)]
pub struct Greeting {
    /// The greeting.
    pub message: String,
}

/// An item, as stored and served.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq, Clone, JsonSchema)]
pub struct Item {
    /// Its id, given by the database.
    pub id: i64,
    /// Its name.
    pub name: String,
}

/// What `POST /items` takes.
#[derive(Debug, Deserialize, JsonSchema)]
pub struct NewItem {
    /// The item's name: 1 to 255 characters, not only spaces.
    pub name: String,
}

/// An item from a row of `id, name`. Read by position: MariaDB's `INSERT ... RETURNING` rows
/// carry no column names through sqlx.
fn item(row: &backstage::sqlx::any::AnyRow) -> Result<Item> {
    Ok(Item {
        id: row.try_get(0)?,
        name: row.try_get(1)?,
    })
}

/// The carmen plugin.
#[backend_plugin(id = "carmen")]
pub struct Carmen {
    #[inject]
    logger: Logger,
    #[inject]
    user_info: UserInfo,
    #[inject]
    greeter: Greeter,
    #[inject]
    db: Database,
}

#[routes]
impl Carmen {
    #[init]
    async fn init(&self) -> Result<()> {
        self.db.migrate(backstage::migrate!("./migrations")).await?;
        self.logger.info("carmen is ready");
        Ok(())
    }

    /// Every item.
    #[route(get, "/items")]
    async fn items(&self, _credentials: Credentials) -> Result<Json<Vec<Item>>> {
        // Read on the engine's own driver: portable SQL without the `Any` driver's per-value
        // conversion, which costs more the more rows come back.
        let rows: Vec<(i64, String)> = self
            .db
            .fetch_all("SELECT id, name FROM items ORDER BY id", &[])
            .await?;
        Ok(Json(
            rows.into_iter()
                .map(|(id, name)| Item { id, name })
                .collect(),
        ))
    }

    /// Stores an item: 201 with the item, 400 for a missing or blank name.
    #[route(post, "/items")]
    async fn create_item(
        &self,
        _credentials: Credentials,
        Json(new): Json<NewItem>,
    ) -> Result<(StatusCode, Json<Item>)> {
        let name = new.name.trim();
        if name.is_empty() || name.chars().count() > 255 || name.contains('\0') {
            return Err(Error::input("name must be 1 to 255 characters of text"));
        }
        let row = sqlx::query(
            &self
                .db
                .sql("INSERT INTO items (name) VALUES (?) RETURNING id, name"),
        )
        .bind(name)
        .fetch_one(self.db.pool())
        .await?;
        Ok((StatusCode::CREATED, Json(item(&row)?)))
    }

    /// One item, or 404.
    #[route(get, "/items/{id}")]
    async fn item(&self, Path(id): Path<i64>, _credentials: Credentials) -> Result<Json<Item>> {
        let row: Option<(i64, String)> = self
            .db
            .fetch_optional("SELECT id, name FROM items WHERE id = ?", &[id.into()])
            .await?;
        match row {
            Some((id, name)) => Ok(Json(Item { id, name })),
            None => Err(Error::not_found(format!("no item with id {id}"))),
        }
    }

    /// Deletes an item: 204, or 404.
    #[route(delete, "/items/{id}")]
    async fn delete_item(
        &self,
        Path(id): Path<i64>,
        _credentials: Credentials,
    ) -> Result<StatusCode> {
        let done = sqlx::query(&self.db.sql("DELETE FROM items WHERE id = ?"))
            .bind(id)
            .execute(self.db.pool())
            .await?;
        if done.rows_affected() == 0 {
            return Err(Error::not_found(format!("no item with id {id}")));
        }
        Ok(StatusCode::NO_CONTENT)
    }

    /// Unauthenticated health check.
    #[route(get, "/health", auth = "unauthenticated")]
    async fn health(&self) -> Json<Health> {
        self.logger.info("PONG!");
        Json(Health::ok())
    }

    /// Who the calling user is; services get 403.
    #[route(post, "/me")]
    async fn me(&self, credentials: Credentials<UserPrincipal>) -> Result<Json<Me>> {
        let info = self.user_info.get_user_info(&credentials).await?;
        Ok(Json(Me {
            user_entity_ref: info.user_entity_ref,
            ownership_entity_refs: info.ownership_entity_refs,
        }))
    }

    /// Greets `name`; a missing or empty name is a 400.
    #[route(post, "/greetings")]
    async fn greet(
        &self,
        _credentials: Credentials,
        Json(request): Json<GreetingRequest>,
    ) -> Result<Json<Greeting>> {
        let name = request.name.trim();
        if name.is_empty() {
            return Err(Error::input("name must not be empty"));
        }
        Ok(Json(Greeting {
            message: self.greeter.greet(name)?,
        }))
    }
}
