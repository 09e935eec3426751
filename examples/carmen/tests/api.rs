//! carmen's own tests, written the way a plugin author writes them: with `backstage::testing`.

use backstage::Health;
use backstage::testing::{TestBackend, mock};
use carmen_backend::{Carmen, Greeting, Me};
use serde_json::json;

async fn carmen() -> TestBackend {
    TestBackend::builder()
        .plugin::<Carmen>()
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn health_is_open() {
    let backend = carmen().await;
    let res = backend.get("/api/carmen/health").send().await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Health>(), Health::ok());
}

#[tokio::test]
async fn me_answers_users_only() {
    let backend = carmen().await;
    let res = backend
        .post("/api/carmen/me")
        .credentials(mock::user("user:default/alice"))
        .send()
        .await;
    assert_eq!(
        res.json::<Me>(),
        Me {
            user_entity_ref: "user:default/alice".into(),
            ownership_entity_refs: vec!["user:default/alice".into()]
        }
    );
    let res = backend
        .post("/api/carmen/me")
        .credentials(mock::service("plugin:catalog"))
        .send()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.error().1,
        "This endpoint does not allow 'service' credentials"
    );
    assert_eq!(backend.post("/api/carmen/me").send().await.status(), 401);
}

#[tokio::test]
async fn greetings_take_typed_json() {
    let backend = TestBackend::builder()
        .plugin::<Carmen>()
        .config(json!({ "carmen": { "greeting": "Hi" } }))
        .start()
        .await
        .unwrap();
    let greet = |body: serde_json::Value| {
        backend
            .post("/api/carmen/greetings")
            .credentials(mock::user("user:default/a"))
            .json(&body)
            .send()
    };
    assert_eq!(
        greet(json!({"name": "Ada"}))
            .await
            .json::<Greeting>()
            .message,
        "Hi, Ada!"
    );
    let res = greet(json!({"name": " "})).await;
    assert_eq!(
        (res.status().as_u16(), res.error().0.as_str()),
        (400, "InputError")
    );
    let res = greet(json!({"nom": "Ada"})).await;
    assert_eq!(
        (res.status().as_u16(), res.error().0.as_str()),
        (400, "InputError")
    );
}

#[backstage::test]
async fn item_names_are_text_of_1_to_255_characters() {
    let backend = carmen().await;
    for name in ["", "   ", "a\u{0}b", &"x".repeat(256)] {
        let res = backend
            .post("/api/carmen/items")
            .credentials(mock::user("user:default/alice"))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await;
        assert_eq!(res.status(), 400, "{name:?}");
        assert_eq!(
            res.error(),
            (
                "InputError".to_owned(),
                "name must be 1 to 255 characters of text".to_owned()
            )
        );
    }
}

/// Another plugin calls carmen through the typed client its routes give it: the greeting,
/// and carmen's 400 as a typed error.
#[backstage::test]
async fn other_plugins_call_carmen_through_its_typed_client() {
    use backstage::prelude::*;
    use carmen_backend::{CarmenClient, GreetingRequest};

    #[backend_plugin(id = "caller")]
    struct Caller {
        #[inject]
        client: PluginClient,
    }

    #[routes]
    impl Caller {
        #[route(get, "/greet/{name}")]
        async fn greet(&self, Path(name): Path<String>, creds: Credentials) -> Result<String> {
            let carmen = CarmenClient::new(&self.client);
            match carmen.greet(&GreetingRequest { name }, &creds).await {
                Ok(greeting) => Ok(greeting.message),
                Err(e) => Ok(format!("{}: {}", e.kind().name(), e.message())),
            }
        }
    }

    let backend = TestBackend::builder()
        .plugin::<Carmen>()
        .plugin::<Caller>()
        .start()
        .await
        .unwrap();
    let ada = || mock::user("user:default/ada");
    let res = backend
        .get("/api/caller/greet/Ada")
        .credentials(ada())
        .send()
        .await;
    assert_eq!(res.text(), "Hello, Ada!");
    let res = backend
        .get("/api/caller/greet/%20")
        .credentials(ada())
        .send()
        .await;
    assert_eq!(res.text(), "InputError: name must not be empty");
}
