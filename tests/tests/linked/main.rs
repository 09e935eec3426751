//! What linking alone does: plugins found in crates this binary names, `#[service_factory]`
//! replacements from linked crates, and modules whose plugin is not linked. (Registrations are
//! process-wide, so these live in their own test binary.)

#[path = "../it/support/mod.rs"]
mod support;

use backstage::Backend;
use backstage::prelude::*;
// Naming the crate is what links carmen's registration into this binary.
use carmen_backend as _;
use support::*;

/// A service with a default that a linked `#[service_factory]` replaces.
#[service(id = "tests.clock")]
#[derive(Clone, Default)]
pub struct Clock {
    fixed: Option<&'static str>,
}

#[service_factory]
async fn fixed_clock(#[inject] meta: PluginMetadata) -> Result<Clock> {
    let fixed = if meta.id() == "timely" {
        "noon"
    } else {
        "midnight"
    };
    Ok(Clock { fixed: Some(fixed) })
}

#[backend_plugin(id = "timely")]
pub struct Timely {
    #[inject]
    clock: Clock,
}

#[routes]
impl Timely {
    #[route(get, "/now", auth = "unauthenticated")]
    async fn now(&self) -> &'static str {
        self.clock.fixed.unwrap_or("default")
    }
}

/// A module whose plugin no crate in this binary declares.
#[backend_module(plugin = "absent", id = "orphan")]
pub struct Orphan;

#[tokio::test]
async fn a_linked_service_factory_replaces_the_default() {
    let backend = Backend::builder()
        .plugin::<Timely>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap();
    let body = read(
        client()
            .get(backend.url("/api/timely/now"))
            .send()
            .await
            .unwrap(),
    )
    .await
    .2;
    assert_eq!(body, "noon");
}

#[tokio::test]
async fn a_code_override_beside_a_linked_one_is_an_error_naming_both() {
    let line = line!() + 3;
    let builder = Backend::builder()
        .plugin::<Timely>()
        .service(Clock::default())
        .config_value(loopback_config());
    let err = builder.start().await.unwrap_err().to_string();
    let factory_line = include_str!("main.rs")
        .lines()
        .position(|l| l == "#[service_factory]")
        .unwrap()
        + 1;
    let expected = format!(
        "service 'tests.clock' is replaced 2 times: at tests/tests/linked/main.rs:{line} and at tests/tests/linked/main.rs:{factory_line}"
    );
    assert!(err.contains(&expected), "{err}\nexpected: {expected}");
}

#[tokio::test]
async fn a_linked_module_without_its_plugin_fails_start_up() {
    let err = Backend::builder()
        .all_linked()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("module 'orphan' (linked::Orphan at tests/tests/linked/main.rs:")
            && err.contains("extends plugin 'absent'"),
        "{err}"
    );
    // leaving out the plugin id leaves out its modules
    let backend = Backend::builder()
        .all_linked()
        .exclude("absent")
        .config_value(loopback_config())
        .start()
        .await
        .unwrap();
    assert_eq!(backend.plugins(), ["carmen", "timely"]);
}

#[tokio::test]
async fn linked_plugins_are_discovered_in_a_crate_outside_the_plugins_own() {
    let backend = Backend::builder()
        .all_linked()
        .exclude("absent")
        .exclude("timely")
        .config_value(loopback_config())
        .start()
        .await
        .unwrap();
    assert_eq!(backend.plugins(), ["carmen"]);
    let (status, _, body) = read(
        client()
            .get(backend.url("/api/carmen/health"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    backend.stop().await.unwrap();
}
