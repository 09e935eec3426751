//! A dependency cycle among services fails start-up before any plugin initialises.
//!
//! Custom services submit a `ServiceRegistration` for each service; this test submits two that
//! depend on each other, as two custom services in a cycle would.

#[path = "it/support/mod.rs"]
mod support;

use backstage::Backend;
use backstage::plugin::ServiceRegistration;
use carmen_backend::Carmen;
use support::*;

backstage::__private::inventory::submit! {
    ServiceRegistration { id: "test.alpha", root: true, dependencies: &["test.beta"], file: "tests/alpha.rs", line: 3, eager: None }
}
backstage::__private::inventory::submit! {
    ServiceRegistration { id: "test.beta", root: true, dependencies: &["core.rootConfig", "test.alpha"], file: "tests/beta.rs", line: 7, eager: None }
}

#[tokio::test]
async fn a_service_cycle_is_one_clear_start_up_error() {
    let err = Backend::builder()
        .plugin::<Carmen>()
        .config_value(loopback_config())
        .start()
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 problem(s)"), "{err}");
    assert!(
        err.contains("services depend on each other in a cycle: test.alpha -> test.beta -> test.alpha (test.alpha at tests/alpha.rs:3, test.beta at tests/beta.rs:7)"),
        "{err}"
    );
}
