//! The legal surface of `#[routes]`, `#[route]` and `#[init]`.
use backstage::prelude::*;
use serde::Deserialize;

#[backend_plugin(id = "carmen")]
pub struct Carmen {
    #[inject]
    logger: Logger,
}

#[derive(Deserialize)]
pub struct Search {
    pub q: String,
}

#[derive(Deserialize)]
pub struct NewItem {
    pub name: String,
}

#[routes]
impl Carmen {
    /// `#[init]` may take injected services and return `Result<()>` or `()`.
    #[init]
    async fn init(&self, #[inject] config: RootConfig) -> Result<()> {
        self.logger.info(format!("has listen: {}", config.has("backend.listen")));
        Ok(())
    }

    #[route(get, "/health", auth = "unauthenticated")]
    async fn health(&self) -> Json<Vec<&'static str>> {
        Json(vec!["ok"])
    }

    #[route(get, "/cookie", auth = "user-cookie")]
    async fn cookie(&self, creds: Credentials) -> String {
        creds.any().type_name().to_owned()
    }

    #[route(post, "/me")]
    async fn me(&self, creds: Credentials<UserPrincipal>) -> Result<String> {
        Ok(creds.principal().user_entity_ref.clone())
    }

    #[route(get, "/service")]
    async fn service(&self, creds: Credentials<backstage::ServicePrincipal>) -> String {
        creds.principal().subject.clone()
    }

    #[route(get, "/optional", auth = "unauthenticated")]
    async fn optional(&self, creds: Credentials) -> String {
        creds.any().type_name().to_owned()
    }

    #[route(get, "/items/{id}")]
    async fn item(&self, Path(id): Path<i64>, #[inject] logger: Logger) -> Result<Json<i64>> {
        logger.debug(format!("item {id}"));
        Err(Error::not_found(format!("no item {id}")))
    }

    #[route(get, "/items/{id}/parts/{part}")]
    async fn part(&self, Path((id, part)): Path<(i64, String)>) -> String {
        format!("{id}/{part}")
    }

    #[route(get, "/files/{*rest}")]
    async fn files(&self, Path(rest): Path<String>) -> String {
        rest
    }

    #[route(get, "/search")]
    async fn search(&self, Query(search): Query<Search>, headers: HeaderMap) -> (StatusCode, String) {
        (StatusCode::OK, format!("{} {}", search.q, headers.len()))
    }

    #[route(post, "/items")]
    async fn create(&self, _creds: Credentials, Json(item): Json<NewItem>) -> Result<(StatusCode, String)> {
        Ok((StatusCode::CREATED, item.name))
    }

    #[route(put, "/items/{id}")]
    async fn replace(&self, Path(id): Path<i64>, body: String) -> impl IntoResponse {
        format!("{id}: {body}")
    }

    #[route(delete, "/items/{id}")]
    async fn delete(&self, Path(_id): Path<i64>) -> StatusCode {
        StatusCode::NO_CONTENT
    }

    #[route(patch, "/items/{id}")]
    async fn patch(&self, Path(_id): Path<i64>) -> StatusCode {
        StatusCode::NO_CONTENT
    }

    #[route(head, "/ping")]
    async fn head(&self) -> StatusCode {
        StatusCode::OK
    }

    #[route(options, "/ping")]
    async fn options(&self) -> StatusCode {
        StatusCode::NO_CONTENT
    }

    /// Methods without `#[route]` stay ordinary methods.
    fn helper(&self) -> usize {
        1
    }
}

/// A second block for the same plugin.
#[routes]
impl Carmen {
    #[route(get, "/second")]
    async fn second(&self) -> String {
        self.helper().to_string()
    }
}

/// A plugin whose `#[init]` returns `()`.
#[backend_plugin(id = "plain")]
pub struct Plain;

#[routes]
impl Plain {
    #[init]
    async fn init(&self) {}
}

pub(super) fn main() {}
