//! The legal surface of `#[backend_plugin]`.
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;

use backstage::prelude::*;

/// A unit plugin: no dependencies.
#[backend_plugin(id = "unit")]
pub struct Unit;

/// Every core service, and fields built with `Default`.
#[backend_plugin(id = "carmen-items-v2")]
pub struct Everything {
    #[inject]
    logger: Logger,
    #[inject]
    root_logger: RootLogger,
    #[inject]
    config: RootConfig,
    #[inject]
    router: HttpRouter,
    #[inject]
    root_router: RootHttpRouter,
    #[inject]
    lifecycle: Lifecycle,
    #[inject]
    root_lifecycle: RootLifecycle,
    #[inject]
    health: RootHealth,
    #[inject]
    meta: PluginMetadata,
    #[inject]
    discovery: Discovery,
    #[inject]
    auth: Auth,
    #[inject]
    http_auth: HttpAuth,
    #[inject]
    user_info: UserInfo,
    hits: AtomicU64,
    names: Mutex<Vec<String>>,
    #[allow(dead_code)]
    note: Option<String>,
}

pub(super) fn main() {
    use backstage::plugin::BackendPlugin;
    assert_eq!(Unit::ID, "unit");
    assert_eq!(Everything::ID, "carmen-items-v2");
    assert_eq!(Everything::DEPENDENCIES.len(), 13);
    assert_eq!(Everything::DEPENDENCIES[0].field, "logger");
    assert_eq!(Everything::DEPENDENCIES[0].service, "core.logger");
    let _ = |e: &Everything| {
        let _ = (&e.logger, &e.root_logger, &e.config, &e.router, &e.root_router, &e.lifecycle, &e.root_lifecycle);
        let _ = (&e.health, &e.meta, &e.discovery, &e.auth, &e.http_auth, &e.user_info, &e.hits, &e.names);
    };
}
