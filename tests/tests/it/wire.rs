//! The wire contract over real HTTP: mount points, auth, error bodies, health, headers.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::support::*;
use backstage::Backend;
use backstage::http::Allow;
use backstage::prelude::*;
use carmen_backend::Carmen;
use serde::Deserialize;
use serde_json::{Value, json};

/// A plugin with one route per behaviour under test.
#[backend_plugin(id = "wire-test")]
pub struct WireTest {
    #[inject]
    router: HttpRouter,
    calls: AtomicUsize,
    /// Arms the `/hand/clone-panics` route's handler.
    armed: Arc<AtomicBool>,
}

/// Captured by a handler: axum clones a route's handler for each request it routes, before the
/// request's future is polled. Once armed, the next clone panics.
struct ClonePanics(Arc<AtomicBool>);

impl Clone for ClonePanics {
    fn clone(&self) -> Self {
        if self.0.swap(false, Ordering::SeqCst) {
            panic!("cloned while routing");
        }
        ClonePanics(self.0.clone())
    }
}

#[derive(Deserialize)]
pub struct Page {
    limit: u32,
}

#[routes]
impl WireTest {
    #[init]
    async fn init(&self) -> Result<()> {
        let hand_written = axum::Router::new()
            .route("/hand/open", axum::routing::get(|| async { "open" }))
            .route(
                "/hand/open/deeper",
                axum::routing::get(|| async { "deeper" }),
            )
            .route(
                "/hand/clone-panics",
                axum::routing::get({
                    let captured = ClonePanics(self.armed.clone());
                    move || {
                        let _kept = &captured;
                        async { "served" }
                    }
                }),
            )
            .route(
                "/hand/arm",
                axum::routing::post({
                    let armed = self.armed.clone();
                    move || {
                        armed.store(true, Ordering::SeqCst);
                        async { "armed" }
                    }
                }),
            )
            .route(
                "/hand/closed",
                axum::routing::get(|creds: Credentials| async move {
                    match creds.any() {
                        Principal::Service(s) => s.subject.clone(),
                        other => other.type_name().to_owned(),
                    }
                }),
            );
        self.router.use_router(hand_written);
        self.router
            .add_auth_policy("/hand/clone-panics", Allow::Unauthenticated)?;
        self.router
            .add_auth_policy("/hand/arm", Allow::Unauthenticated)?;
        self.router
            .add_auth_policy("/hand/open", Allow::Unauthenticated)
    }

    #[route(get, "/errors/{kind}")]
    async fn errors(&self, Path(kind): Path<String>) -> Result<&'static str> {
        Err(match kind.as_str() {
            "input" => Error::input("bad input"),
            "authentication" => Error::authentication("who are you"),
            "not-allowed" => Error::not_allowed("not you"),
            "not-found" => Error::not_found("no such thing"),
            "conflict" => Error::conflict("already there"),
            "not-implemented" => Error::not_implemented("later"),
            "service-unavailable" => Error::service_unavailable("busy"),
            "io" => std::fs::read("/no/such/file/for/backstage/tests")
                .map(|_| ())
                .unwrap_err()
                .into(),
            _ => Error::internal("secret database detail"),
        })
    }

    #[route(get, "/items/{id}")]
    async fn item(&self, Path(id): Path<i64>, _creds: Credentials) -> Result<Json<Value>> {
        Ok(Json(json!({ "id": id })))
    }

    #[route(get, "/page", auth = "unauthenticated")]
    async fn page(&self, Query(page): Query<Page>) -> String {
        format!("limit={}", page.limit)
    }

    #[route(get, "/whoami", auth = "unauthenticated")]
    async fn whoami(&self, creds: Credentials) -> String {
        creds.any().type_name().to_owned()
    }

    #[route(get, "/panic", auth = "unauthenticated")]
    async fn panic(&self) -> &'static str {
        self.calls.fetch_add(1, Ordering::SeqCst);
        panic!("handler exploded")
    }

    #[route(get, "/service-only")]
    async fn service_only(&self, creds: Credentials<backstage::ServicePrincipal>) -> String {
        creds.principal().subject.clone()
    }

    #[route(get, "/plugin-id", auth = "unauthenticated")]
    async fn plugin_id(
        &self,
        #[inject] meta: PluginMetadata,
        #[inject] discovery: Discovery,
    ) -> String {
        format!("{} {}", meta.id(), discovery.base_url(meta.id()))
    }

    #[route(post, "/items/{id}")]
    async fn replace(&self, Path(id): Path<i64>, Json(body): Json<Value>) -> Json<Value> {
        Json(json!({ "id": id, "body": body }))
    }
}

async fn backend() -> Backend {
    Backend::builder()
        .plugin::<Carmen>()
        .plugin::<WireTest>()
        .config_value(loopback_config())
        .service(test_auth())
        .start()
        .await
        .expect("backend starts")
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

#[tokio::test]
async fn carmen_health_needs_no_credentials() {
    let backend = backend().await;
    let (status, headers, body) = read(
        client()
            .get(backend.url("/api/carmen/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, r#"{"status":"ok"}"#);
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    backend.stop().await.unwrap();
}

#[tokio::test]
async fn secure_routes_answer_401_without_credentials() {
    let backend = backend().await;
    let (status, headers, body) = read(
        client()
            .get(backend.url("/api/carmen/me"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    // GET /me does not exist (POST does), but the auth barrier answers first, as Backstage's does.
    assert_eq!(status, 401);
    assert_eq!(
        body,
        error_body(
            "AuthenticationError",
            "Missing credentials",
            "GET",
            "/me",
            401
        )
    );
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");

    let (status, _, body) = read(
        client()
            .post(backend.url("/api/carmen/me"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        error_body(
            "AuthenticationError",
            "Missing credentials",
            "POST",
            "/me",
            401
        )
    );

    let response = client()
        .post(backend.url("/api/carmen/me"))
        .header("authorization", "Bearer not-a-token")
        .send()
        .await;
    let (status, _, body) = read(response.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        error_body("AuthenticationError", "Illegal token", "POST", "/me", 401)
    );

    let response = client()
        .post(backend.url("/api/carmen/me"))
        .header("authorization", format!("Basic {SERVICE_TOKEN}"))
        .send();
    assert_eq!(
        response.await.unwrap().status(),
        401,
        "only bearer tokens count"
    );
}

#[tokio::test]
async fn me_answers_users_and_refuses_services() {
    let backend = backend().await;
    let response = client()
        .post(backend.url("/api/carmen/me"))
        .header("authorization", bearer(&user_token()))
        .send()
        .await;
    let (status, _, body) = read(response.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"userEntityRef": "user:default/alice", "ownershipEntityRefs": ["user:default/alice", "group:default/team-a"]})
    );

    let response = client()
        .post(backend.url("/api/carmen/me"))
        .header("authorization", bearer(SERVICE_TOKEN))
        .send()
        .await;
    let (status, _, body) = read(response.unwrap()).await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        error_body(
            "NotAllowedError",
            "This endpoint does not allow 'service' credentials",
            "POST",
            "/me",
            403
        )
    );

    let response = client()
        .get(backend.url("/api/wire-test/service-only"))
        .header("authorization", bearer(&user_token()))
        .send();
    let (status, _, body) = read(response.await.unwrap()).await;
    assert_eq!(status, 403);
    assert!(
        body.contains("This endpoint does not allow 'user' credentials"),
        "{body}"
    );
    let response = client()
        .get(backend.url("/api/wire-test/service-only"))
        .header("authorization", bearer(SERVICE_TOKEN))
        .send();
    assert_eq!(read(response.await.unwrap()).await.2, "tests");
}

#[tokio::test]
async fn typed_json_input_and_its_400s() {
    let backend = backend().await;
    let url = backend.url("/api/carmen/greetings");
    let post = |body: &'static str, content_type: &'static str| {
        client()
            .post(&url)
            .header("authorization", bearer(SERVICE_TOKEN))
            .header("content-type", content_type)
            .body(body)
            .send()
    };
    let (status, _, body) =
        read(post(r#"{"name":"Ada"}"#, "application/json").await.unwrap()).await;
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"message":"Hello, Ada!"}"#)
    );

    // As `express.json()` reads bodies: JSON that does not parse is a SyntaxError, a body that
    // is not JSON by its type reads as `{}`, and one that misses or mistypes a field is an
    // InputError naming it.
    for (input, content_type, name, message) in [
        (
            r#"{"name":"#,
            "application/json",
            "SyntaxError",
            "EOF while parsing a value in JSON at position 8",
        ),
        (
            r#"{"nam":"Ada"}"#,
            "application/json",
            "InputError",
            "Invalid request body: missing field `name`",
        ),
        (
            r#"{"name":42}"#,
            "application/json",
            "InputError",
            "Invalid request body at 'name': invalid type: integer `42`, expected a string",
        ),
        (
            r#"{"name":"Ada"}"#,
            "text/plain",
            "InputError",
            "Invalid request body: missing field `name`",
        ),
    ] {
        let (status, headers, body) = read(post(input, content_type).await.unwrap()).await;
        assert_eq!(status, 400, "{input} as {content_type}: {body}");
        assert_eq!(headers["content-type"], "application/json; charset=utf-8");
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["name"], name, "{body}");
        assert_eq!(body["error"]["message"], message, "{body}");
        assert_eq!(
            body["request"],
            json!({"method": "POST", "url": "/greetings"})
        );
        assert_eq!(body["response"], json!({"statusCode": 400}));
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, _, body) = read(post(r#"{"name":"  "}"#, "application/json").await.unwrap()).await;
    assert_eq!(status, 400);
    assert_eq!(
        body,
        error_body(
            "InputError",
            "name must not be empty",
            "POST",
            "/greetings",
            400
        )
    );
}

#[tokio::test]
async fn every_error_kind_has_backstage_name_and_status() {
    let backend = backend().await;
    for (kind, name, status, message) in [
        ("input", "InputError", 400, "bad input"),
        ("authentication", "AuthenticationError", 401, "who are you"),
        ("not-allowed", "NotAllowedError", 403, "not you"),
        ("not-found", "NotFoundError", 404, "no such thing"),
        ("conflict", "ConflictError", 409, "already there"),
        ("not-implemented", "NotImplementedError", 501, "later"),
        (
            "service-unavailable",
            "ServiceUnavailableError",
            503,
            "busy",
        ),
    ] {
        let url = format!("/api/wire-test/errors/{kind}?x=1");
        let response = client()
            .get(backend.url(&url))
            .header("authorization", bearer(SERVICE_TOKEN))
            .send()
            .await;
        let (got_status, _, body) = read(response.unwrap()).await;
        assert_eq!(got_status, status, "{kind}");
        let routed = format!("/errors/{kind}?x=1");
        assert_eq!(body, error_body(name, message, "GET", &routed, status));
    }
    for kind in ["internal", "io"] {
        let url = format!("/api/wire-test/errors/{kind}");
        let response = client()
            .get(backend.url(&url))
            .header("authorization", bearer(SERVICE_TOKEN))
            .send()
            .await;
        let (status, _, body) = read(response.unwrap()).await;
        assert_eq!(status, 500);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["name"], "Error");
        let message = body["error"]["message"].as_str().unwrap();
        let log_id = message
            .strip_prefix("An internal error occurred logId=")
            .expect(message);
        assert_eq!(log_id.len(), 20);
        assert!(log_id.chars().all(|c| c.is_ascii_hexdigit()));
        assert!(!message.contains("secret") && !message.contains("No such file"));
    }
}

#[tokio::test]
async fn unknown_paths() {
    let backend = backend().await;
    // unknown plugin: 404 with an empty body, as Backstage's root router answers
    for path in ["/api/nobody/x", "/api/", "/api/nobody", "/", "/elsewhere"] {
        let (status, _, body) = read(client().get(backend.url(path)).send().await.unwrap()).await;
        assert_eq!((status, body.as_str()), (404, ""), "{path}");
    }
    // unknown route inside a plugin: the auth barrier first, then Backstage's not-found answer
    let (status, _, _) = read(
        client()
            .get(backend.url("/api/carmen/nope"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let response = client()
        .get(backend.url("/api/carmen/nope"))
        .header("authorization", bearer(SERVICE_TOKEN))
        .send();
    let (status, headers, body) = read(response.await.unwrap()).await;
    assert_eq!((status, body.as_str()), (404, ""));
    assert!(headers.get("content-type").is_none());
    // a known path with another method: the same, without `Allow`, as Express answers it
    let response = client()
        .get(backend.url("/api/carmen/me"))
        .header("authorization", bearer(SERVICE_TOKEN))
        .send();
    let (status, headers, body) = read(response.await.unwrap()).await;
    assert_eq!((status, body.as_str()), (404, ""));
    assert!(headers.get("allow").is_none());
}

#[tokio::test]
async fn path_and_query_extractors_reject_with_input_errors() {
    let backend = backend().await;
    let get = |path: &str| {
        client()
            .get(backend.url(path))
            .header("authorization", bearer(SERVICE_TOKEN))
            .send()
    };
    let (status, _, body) = read(get("/api/wire-test/items/12").await.unwrap()).await;
    assert_eq!((status, body.as_str()), (200, r#"{"id":12}"#));
    let (status, _, body) = read(get("/api/wire-test/items/twelve").await.unwrap()).await;
    assert_eq!(status, 400);
    assert!(
        body.starts_with(r#"{"error":{"name":"InputError","message":"#),
        "{body}"
    );
    assert!(
        body.ends_with(
            r#""request":{"method":"GET","url":"/items/twelve"},"response":{"statusCode":400}}"#
        ),
        "{body}"
    );

    let (status, _, body) = read(
        client()
            .get(backend.url("/api/wire-test/page?limit=5"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "limit=5"));
    let (status, _, body) = read(
        client()
            .get(backend.url("/api/wire-test/page?limit=many"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains(r#""name":"InputError""#));

    let response = client()
        .post(backend.url("/api/wire-test/items/3"))
        .header("authorization", bearer(SERVICE_TOKEN))
        .json(&json!({"a": 1}))
        .send();
    let (status, _, body) = read(response.await.unwrap()).await;
    assert_eq!((status, body.as_str()), (200, r#"{"body":{"a":1},"id":3}"#));
}

#[tokio::test]
async fn unauthenticated_routes_still_verify_credentials_that_are_sent() {
    let backend = backend().await;
    let url = backend.url("/api/wire-test/whoami");
    assert_eq!(
        read(client().get(&url).send().await.unwrap()).await.2,
        "none"
    );
    assert_eq!(
        read(
            client()
                .get(&url)
                .header("authorization", bearer(&user_token()))
                .send()
                .await
                .unwrap()
        )
        .await
        .2,
        "user"
    );
    let (status, _, body) = read(
        client()
            .get(&url)
            .header("authorization", "Bearer forged-token")
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        error_body(
            "AuthenticationError",
            "Illegal token",
            "GET",
            "/whoami",
            401
        )
    );
}

#[tokio::test]
async fn a_panic_while_routing_answers_500_and_the_server_keeps_serving() {
    let backend = backend().await;
    let get = || async {
        read(
            client()
                .get(backend.url("/api/wire-test/hand/clone-panics"))
                .send()
                .await
                .expect("an answer, not a dropped connection"),
        )
        .await
    };
    assert_eq!(get().await.0, 200);
    let armed = client()
        .post(backend.url("/api/wire-test/hand/arm"))
        .send()
        .await
        .unwrap();
    assert_eq!(armed.status(), 200);
    let (status, _, body) = get().await;
    assert_eq!(status, 500);
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"]["name"], "Error");
    assert!(!body.to_string().contains("cloned while routing"));
    assert_eq!(get().await.0, 200);
}

#[tokio::test]
async fn a_panicking_handler_answers_500_and_the_server_keeps_serving() {
    let backend = backend().await;
    for _ in 0..3 {
        let (status, _, body) = read(
            client()
                .get(backend.url("/api/wire-test/panic"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        assert_eq!(status, 500);
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!(body["error"]["name"], "Error");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("An internal error occurred logId=")
        );
        assert!(
            !body.to_string().contains("exploded"),
            "the panic message stays in the log"
        );
        assert_eq!(body["request"]["url"], "/panic");
    }
    let (status, _, body) = read(
        client()
            .get(backend.url("/api/carmen/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
}

#[tokio::test]
async fn health_endpoints_and_security_headers() {
    let backend = backend().await;
    let (status, headers, body) = read(
        client()
            .get(backend.url("/.backstage/health/v1/readiness"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(headers["content-type"], "application/json; charset=utf-8");
    let (status, _, body) = read(
        client()
            .get(backend.url("/.backstage/health/v1/liveness"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));

    for path in [
        "/.backstage/health/v1/liveness",
        "/api/carmen/health",
        "/api/carmen/me",
        "/api/nobody",
    ] {
        let (_, headers, _) = read(client().get(backend.url(path)).send().await.unwrap()).await;
        assert_eq!(
            headers["content-security-policy"],
            "default-src 'self';base-uri 'self';font-src 'self' https: data:;frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self' 'unsafe-eval';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests",
            "{path}"
        );
        for (name, value) in [
            ("referrer-policy", "no-referrer"),
            (
                "strict-transport-security",
                "max-age=15552000; includeSubDomains",
            ),
            ("x-content-type-options", "nosniff"),
            ("x-dns-prefetch-control", "off"),
            ("x-download-options", "noopen"),
            ("x-frame-options", "SAMEORIGIN"),
            ("x-permitted-cross-domain-policies", "none"),
            ("x-xss-protection", "0"),
        ] {
            assert_eq!(headers[name], value, "{name} on {path}");
        }
        assert!(headers.get("x-powered-by").is_none());
    }
}

#[tokio::test]
async fn hand_written_routers_follow_path_policies() {
    let backend = backend().await;
    let get = |path: &str| client().get(backend.url(path)).send();
    assert_eq!(
        read(get("/api/wire-test/hand/open").await.unwrap()).await.2,
        "open"
    );
    assert_eq!(
        read(get("/api/wire-test/hand/open/deeper").await.unwrap())
            .await
            .2,
        "deeper"
    );
    let (status, _, body) = read(get("/api/wire-test/hand/closed").await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(
        body,
        error_body(
            "AuthenticationError",
            "Missing credentials",
            "GET",
            "/hand/closed",
            401
        )
    );
    let response = client()
        .get(backend.url("/api/wire-test/hand/closed"))
        .header("authorization", bearer(SERVICE_TOKEN))
        .send();
    assert_eq!(read(response.await.unwrap()).await.2, "tests");
}

#[tokio::test]
async fn injected_route_parameters_and_discovery() {
    let backend = backend().await;
    let (status, _, body) = read(
        client()
            .get(backend.url("/api/wire-test/plugin-id"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        format!(
            "wire-test http://127.0.0.1:{}/api/wire-test",
            backend.local_addr().port()
        )
    );
}

#[tokio::test]
async fn static_tokens_from_config_give_service_credentials_with_their_subject() {
    let config = json!({
        "backend": {
            "listen": { "host": "127.0.0.1", "port": 0 },
            "auth": { "externalAccess": [
                { "type": "static", "options": { "token": "config-token-1234", "subject": "from-config" } },
                { "type": "static", "options": { "token": "restricted-token-1234", "subject": "restricted" },
                  "accessRestrictions": [ { "plugin": "carmen" } ] },
            ] },
        },
    });
    let backend = Backend::builder()
        .plugin::<Carmen>()
        .plugin::<WireTest>()
        .config_value(config)
        .start()
        .await
        .unwrap();
    let get = |path: &str, token: &str| {
        client()
            .get(backend.url(path))
            .header("authorization", bearer(token))
            .send()
    };
    assert_eq!(
        read(
            get("/api/wire-test/service-only", "config-token-1234")
                .await
                .unwrap()
        )
        .await
        .2,
        "from-config"
    );
    let (status, _, body) = read(
        get("/api/wire-test/service-only", "restricted-token-1234")
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(
        body,
        error_body(
            "NotAllowedError",
            "This token's access is restricted to plugin(s) 'carmen'",
            "GET",
            "/service-only",
            403
        )
    );
    let response = client()
        .post(backend.url("/api/carmen/greetings"))
        .header("authorization", bearer("restricted-token-1234"))
        .json(&json!({"name": "x"}))
        .send();
    assert_eq!(response.await.unwrap().status(), 200);
    assert_eq!(
        read(
            get("/api/wire-test/service-only", SERVICE_TOKEN)
                .await
                .unwrap()
        )
        .await
        .0,
        401,
        "no test auth here"
    );
}

#[tokio::test]
async fn a_bad_static_token_fails_start_up_naming_the_key() {
    let config = json!({ "backend": {
        "listen": { "host": "127.0.0.1", "port": 0 },
        "auth": { "externalAccess": [ { "type": "static", "options": { "token": "short", "subject": "x" } } ] },
    }});
    let err = Backend::builder()
        .plugin::<Carmen>()
        .config_value(config)
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("backend.auth.externalAccess[0].options.token"),
        "{err}"
    );
    assert!(err.to_string().contains("plugin 'carmen'"), "{err}");
}
