//! The typed clients `#[routes]` generates: one plugin calls another's routes with typed
//! arguments and answers, across two backends, on behalf of a user or as itself; the callee's
//! errors arrive as typed `Error`s.

use backstage::prelude::*;
use backstage::testing::{TestBackend, json, mock};
use serde_json::Value;

use crate::support::principal_json;

#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Book {
    id: u32,
    title: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct NewBook {
    title: String,
}

#[derive(serde::Serialize, serde::Deserialize)]
pub struct Search {
    title: String,
}

fn books() -> Vec<Book> {
    vec![
        Book {
            id: 1,
            title: "Dune".into(),
        },
        Book {
            id: 2,
            title: "Emma".into(),
        },
    ]
}

/// The callee.
#[backend_plugin(id = "shelf")]
pub struct Shelf;

#[routes]
impl Shelf {
    #[route(get, "/books/{id}")]
    async fn book(&self, Path(id): Path<u32>) -> Result<Json<Book>> {
        books()
            .into_iter()
            .find(|b| b.id == id)
            .map(Json)
            .ok_or_else(|| Error::not_found(format!("no book {id}")))
    }

    #[route(get, "/books")]
    async fn search(&self, Query(search): Query<Search>) -> Json<Vec<Book>> {
        Json(
            books()
                .into_iter()
                .filter(|b| b.title.contains(&search.title))
                .collect(),
        )
    }

    #[route(post, "/books")]
    async fn add(&self, Json(new): Json<NewBook>) -> (StatusCode, Json<Book>) {
        (
            StatusCode::CREATED,
            Json(Book {
                id: 3,
                title: new.title,
            }),
        )
    }

    #[route(delete, "/books/{id}")]
    async fn remove(&self, Path(_id): Path<u32>, _user: Credentials<UserPrincipal>) -> StatusCode {
        StatusCode::NO_CONTENT
    }

    #[route(get, "/whoami")]
    async fn whoami(&self, credentials: Credentials) -> Json<Value> {
        Json(principal_json(&credentials))
    }

    #[route(get, "/motto/{who}/{times}", auth = "unauthenticated")]
    async fn motto(&self, Path((who, times)): Path<(String, u8)>) -> String {
        format!("{who} reads").repeat(times.into())
    }
}

/// The caller: each route calls the shelf through its typed client.
#[backend_plugin(id = "reader")]
pub struct Reader {
    #[inject]
    client: PluginClient,
    #[inject]
    auth: Auth,
}

/// A callee's error as the caller sees it.
fn failure(error: &Error) -> Value {
    json!({"kind": error.kind().name(), "status": error.status().as_u16(), "message": error.message()})
}

#[routes]
impl Reader {
    #[route(get, "/calls")]
    async fn calls(&self, credentials: Credentials) -> Result<Json<Value>> {
        let shelf = ShelfClient::new(&self.client);
        let book: Book = shelf.book(2, &credentials).await?;
        let found: Vec<Book> = shelf
            .search(&Search { title: "un".into() }, &credentials)
            .await?;
        let added: Book = shelf
            .add(
                &NewBook {
                    title: "Ulysses".into(),
                },
                &credentials,
            )
            .await?;
        let motto: String = shelf.motto("ada".into(), 2, &credentials).await?;
        let removed: StatusCode = shelf.remove(1, &credentials).await?;
        let as_caller: Value = shelf.whoami(&credentials).await?;
        let own = self.auth.own_service_credentials();
        let as_itself: Value = shelf.whoami(&own).await?;
        let missing = shelf.book(404, &credentials).await.unwrap_err();
        let refused = shelf.remove(1, &own).await.unwrap_err();
        Ok(Json(json!({
            "book": book.title,
            "found": found.iter().map(|b| &b.title).collect::<Vec<_>>(),
            "added": added,
            "motto": motto,
            "removed": removed.as_u16(),
            "asCaller": as_caller,
            "asItself": as_itself,
            "missing": failure(&missing),
            "refused": failure(&refused),
        })))
    }
}

/// Ada asks the reader to make its calls.
async fn calls(reader: &TestBackend) -> backstage::testing::TestResponse {
    reader
        .get("/api/reader/calls")
        .credentials(mock::user("user:default/ada"))
        .send()
        .await
}

#[backstage::test]
async fn a_plugin_calls_another_through_its_typed_client_across_backends() {
    let shelf = TestBackend::builder()
        .plugin::<Shelf>()
        .start()
        .await
        .unwrap();
    let shelf_url = shelf.url("/api/{{pluginId}}");
    let reader = TestBackend::builder()
        .plugin::<Reader>()
        .config(json!({"discovery": {"endpoints": [{"target": shelf_url, "plugins": ["shelf"]}]}}))
        .start()
        .await
        .unwrap();
    let res = calls(&reader).await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let calls: Value = res.json();
    assert_eq!(calls["book"], "Emma");
    assert_eq!(calls["found"], json!(["Dune"]));
    assert_eq!(calls["added"], json!({"id": 3, "title": "Ulysses"}));
    assert_eq!(calls["motto"], "ada readsada reads");
    assert_eq!(calls["removed"], 204);
    assert_eq!(calls["asCaller"]["type"], "user");
    assert_eq!(calls["asCaller"]["userEntityRef"], "user:default/ada");
    assert_eq!(
        calls["asItself"],
        json!({"type": "service", "subject": "plugin:reader"})
    );
    assert_eq!(
        calls["missing"],
        json!({"kind": "NotFoundError", "status": 404, "message": "no book 404"})
    );
    assert_eq!(calls["refused"]["kind"], "NotAllowedError");
    assert_eq!(calls["refused"]["status"], 403);
}

#[backstage::test]
async fn an_unreachable_callee_is_a_typed_error() {
    let reader = TestBackend::builder()
        .plugin::<Reader>()
        .config(json!({"discovery": {"endpoints": [{"target": "http://127.0.0.1:9/api/{{pluginId}}", "plugins": ["shelf"]}]}}))
        .start()
        .await
        .unwrap();
    let res = calls(&reader).await;
    assert_eq!(res.status(), 503, "{}", res.text());
    assert_eq!(res.error().0, "ServiceUnavailableError");
}
