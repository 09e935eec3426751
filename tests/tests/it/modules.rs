//! Modules, extension points, multitons, overrides, boot-failure policies and start-up order.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::support::*;
use backstage::plugin::{BoxFuture, Multi, ServiceContext};
use backstage::prelude::*;
use backstage::{Backend, InstanceMetadata};
use carmen_backend::{Carmen, Greeter};
use carmen_module_shout::Shout;
use serde_json::json;

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(event: impl Into<String>) {
    EVENTS.lock().unwrap().push(event.into());
}

fn events_with(prefix: &str) -> Vec<String> {
    EVENTS
        .lock()
        .unwrap()
        .iter()
        .filter(|e| e.starts_with(prefix))
        .cloned()
        .collect()
}

// ---- ordering: modules before their plugin; a module providing an extension point after the
// modules that use it.

/// Owned by plugin `ordered`.
#[extension_point(plugin = "ordered")]
#[derive(Clone, Default)]
pub struct Steps(Arc<Mutex<Vec<String>>>);

/// Owned by module `provider` of plugin `ordered`.
#[extension_point(plugin = "ordered", module = "provider")]
#[derive(Clone, Default)]
pub struct ProviderInputs(Arc<Mutex<Vec<String>>>);

#[backend_plugin(id = "ordered")]
pub struct Ordered {
    #[inject]
    steps: Steps,
    #[inject]
    lifecycle: Lifecycle,
}

#[routes]
impl Ordered {
    #[init]
    async fn init(&self) {
        let steps = self.steps.0.lock().unwrap().clone();
        record(format!("ordered: plugin init sees {steps:?}"));
        self.lifecycle.add_startup_hook(|| async {
            record("ordered: startup hook");
            Ok(())
        });
    }

    #[route(get, "/steps", auth = "unauthenticated")]
    async fn steps(&self) -> Json<Vec<String>> {
        Json(self.steps.0.lock().unwrap().clone())
    }
}

/// Provides `ProviderInputs`, so it starts after `consumer`, which uses it.
#[backend_module(plugin = "ordered", id = "provider")]
pub struct Provider {
    #[inject]
    inputs: ProviderInputs,
    #[inject]
    steps: Steps,
}

#[routes]
impl Provider {
    #[init]
    async fn init(&self) {
        let inputs = self.inputs.0.lock().unwrap().clone();
        record(format!("ordered: provider sees {inputs:?}"));
        self.steps.0.lock().unwrap().push("provider".into());
    }

    #[route(get, "/from-module", auth = "unauthenticated")]
    async fn module_route(&self) -> &'static str {
        "served by a module"
    }
}

/// Named so it sorts before `provider` would not matter: it must run first anyway.
#[backend_module(plugin = "ordered", id = "zz-consumer")]
pub struct Consumer {
    #[inject]
    inputs: ProviderInputs,
    #[inject]
    steps: Steps,
}

#[routes]
impl Consumer {
    #[init]
    async fn init(&self) {
        record("ordered: consumer init");
        self.inputs.0.lock().unwrap().push("from consumer".into());
        self.steps.0.lock().unwrap().push("consumer".into());
    }
}

#[tokio::test]
async fn modules_start_before_their_plugin_and_providers_after_consumers() {
    let backend = Backend::builder()
        .plugin::<Ordered>()
        .module::<Provider>()
        .module::<Consumer>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap();
    assert_eq!(
        events_with("ordered:"),
        [
            "ordered: consumer init",
            "ordered: provider sees [\"from consumer\"]",
            "ordered: plugin init sees [\"consumer\", \"provider\"]",
            "ordered: startup hook",
        ]
    );
    let body = read(
        client()
            .get(backend.url("/api/ordered/steps"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .2;
    assert_eq!(body, r#"["consumer","provider"]"#);
    let body = read(
        client()
            .get(backend.url("/api/ordered/from-module"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .2;
    assert_eq!(body, "served by a module");
    backend.stop().await.unwrap();
}

// ---- the example module, through carmen's extension point

#[tokio::test]
async fn the_shout_module_styles_carmens_greetings() {
    let greet = |backend: &Backend| {
        client()
            .post(backend.url("/api/carmen/greetings"))
            .bearer_auth(SERVICE_TOKEN)
            .json(&json!({"name": "Ada"}))
            .send()
    };
    let plain = Backend::builder()
        .plugin::<Carmen>()
        .config_value(loopback_config())
        .service(test_auth())
        .start()
        .await
        .unwrap();
    assert_eq!(
        read(greet(&plain).await.unwrap()).await.2,
        r#"{"message":"Hello, Ada!"}"#
    );

    let config = json!({ "carmen": { "greeting": "Hi" }, "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } });
    let shouting = Backend::builder()
        .plugin::<Carmen>()
        .module::<Shout>()
        .config_value(config)
        .service(test_auth())
        .start()
        .await
        .unwrap();
    assert_eq!(
        read(greet(&shouting).await.unwrap()).await.2,
        r#"{"message":"HI, ADA!"}"#
    );
}

// ---- multitons

/// Something several crates may implement.
pub trait Check: Send + Sync {
    fn name(&self) -> String;
}

/// Nobody implements this one.
pub trait Unused: Send + Sync {}

#[service(scope = "root", provides = dyn Check, id = "tests.check-b")]
#[derive(Clone)]
pub struct CheckB;
impl Check for CheckB {
    fn name(&self) -> String {
        "b".into()
    }
}

#[service(provides = dyn Check, id = "tests.check-a")]
#[derive(Clone)]
pub struct CheckA {
    #[inject]
    meta: PluginMetadata,
}
impl Check for CheckA {
    fn name(&self) -> String {
        format!("a for {}", self.meta.id())
    }
}

#[backend_plugin(id = "checks")]
pub struct Checks {
    #[inject]
    checks: Multi<dyn Check>,
    #[inject]
    unused: Multi<dyn Unused>,
}

#[routes]
impl Checks {
    #[route(get, "/", auth = "unauthenticated")]
    async fn list(&self) -> String {
        let names: Vec<String> = self.checks.iter().map(|c| c.name()).collect();
        format!("{} / {}", names.join(", "), self.unused.len())
    }
}

#[tokio::test]
async fn a_multiton_collects_every_implementation_and_is_empty_without_any() {
    let backend = Backend::builder()
        .plugin::<Checks>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap();
    let body = read(
        client()
            .get(backend.url("/api/checks/"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .2;
    assert_eq!(body, "a for checks, b / 0");
}

// ---- overrides

fn shouting_greeter<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Greeter>> {
    Box::pin(async move {
        // decorate the default implementation
        let default = ctx.default_of::<Greeter>().await?;
        record(format!(
            "override: built for {}",
            ctx.plugin_id().unwrap_or("root")
        ));
        Ok(default)
    })
}

#[tokio::test]
async fn a_factory_override_can_wrap_the_default() {
    let backend = Backend::builder()
        .plugin::<Carmen>()
        .factory(shouting_greeter)
        .config_value(loopback_config())
        .service(test_auth())
        .start()
        .await
        .unwrap();
    assert_eq!(events_with("override:"), ["override: built for carmen"]);
    let response = client()
        .post(backend.url("/api/carmen/greetings"))
        .bearer_auth(SERVICE_TOKEN)
        .json(&json!({"name": "Ada"}))
        .send();
    assert_eq!(
        read(response.await.unwrap()).await.2,
        r#"{"message":"Hello, Ada!"}"#
    );
}

#[tokio::test]
async fn two_overrides_of_one_service_name_both_places() {
    let first_line = line!() + 3;
    let err = Backend::builder()
        .plugin::<Carmen>()
        .service(test_auth())
        .service(test_auth())
        .config_value(loopback_config())
        .start()
        .await
        .unwrap_err()
        .to_string();
    let expected = format!(
        "service 'core.auth' is replaced 2 times: at tests/tests/it/modules.rs:{first_line} and at tests/tests/it/modules.rs:{}",
        first_line + 1
    );
    assert!(err.contains(&expected), "{err}\nexpected: {expected}");
}

fn fake_metadata<'a>(_ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<PluginMetadata>> {
    Box::pin(async { Err(Error::internal("never called")) })
}

#[tokio::test]
async fn plugin_metadata_cannot_be_replaced() {
    let err = Backend::builder()
        .plugin::<Carmen>()
        .factory(fake_metadata)
        .config_value(loopback_config())
        .start()
        .await;
    let err = err.unwrap_err().to_string();
    assert!(
        err.contains(
            "service 'core.pluginMetadata' cannot be replaced (at tests/tests/it/modules.rs:"
        ),
        "{err}"
    );
}

// ---- boot failures

#[backend_plugin(id = "broken")]
pub struct Broken;

#[routes]
impl Broken {
    #[init]
    async fn init(&self) -> Result<()> {
        Err(Error::internal("the broken plugin's database is gone"))
    }

    #[route(get, "/x", auth = "unauthenticated")]
    async fn x(&self) -> &'static str {
        "never"
    }
}

static FRAGILE_RAN: AtomicUsize = AtomicUsize::new(0);

#[backend_module(plugin = "carmen", id = "fragile")]
pub struct Fragile;

#[routes]
impl Fragile {
    #[init]
    async fn init(&self) -> Result<()> {
        FRAGILE_RAN.fetch_add(1, Ordering::SeqCst);
        Err(Error::internal("the fragile module broke"))
    }
}

fn startup_config(startup: serde_json::Value) -> serde_json::Value {
    json!({ "backend": { "listen": { "host": "127.0.0.1", "port": 0 }, "startup": startup } })
}

#[tokio::test]
async fn a_plugin_allowed_to_fail_answers_503_and_the_rest_serve() {
    let config =
        startup_config(json!({ "plugins": { "broken": { "onPluginBootFailure": "continue" } } }));
    let backend = Backend::builder()
        .plugin::<Broken>()
        .plugin::<Carmen>()
        .config_value(config)
        .start()
        .await
        .unwrap();
    let (status, _, body) = read(
        client()
            .get(backend.url("/api/broken/x"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        error_body(
            "ServiceUnavailableError",
            "Plugin 'broken' failed to start; its routes are unavailable",
            "GET",
            "/x",
            503
        )
    );
    let (status, _, _) = read(
        client()
            .get(backend.url("/api/carmen/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    let (status, _, _) = read(
        client()
            .get(backend.url("/.backstage/health/v1/readiness"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn the_default_policy_aborts_and_names_the_plugin() {
    let err = Backend::builder()
        .plugin::<Broken>()
        .plugin::<Carmen>()
        .config_value(loopback_config())
        .start()
        .await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("plugin 'broken'"), "{err}");
    assert!(
        err.contains("the broken plugin's database is gone"),
        "{err}"
    );

    let config = startup_config(json!({ "default": { "onPluginBootFailure": "continue" } }));
    let backend = Backend::builder()
        .plugin::<Broken>()
        .config_value(config)
        .start()
        .await
        .unwrap();
    assert_eq!(
        read(
            client()
                .get(backend.url("/api/broken/x"))
                .send()
                .await
                .unwrap()
        )
        .await
        .0,
        503
    );
}

#[tokio::test]
async fn a_module_allowed_to_fail_is_skipped_and_its_plugin_serves() {
    let err = Backend::builder()
        .plugin::<Carmen>()
        .module::<Fragile>()
        .config_value(loopback_config())
        .start()
        .await;
    let err = err.unwrap_err().to_string();
    assert!(err.contains("module 'fragile'"), "{err}");
    assert!(err.contains("the fragile module broke"), "{err}");

    for startup in [
        json!({ "plugins": { "carmen": { "modules": { "fragile": { "onPluginModuleBootFailure": "continue" } } } } }),
        json!({ "default": { "onPluginModuleBootFailure": "continue" } }),
    ] {
        let before = FRAGILE_RAN.load(Ordering::SeqCst);
        let backend = Backend::builder()
            .plugin::<Carmen>()
            .module::<Fragile>()
            .config_value(startup_config(startup))
            .start()
            .await
            .unwrap();
        assert_eq!(FRAGILE_RAN.load(Ordering::SeqCst), before + 1);
        assert_eq!(
            read(
                client()
                    .get(backend.url("/api/carmen/health"))
                    .send()
                    .await
                    .unwrap()
            )
            .await
            .0,
            200
        );
    }
}

// ---- start-up errors about modules

#[backend_module(plugin = "carmen", id = "shout")]
pub struct SecondShout;

#[backend_module(plugin = "nobody", id = "lonely")]
pub struct Lonely;

/// Two modules that each provide an extension point the other uses.
#[extension_point(plugin = "loop", module = "left")]
#[derive(Clone, Default)]
pub struct LeftPoint;

#[extension_point(plugin = "loop", module = "right")]
#[derive(Clone, Default)]
pub struct RightPoint;

#[backend_plugin(id = "loop")]
pub struct Loop;

#[backend_module(plugin = "loop", id = "left")]
#[allow(dead_code)]
pub struct Left {
    #[inject]
    right: RightPoint,
}

#[backend_module(plugin = "loop", id = "right")]
#[allow(dead_code)]
pub struct Right {
    #[inject]
    left: LeftPoint,
}

#[tokio::test]
async fn module_problems_are_reported_together() {
    let err = Backend::builder()
        .plugin::<Carmen>()
        .plugin::<Loop>()
        .module::<Shout>()
        .module::<SecondShout>()
        .module::<Lonely>()
        .module::<Left>()
        .module::<Right>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 problem(s)"), "{err}");
    assert!(
        err.contains("plugin 'carmen' has two modules with id 'shout'"),
        "{err}"
    );
    assert!(
        err.contains("module 'lonely' (it::modules::Lonely at tests/tests/it/modules.rs:"),
        "{err}"
    );
    assert!(
        err.contains("extends plugin 'nobody', which is not part of this backend"),
        "{err}"
    );
    assert!(
        err.contains(
            "modules of plugin 'loop' wait on each other's extension points in a cycle: 'left' at"
        ),
        "{err}"
    );
}

// ---- instance metadata and progress logs

#[backend_plugin(id = "slow")]
pub struct Slow {
    #[inject]
    meta: InstanceMetadata,
}

#[routes]
impl Slow {
    #[init]
    async fn init(&self) {
        // Past the 3 s after which start-up reports who is still initializing, with a margin
        // for a loaded machine.
        tokio::time::sleep(std::time::Duration::from_millis(4500)).await;
    }

    #[route(get, "/installed", auth = "unauthenticated")]
    async fn installed(&self) -> String {
        let plugins: Vec<String> = self
            .meta
            .plugins()
            .iter()
            .map(|p| format!("{}{:?}", p.id, p.modules))
            .collect();
        plugins.join(" ")
    }
}

/// A plugin and module beside the slow one, for the test below.
#[backend_plugin(id = "host")]
pub struct Host;

#[backend_module(plugin = "host", id = "guest")]
pub struct Guest;

#[backstage::test]
async fn slow_plugins_are_reported_while_they_start_and_metadata_lists_everything() {
    let captured = logs();
    let backend = Backend::builder()
        .plugin::<Slow>()
        .plugin::<Host>()
        .module::<Guest>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap();
    let logs = captured.text();
    assert!(
        logs.contains("Plugin initialization in progress, still initializing: slow"),
        "{logs}"
    );
    assert!(!logs.contains("still initializing: host"), "{logs}");
    assert!(logs.contains("Modules discovered: host.guest"), "{logs}");
    let body = read(
        client()
            .get(backend.url("/api/slow/installed"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .2;
    assert_eq!(body, r#"host["guest"] slow[]"#);
}
