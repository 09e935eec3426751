//! The test harness itself: mock credentials are honoured by a test backend and refused by a
//! real one; static tokens work in both.

use backstage::Backend;
use backstage::prelude::*;
use backstage::testing::{TestBackend, mock};
use serde_json::json;

#[backend_plugin(id = "probe")]
pub struct Probe;

#[routes]
impl Probe {
    #[route(get, "/who")]
    async fn who(&self, creds: Credentials) -> String {
        match creds.any() {
            Principal::User(user) => format!("user {}", user.user_entity_ref),
            Principal::Service(service) => format!("service {}", service.subject),
            Principal::None => "none".to_owned(),
        }
    }

    #[route(get, "/cookie", auth = "user-cookie")]
    async fn cookie(&self, creds: Credentials<UserPrincipal>) -> String {
        creds.principal().user_entity_ref.clone()
    }
}

#[backend_plugin(id = "other")]
pub struct Other;

#[routes]
impl Other {
    #[route(get, "/who")]
    async fn who(&self, _creds: Credentials) -> &'static str {
        "other"
    }
}

async fn test_backend() -> TestBackend {
    TestBackend::builder()
        .plugin::<Probe>()
        .plugin::<Other>()
        .config(json!({ "backend": { "auth": { "externalAccess": [
            { "type": "static", "options": { "token": "static-token-for-harness", "subject": "ci" } }
        ] } } }))
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_kind_of_mock_credentials() {
    let backend = test_backend().await;
    let who = |creds| backend.get("/api/probe/who").credentials(creds).send();
    assert_eq!(
        who(mock::user(mock::DEFAULT_USER)).await.text(),
        "user user:default/mock"
    );
    assert_eq!(
        who(mock::user("user:default/alice")).await.text(),
        "user user:default/alice"
    );
    assert_eq!(
        who(mock::service("plugin:catalog")).await.text(),
        "service plugin:catalog"
    );
    assert_eq!(
        who(mock::service(mock::DEFAULT_SERVICE)).await.text(),
        "service external:test-service"
    );
    assert_eq!(who(mock::none()).await.status(), 401);

    for (creds, message) in [
        (mock::invalid_user(), "User token is invalid"),
        (mock::invalid_service(), "Service token is invalid"),
        (
            mock::limited_user("user:default/bob"),
            "Missing credentials",
        ),
    ] {
        let res = who(creds).await;
        assert_eq!(res.status(), 401);
        assert_eq!(
            res.error(),
            ("AuthenticationError".to_owned(), message.to_owned())
        );
    }

    let res = backend
        .get("/api/probe/cookie")
        .credentials(mock::limited_user("user:default/bob"))
        .send()
        .await;
    assert_eq!(
        (res.status().as_u16(), res.text()),
        (200, "user:default/bob".to_owned())
    );
    let res = backend
        .get("/api/probe/cookie")
        .credentials(mock::invalid_limited_user())
        .send()
        .await;
    assert_eq!(res.error().1, "Limited user token is invalid");

    let restricted = mock::service_restricted("external:ci", &["other"]);
    assert_eq!(
        backend
            .get("/api/other/who")
            .credentials(restricted.clone())
            .send()
            .await
            .text(),
        "other"
    );
    let res = backend
        .get("/api/probe/who")
        .credentials(restricted)
        .send()
        .await;
    assert_eq!(res.status(), 403);
    assert_eq!(
        res.error().1,
        "This token's access is restricted to plugin(s) 'other'"
    );

    let res = backend
        .get("/api/probe/who")
        .header("authorization", "Bearer static-token-for-harness")
        .send()
        .await;
    assert_eq!(res.text(), "service ci");
}

#[tokio::test]
async fn a_real_backend_refuses_mock_tokens() {
    let config = json!({ "backend": {
        "listen": { "host": "127.0.0.1", "port": 0 },
        "auth": { "externalAccess": [ { "type": "static", "options": { "token": "static-token-for-harness", "subject": "ci" } } ] },
    }});
    let backend = Backend::builder()
        .plugin::<Probe>()
        .config_value(config)
        .start()
        .await
        .unwrap();
    let client = reqwest::Client::new();
    for creds in [
        mock::user("user:default/alice"),
        mock::service("plugin:catalog"),
        mock::user(mock::DEFAULT_USER),
    ] {
        let (name, value) = creds.header().unwrap();
        let res = client
            .get(backend.url("/api/probe/who"))
            .header(name, value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
        assert!(res.text().await.unwrap().contains("Illegal token"));
    }
    let (name, value) = mock::limited_user("user:default/bob").header().unwrap();
    let res = client
        .get(backend.url("/api/probe/cookie"))
        .header(name, value)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let res = client
        .get(backend.url("/api/probe/who"))
        .bearer_auth("static-token-for-harness")
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "service ci");
}
