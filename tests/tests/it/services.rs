//! Custom services: `#[service]` structs with their own dependencies, their scopes, and
//! overrides.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::support::*;
use backstage::Backend;
use backstage::prelude::*;

static ROOT_BUILT: AtomicUsize = AtomicUsize::new(0);

/// Root-scoped: one per backend.
#[service(scope = "root", id = "tests.counter")]
#[derive(Clone)]
pub struct Counter {
    #[inject]
    config: RootConfig,
    hits: Arc<AtomicUsize>,
    _built: Built,
}

#[derive(Clone)]
struct Built;
impl Default for Built {
    fn default() -> Self {
        ROOT_BUILT.fetch_add(1, Ordering::SeqCst);
        Built
    }
}

impl Counter {
    fn hit(&self) -> usize {
        self.hits.fetch_add(1, Ordering::SeqCst) + 1
    }
}

/// Plugin-scoped: one per plugin, with a plugin-scoped and a root dependency.
#[service]
#[derive(Clone)]
pub struct Greeter {
    #[inject]
    meta: PluginMetadata,
    #[inject]
    counter: Counter,
}

impl Greeter {
    fn greet(&self) -> String {
        let greeting: String = self
            .counter
            .config
            .get_optional("greeting")
            .unwrap()
            .unwrap_or_else(|| "hello".into());
        format!(
            "{greeting} from {} ({})",
            self.meta.id(),
            self.counter.hit()
        )
    }
}

#[backend_plugin(id = "first")]
pub struct First {
    #[inject]
    greeter: Greeter,
}

#[routes]
impl First {
    #[route(get, "/greet", auth = "unauthenticated")]
    async fn greet(&self, #[inject] again: Greeter) -> String {
        format!("{} / {}", self.greeter.greet(), again.greet())
    }
}

#[backend_plugin(id = "second")]
pub struct Second {
    #[inject]
    greeter: Greeter,
}

#[routes]
impl Second {
    #[route(get, "/greet", auth = "unauthenticated")]
    async fn greet(&self) -> String {
        self.greeter.greet()
    }
}

#[tokio::test]
async fn plugin_services_are_per_plugin_and_root_services_shared() {
    let config = serde_json::json!({ "greeting": "hi", "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } });
    let backend = Backend::builder()
        .plugin::<First>()
        .plugin::<Second>()
        .config_value(config)
        .start()
        .await
        .unwrap();
    let first = read(
        client()
            .get(backend.url("/api/first/greet"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .2;
    assert_eq!(first, "hi from first (1) / hi from first (2)");
    let second = read(
        client()
            .get(backend.url("/api/second/greet"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .2;
    assert_eq!(
        second, "hi from second (3)",
        "one counter for the whole backend"
    );
    assert_eq!(ROOT_BUILT.load(Ordering::SeqCst), 1);
    assert_eq!(<Counter as backstage::plugin::Service>::ID, "tests.counter");
    assert_eq!(
        <Greeter as backstage::plugin::Service>::ID,
        "it::services::Greeter"
    );
    assert_eq!(
        <Greeter as backstage::plugin::Service>::DEPENDENCIES,
        ["core.pluginMetadata", "tests.counter"]
    );
    backend.stop().await.unwrap();
}

/// A service finished by its `init` method after injection.
#[service(scope = "root", init = connect)]
#[derive(Clone)]
pub struct Connection {
    #[inject]
    config: RootConfig,
    url: Option<String>,
}

impl Connection {
    async fn connect(&mut self) -> Result<()> {
        let url: String = self.config.get("connection.url")?;
        self.url = Some(format!("connected to {url}"));
        Ok(())
    }
}

#[backend_plugin(id = "connected")]
pub struct Connected {
    #[inject]
    connection: Connection,
}

#[routes]
impl Connected {
    #[route(get, "/", auth = "unauthenticated")]
    async fn show(&self) -> String {
        self.connection.url.clone().unwrap_or_default()
    }
}

#[tokio::test]
async fn a_service_init_finishes_it_and_its_failure_stops_start_up() {
    let config = serde_json::json!({ "connection": { "url": "db:5432" }, "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } });
    let backend = Backend::builder()
        .plugin::<Connected>()
        .config_value(config)
        .start()
        .await
        .unwrap();
    let body = read(
        client()
            .get(backend.url("/api/connected/"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .2;
    assert_eq!(body, "connected to db:5432");

    let err = Backend::builder()
        .plugin::<Connected>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap_err();
    let err = err.to_string();
    assert!(
        err.contains("root service it::services::Connection"),
        "{err}"
    );
    assert!(
        err.contains("missing required config value at 'connection.url'"),
        "{err}"
    );
}
