#![doc = include_str!("guide.md")]

use std::fmt;

use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::auditor::{AuditLog, Auditor};
use crate::backend::{Backend, BackendBuilder};
use crate::config::RootConfig;
use crate::error::{Error, Result};
use crate::plugin::{BackendModule, BackendPlugin, BoxFuture, Service, ServiceContext};

mod caches;
mod databases;
mod factory;
pub mod mock;
mod mock_url_reader;
mod server;

pub use caches::{REDIS_ENV, TestCache, TestCaches};
pub use databases::{MYSQL_ENV, POSTGRES_ENV, TestDatabase, TestDatabases};
pub use factory::ServiceFactoryTester;
/// `serde_json`'s `json!`, for test configs and bodies without another dependency.
pub use serde_json::json;
pub use server::{MockServer, tar_gz};
/// `wiremock`, as [`MockServer`] uses it: `Mock`, `ResponseTemplate` and `matchers` program the
/// server's answers.
pub use wiremock;

/// Builds a [`TestBackend`]: the plugins and modules you name (never everything that happens to
/// be linked), on a random loopback port, with test defaults for every core service.
///
/// Defaults: `backend.listen` is `127.0.0.1:0`; the auth service accepts the tokens of
/// [`mock`] credentials (and static tokens from the config); everything else is real.
#[must_use = "a builder does nothing until `start` is called"]
pub struct TestBackendBuilder {
    builder: BackendBuilder,
    config: Value,
    mock_auth: bool,
    /// Whether the auditor is the recording one (not replaced by the test).
    record_audit: bool,
}

impl fmt::Debug for TestBackendBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBackendBuilder")
            .field("builder", &self.builder)
            .finish_non_exhaustive()
    }
}

impl TestBackendBuilder {
    /// Adds plugin `P`.
    pub fn plugin<P: BackendPlugin>(mut self) -> Self {
        self.builder = self.builder.plugin::<P>();
        self
    }

    /// Adds module `M`.
    pub fn module<M: BackendModule>(mut self) -> Self {
        self.builder = self.builder.module::<M>();
        self
    }

    /// Merges `config` over the test defaults (objects key by key).
    ///
    /// ```
    /// let builder = backstage::testing::TestBackend::builder()
    ///     .config(serde_json::json!({ "carmen": { "greeting": "Hi" } }));
    /// ```
    pub fn config(mut self, config: Value) -> Self {
        merge(&mut self.config, config);
        self
    }

    /// Replaces service `S` with `instance` (a mock of your own, say).
    #[track_caller]
    pub fn service<S: Service>(mut self, instance: S) -> Self {
        if std::any::TypeId::of::<S>() == std::any::TypeId::of::<crate::auth::Auth>() {
            self.mock_auth = false;
        }
        if std::any::TypeId::of::<S>() == std::any::TypeId::of::<crate::auditor::Auditor>() {
            self.record_audit = false;
        }
        self.builder = self.builder.service(instance);
        self
    }

    /// Replaces the factory of service `S`.
    #[track_caller]
    pub fn factory<S, F>(mut self, factory: F) -> Self
    where
        S: Service,
        F: for<'a> Fn(&'a ServiceContext<'_>) -> BoxFuture<'a, Result<S>> + Send + Sync + 'static,
    {
        if std::any::TypeId::of::<S>() == std::any::TypeId::of::<crate::auth::Auth>() {
            self.mock_auth = false;
        }
        if std::any::TypeId::of::<S>() == std::any::TypeId::of::<crate::auditor::Auditor>() {
            self.record_audit = false;
        }
        self.builder = self.builder.factory(factory);
        self
    }

    /// Starts the backend; returns once it is ready.
    pub async fn start(self) -> Result<TestBackend> {
        let config = RootConfig::from_value(self.config);
        let mut builder = self.builder;
        if self.mock_auth {
            builder = builder.factory(mock::mock_auth_factory);
        }
        let audit_log = AuditLog::default();
        if self.record_audit {
            let log = audit_log.clone();
            builder = builder.factory(move |ctx: &ServiceContext<'_>| {
                let auditor = Auditor::from_config(ctx.plugin_id().unwrap_or("root"), ctx.config())
                    .map(|auditor| auditor.recording(log.clone()));
                Box::pin(std::future::ready(auditor)) as BoxFuture<'_, Result<Auditor>>
            });
        }
        let backend = builder.config(config).start().await?;
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Error::internal(format!("cannot build the test HTTP client: {e}")))?;
        Ok(TestBackend {
            backend,
            client,
            audit_log,
        })
    }
}

fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

/// A running backend for tests, with an HTTP client aimed at it.
///
/// ```no_run
/// # use backstage::prelude::*;
/// # #[backend_plugin(id = "carmen")] pub struct Carmen;
/// use backstage::testing::{mock, TestBackend};
///
/// # async fn example() {
/// let backend = TestBackend::builder().plugin::<Carmen>().start().await.unwrap();
/// let res = backend.get("/api/carmen/items").credentials(mock::user("user:default/alice")).send().await;
/// assert_eq!(res.status(), 200);
/// # }
/// ```
pub struct TestBackend {
    backend: Backend,
    client: reqwest::Client,
    audit_log: AuditLog,
}

impl fmt::Debug for TestBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBackend")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl TestBackend {
    /// A builder with no plugins and test defaults.
    pub fn builder() -> TestBackendBuilder {
        let config =
            serde_json::json!({ "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } });
        TestBackendBuilder {
            builder: Backend::builder(),
            config,
            mock_auth: true,
            record_audit: true,
        }
    }

    /// The audit events the plugins recorded, oldest first (they are logged as well), unless
    /// the test replaced the auditor.
    ///
    /// ```
    /// use backstage::prelude::*;
    /// use backstage::testing::{mock, TestBackend};
    ///
    /// #[backend_plugin(id = "vault")]
    /// pub struct Vault;
    ///
    /// #[routes]
    /// impl Vault {
    ///     #[route(post, "/rotate", audit = "key-rotate", severity = "critical")]
    ///     async fn rotate(&self) -> StatusCode {
    ///         StatusCode::NO_CONTENT
    ///     }
    /// }
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let backend = TestBackend::builder().plugin::<Vault>().start().await.unwrap();
    /// backend.post("/api/vault/rotate").credentials(mock::service("ci")).send().await;
    /// let events = backend.audit_log().events();
    /// assert_eq!(events[1].status, "succeeded");
    /// assert_eq!(events[1].actor_id.as_deref(), Some("ci"));
    /// # backend.stop().await.unwrap();
    /// # }
    /// ```
    pub fn audit_log(&self) -> &AuditLog {
        &self.audit_log
    }

    /// The backend under test.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        self.backend.url(path)
    }

    /// A request with `method` to `path` (`/api/carmen/items`).
    pub fn request(&self, method: Method, path: &str) -> TestRequest {
        TestRequest {
            builder: self.client.request(method, self.url(path)),
        }
    }

    /// A `GET` request.
    pub fn get(&self, path: &str) -> TestRequest {
        self.request(Method::GET, path)
    }

    /// A `POST` request.
    pub fn post(&self, path: &str) -> TestRequest {
        self.request(Method::POST, path)
    }

    /// A `PUT` request.
    pub fn put(&self, path: &str) -> TestRequest {
        self.request(Method::PUT, path)
    }

    /// A `PATCH` request.
    pub fn patch(&self, path: &str) -> TestRequest {
        self.request(Method::PATCH, path)
    }

    /// A `DELETE` request.
    pub fn delete(&self, path: &str) -> TestRequest {
        self.request(Method::DELETE, path)
    }

    /// Stops the backend (shutdown hooks run).
    pub async fn stop(self) -> Result<()> {
        self.backend.stop().await
    }
}

/// A request being built; [`TestRequest::send`] sends it.
#[must_use = "a request does nothing until `send` is called"]
pub struct TestRequest {
    builder: reqwest::RequestBuilder,
}

impl fmt::Debug for TestRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TestRequest")
    }
}

impl TestRequest {
    /// Sends `credentials` the way a real caller would (a bearer token, or the user cookie).
    pub fn credentials(mut self, credentials: mock::MockCredentials) -> Self {
        if let Some((name, value)) = credentials.header() {
            self.builder = self.builder.header(name, value);
        }
        self
    }

    /// Adds a header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.builder = self.builder.header(name, value);
        self
    }

    /// Sends `body` as JSON.
    pub fn json<T: Serialize + ?Sized>(mut self, body: &T) -> Self {
        self.builder = self.builder.json(body);
        self
    }

    /// Sends `body` as it is.
    pub fn body(mut self, body: impl Into<String>) -> Self {
        self.builder = self.builder.body(body.into());
        self
    }

    /// Sends the request and reads the whole response. Panics when the backend cannot be
    /// reached: in a test, that is the failure.
    pub async fn send(self) -> TestResponse {
        let response = match self.builder.send().await {
            Ok(response) => response,
            Err(e) => panic!("the test backend did not answer: {e}"),
        };
        let status = response.status();
        let headers = response.headers().clone();
        let body = match response.bytes().await {
            Ok(body) => body.to_vec(),
            Err(e) => panic!("the test backend's response body could not be read: {e}"),
        };
        TestResponse {
            status: StatusCode::from_u16(status.as_u16())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            headers: headers
                .iter()
                .filter_map(|(name, value)| {
                    Some((
                        HeaderName::from_bytes(name.as_str().as_bytes()).ok()?,
                        HeaderValue::from_bytes(value.as_bytes()).ok()?,
                    ))
                })
                .collect(),
            body,
        }
    }
}

/// A response, read whole.
pub struct TestResponse {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl fmt::Debug for TestResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestResponse")
            .field("status", &self.status)
            .field("body", &self.text())
            .finish()
    }
}

impl TestResponse {
    /// The status (compares with numbers: `res.status() == 200`).
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The headers.
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// A header's value as text.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name)?.to_str().ok()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as it came, byte for byte (compressed, when the request asked for it).
    pub fn bytes(&self) -> &[u8] {
        &self.body
    }

    /// The body parsed as JSON into `T`. Panics with the body when it does not parse.
    pub fn json<T: DeserializeOwned>(&self) -> T {
        match serde_json::from_slice(&self.body) {
            Ok(value) => value,
            Err(e) => panic!(
                "the response body is not the JSON expected ({e}): {}",
                self.text()
            ),
        }
    }

    /// The `error` part of a Backstage error body: `(name, message)`. Panics when the body is
    /// not one.
    pub fn error(&self) -> (String, String) {
        let body: Value = self.json();
        let error = body
            .get("error")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_else(Map::new);
        match (
            error.get("name").and_then(Value::as_str),
            error.get("message").and_then(Value::as_str),
        ) {
            (Some(name), Some(message)) => (name.to_owned(), message.to_owned()),
            _ => panic!(
                "the response is not a Backstage error body: {}",
                self.text()
            ),
        }
    }
}
