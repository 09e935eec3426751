//! OpenAPI documents generated from `#[routes]`: what each declaration becomes, the served
//! document, and its validity by an independent validator.

use backstage::prelude::*;
use backstage::testing::{TestBackend, json, mock};
use serde_json::Value;

#[derive(serde::Serialize, serde::Deserialize, schemars::JsonSchema)]
pub struct Book {
    /// The book's id.
    id: u32,
    title: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct NewBook {
    title: String,
}

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct Page {
    /// How many to skip.
    offset: Option<u32>,
    limit: u32,
}

/// No JSON Schema for this one.
#[derive(serde::Serialize)]
pub struct Opaque {
    secret: u8,
}

/// A path parameter without a JSON Schema.
#[derive(serde::Deserialize)]
pub struct Name(String);

#[backend_plugin(id = "library")]
pub struct Library;

#[routes]
impl Library {
    /// Lists books.
    ///
    /// A page at a time, oldest first.
    #[route(get, "/books")]
    async fn list(&self, Query(page): Query<Page>) -> Result<Json<Vec<Book>>> {
        let _ = (page.offset, page.limit);
        Ok(Json(Vec::new()))
    }

    /// Adds a book.
    #[route(post, "/books")]
    async fn add(&self, Json(new): Json<NewBook>) -> (StatusCode, Json<Book>) {
        (
            StatusCode::CREATED,
            Json(Book {
                id: 1,
                title: new.title,
            }),
        )
    }

    #[route(get, "/books/{id}/pages/{page}", auth = "user-cookie")]
    async fn page(&self, Path((id, page)): Path<(u32, String)>) -> String {
        format!("{id}:{page}")
    }

    #[route(delete, "/books/{id}")]
    async fn remove(
        &self,
        Path(_id): Path<u32>,
        _me: Credentials<UserPrincipal>,
    ) -> Result<StatusCode> {
        Ok(StatusCode::NO_CONTENT)
    }

    #[route(get, "/opaque", auth = "unauthenticated")]
    async fn opaque(&self) -> Json<Opaque> {
        Json(Opaque { secret: 1 })
    }

    #[route(get, "/anything/{name}", auth = "unauthenticated")]
    async fn anything(&self, Path(name): Path<Name>, headers: HeaderMap) -> impl IntoResponse {
        format!("{} {}", name.0, headers.len())
    }
}

/// A plugin that serves a document of its own.
#[backend_plugin(id = "handmade")]
pub struct Handmade;

#[routes]
impl Handmade {
    #[route(get, "/openapi.json", auth = "unauthenticated")]
    async fn spec(&self) -> Json<Value> {
        Json(json!({"openapi": "3.1.0", "info": {"title": "by hand", "version": "7"}, "paths": {}}))
    }
}

#[test]
fn routes_become_operations() {
    let spec = Library::openapi();
    assert_eq!(spec["openapi"], "3.1.0");
    let list = &spec["paths"]["/books"]["get"];
    assert_eq!(list["summary"], "Lists books.");
    assert_eq!(list["description"], "A page at a time, oldest first.");
    assert_eq!(list["operationId"], "list");
    assert_eq!(list["security"], json!([{"JWT": []}]));
    let params = list["parameters"].as_array().unwrap();
    let limit = params.iter().find(|p| p["name"] == "limit").unwrap();
    assert_eq!(
        (&limit["in"], &limit["required"]),
        (&json!("query"), &json!(true))
    );
    let offset = params.iter().find(|p| p["name"] == "offset").unwrap();
    assert_eq!(
        (&offset["required"], &offset["description"]),
        (&json!(false), &json!("How many to skip."))
    );
    let ok = &list["responses"]["200"]["content"]["application/json"]["schema"];
    assert_eq!(ok["type"], "array");
    assert_eq!(ok["items"]["$ref"], "#/components/schemas/Book");
    for status in ["400", "401", "default"] {
        assert_eq!(
            list["responses"][status]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/Error",
            "{status}"
        );
    }
    let book = &spec["components"]["schemas"]["Book"];
    assert_eq!(book["properties"]["id"]["description"], "The book's id.");

    let add = &spec["paths"]["/books"]["post"];
    assert_eq!(
        add["requestBody"]["content"]["application/json"]["schema"]["$ref"],
        "#/components/schemas/NewBook"
    );
    assert!(add["responses"]["2XX"]["content"]["application/json"].is_object());
    assert!(
        add["responses"].get("default").is_none(),
        "not a Result: no error body"
    );

    let page = &spec["paths"]["/books/{id}/pages/{page}"]["get"];
    let names: Vec<(&Value, &Value)> = page["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (&p["name"], &p["schema"]["type"]))
        .collect();
    assert_eq!(
        names,
        [
            (&json!("id"), &json!("integer")),
            (&json!("page"), &json!("string"))
        ]
    );
    assert_eq!(
        page["security"],
        json!([{"JWT": []}, {"BackstageCookie": []}])
    );
    assert_eq!(
        page["responses"]["200"]["content"]["text/plain"]["schema"]["type"],
        "string"
    );

    let remove = &spec["paths"]["/books/{id}"]["delete"];
    assert!(
        remove["responses"]["403"].is_object(),
        "users only: 403 for services"
    );
    assert!(remove["responses"]["2XX"].is_object());

    let opaque = &spec["paths"]["/opaque"]["get"];
    assert_eq!(opaque["security"], json!([]));
    assert_eq!(
        opaque["responses"]["200"]["content"]["application/json"]["schema"],
        json!({})
    );
    assert!(opaque["responses"].get("401").is_none());

    // An answer that cannot be named, and a path parameter without a schema: a string.
    let anything = &spec["paths"]["/anything/{name}"]["get"];
    assert_eq!(anything["parameters"][0]["name"], "name");
    assert_eq!(anything["parameters"][0]["schema"]["type"], "string");
    assert!(anything["responses"]["2XX"].is_object());
}

#[test]
fn types_without_a_schema_are_named() {
    let open = backstage::openapi::open_types::<Library>();
    assert_eq!(open.len(), 2, "{open:?}");
    assert!(
        open[0].starts_with("GET /opaque: ") && open[0].ends_with("Opaque"),
        "{open:?}"
    );
    assert!(
        open[1].starts_with("GET /anything/{name}: ") && open[1].ends_with("Name"),
        "{open:?}"
    );
}

#[backstage::test]
async fn every_plugin_serves_its_document_below_its_base_path() {
    let backend = TestBackend::builder()
        .plugin::<Library>()
        .plugin::<Handmade>()
        .start()
        .await
        .unwrap();
    let res = backend.get("/api/library/openapi.json").send().await;
    assert_eq!(res.status(), 200, "unauthenticated");
    assert_eq!(
        res.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let served: Value = res.json();
    let paths: Vec<&String> = served["paths"].as_object().unwrap().keys().collect();
    assert!(
        paths.contains(&&"/api/library/books/{id}".to_owned()),
        "{paths:?}"
    );
    let mut own = Library::openapi();
    let mut served = served;
    // The same document but for the paths' prefix.
    own["paths"] = json!({});
    served["paths"] = json!({});
    assert_eq!(own, served);
    let res = backend
        .get("/api/handmade/openapi.json")
        .credentials(mock::none())
        .send()
        .await;
    assert_eq!(res.json::<Value>()["info"]["title"], "by hand");
}

/// The documents of this test's plugin and of the example plugin pass an OpenAPI 3.1
/// validator from npm (`@seriousme/openapi-schema-validator`, against the specification's own
/// JSON Schema).
#[backstage::test]
async fn documents_pass_an_independent_validator() {
    let Some(dir) = crate::interop::installed().await else {
        return;
    };
    for (name, spec) in [
        ("library", Library::openapi()),
        ("carmen", carmen_backend::Carmen::openapi()),
    ] {
        let file = dir.join(format!("openapi-{name}.json"));
        std::fs::write(&file, spec.to_string()).unwrap();
        let output = std::process::Command::new("node")
            .arg("openapi.js")
            .arg(&file)
            .current_dir(&dir)
            .output()
            .expect("node runs");
        let report = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{name}: {report}{}",
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(report.trim(), "valid", "{name}");
    }
}
