//! Start-up: discovery, the checks before any plugin initialises, ordering, readiness.

use std::sync::Mutex;
use std::time::Duration;

use crate::support::*;
use backstage::Backend;
use backstage::prelude::*;
use carmen_backend::Carmen;
use tokio::sync::{Notify, oneshot};

/// Two plugins that claim one id.
#[backend_plugin(id = "twin")]
pub struct TwinA;

#[backend_plugin(id = "twin")]
pub struct TwinB;

/// One plugin whose two #[routes] blocks declare the same route and two #[init]s.
#[backend_plugin(id = "doubled")]
pub struct Doubled;

#[routes]
impl Doubled {
    #[init]
    async fn first_init(&self) {}

    #[route(get, "/same")]
    async fn first(&self) -> &'static str {
        "first"
    }
}

#[routes]
impl Doubled {
    #[init]
    async fn second_init(&self) {}

    #[route(get, "/same")]
    async fn second(&self) -> &'static str {
        "second"
    }
}

#[tokio::test]
async fn every_problem_is_reported_at_once_with_its_place() {
    let err = Backend::builder()
        .plugin::<TwinA>()
        .plugin::<TwinB>()
        .plugin::<Doubled>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap_err()
        .to_string();
    let at =
        |snippet: &str, nth: usize| format!("tests/tests/it/startup.rs:{}", line_of(snippet, nth));
    assert!(err.contains("3 problem(s)"), "{err}");
    let twins = format!(
        "plugin id 'twin' is declared by 2 plugins: it::startup::TwinA at {}, it::startup::TwinB at {}",
        at("#[backend_plugin(id = \"twin\")]", 0),
        at("#[backend_plugin(id = \"twin\")]", 1)
    );
    assert!(err.contains(&twins), "{err}\nexpected: {twins}");
    let routes = format!(
        "plugin 'doubled' declares the route GET /same twice: at {} and at {}",
        at("#[route(get, \"/same\")]", 0),
        at("#[route(get, \"/same\")]", 1)
    );
    assert!(err.contains(&routes), "{err}\nexpected: {routes}");
    let inits = format!(
        "plugin 'doubled' has 2 #[init] functions (first_init at {}, second_init at {})",
        at("#[init]", 0),
        at("#[init]", 1)
    );
    assert!(err.contains(&inits), "{err}\nexpected: {inits}");
}

/// The 1-based line of the `nth` occurrence of `snippet` in this file.
fn line_of(snippet: &str, nth: usize) -> usize {
    let source = include_str!("startup.rs");
    source
        .lines()
        .enumerate()
        .filter(|(_, line)| line.trim() == snippet)
        .nth(nth)
        .expect(snippet)
        .0
        + 1
}

#[tokio::test]
async fn excluded_plugins_are_not_served() {
    let backend = Backend::builder()
        .plugin::<Carmen>()
        .plugin::<TwinA>()
        .exclude("carmen")
        .config_value(loopback_config());
    let backend = backend.start().await.unwrap();
    assert_eq!(backend.plugins(), ["twin"]);

    let (status, _, _) = read(
        client()
            .get(backend.url("/api/carmen/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

/// A plugin whose #[init] fails.
#[backend_plugin(id = "failing")]
pub struct Failing;

#[routes]
impl Failing {
    #[init]
    async fn init(&self) -> Result<()> {
        Err(Error::conflict("the disk is full"))
    }
}

#[tokio::test]
async fn a_failing_init_fails_start_up_naming_the_plugin_and_function() {
    let err = Backend::builder()
        .plugin::<Failing>()
        .plugin::<Carmen>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap_err();
    let err = err.to_string();
    assert!(err.contains("plugin 'failing'"), "{err}");
    assert!(
        err.contains("#[init] init (tests/tests/it/startup.rs:"),
        "{err}"
    );
    assert!(err.contains("the disk is full"), "{err}");
}

static GATE: Mutex<Option<(oneshot::Sender<String>, std::sync::Arc<Notify>)>> = Mutex::new(None);

/// A plugin whose #[init] reports the backend's URL and waits to be released.
#[backend_plugin(id = "gated")]
pub struct Gated {
    #[inject]
    discovery: Discovery,
}

#[routes]
impl Gated {
    #[init]
    async fn init(&self) {
        let (tx, release) = GATE.lock().unwrap().take().expect("the test sets the gate");
        tx.send(self.discovery.base_url("gated")).unwrap();
        release.notified().await;
    }

    #[route(get, "/hello", auth = "unauthenticated")]
    async fn hello(&self) -> &'static str {
        "hello"
    }
}

#[tokio::test]
async fn readiness_is_503_until_every_plugin_has_started() {
    let (tx, rx) = oneshot::channel();
    let release = std::sync::Arc::new(Notify::new());
    *GATE.lock().unwrap() = Some((tx, release.clone()));
    let starting = tokio::spawn(
        Backend::builder()
            .plugin::<Gated>()
            .config_value(loopback_config())
            .start(),
    );
    let plugin_url = tokio::time::timeout(Duration::from_secs(10), rx)
        .await
        .unwrap()
        .unwrap();
    let base = plugin_url.trim_end_matches("/api/gated").to_owned();

    let (status, _, body) = read(
        client()
            .get(format!("{base}/.backstage/health/v1/readiness"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 503);
    assert_eq!(
        body,
        r#"{"message":"Backend has not started yet","status":"error"}"#
    );
    let (status, _, body) = read(
        client()
            .get(format!("{base}/.backstage/health/v1/liveness"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, _, body) = read(
        client()
            .get(format!("{plugin_url}/hello"))
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
            "Service has not started up yet",
            "GET",
            "/hello",
            503
        )
    );

    release.notify_one();
    let backend = starting.await.unwrap().unwrap();
    let (status, _, body) = read(
        client()
            .get(format!("{base}/.backstage/health/v1/readiness"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    assert_eq!(
        read(
            client()
                .get(format!("{plugin_url}/hello"))
                .send()
                .await
                .unwrap()
        )
        .await
        .2,
        "hello"
    );
    backend.stop().await.unwrap();
}

static EVENTS: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn record(event: &str) {
    EVENTS.lock().unwrap().push(event.to_owned());
}

/// A plugin that records when its hooks run.
#[backend_plugin(id = "hooked")]
pub struct Hooked {
    #[inject]
    lifecycle: Lifecycle,
    #[inject]
    root_lifecycle: RootLifecycle,
    #[inject]
    health: RootHealth,
}

#[routes]
impl Hooked {
    #[init]
    async fn init(&self, #[inject] config: RootConfig) -> Result<()> {
        record(&format!(
            "init sees config: {}",
            config.has("backend.listen")
        ));
        let health = self.health.clone();
        self.lifecycle.add_startup_hook(move || async move {
            record(&format!(
                "plugin startup, readiness {}",
                health.readiness().0
            ));
            Ok(())
        });
        self.root_lifecycle.add_startup_hook(|| async {
            record("root startup");
            Ok(())
        });
        self.lifecycle.add_shutdown_hook(|| async {
            record("plugin shutdown");
            Err(Error::internal("a failing hook does not stop the others"))
        });
        self.root_lifecycle.add_shutdown_hook(|| async {
            record("root shutdown");
            Ok(())
        });
        Ok(())
    }
}

#[tokio::test]
async fn hooks_run_in_backstage_order() {
    EVENTS.lock().unwrap().clear();
    let backend = Backend::builder()
        .plugin::<Hooked>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap();
    assert_eq!(
        *EVENTS.lock().unwrap(),
        [
            "init sees config: true",
            "plugin startup, readiness 503",
            "root startup"
        ]
    );
    backend.stop().await.unwrap();
    assert_eq!(
        *EVENTS.lock().unwrap(),
        [
            "init sees config: true",
            "plugin startup, readiness 503",
            "root startup",
            "plugin shutdown",
            "root shutdown"
        ]
    );
}
