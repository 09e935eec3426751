//! The legal surface of `#[backend_module]`.
use backstage::plugin::BackendModule;
use backstage::prelude::*;

#[extension_point(plugin = "carmen")]
#[derive(Clone, Default)]
pub struct Styles(std::sync::Arc<std::sync::Mutex<Vec<String>>>);

#[backend_plugin(id = "carmen")]
pub struct Carmen {
    #[inject]
    styles: Styles,
}

/// A module with services, its plugin's extension point, an #[init] and a route.
#[backend_module(plugin = "carmen", id = "shout-v2")]
pub struct Shout {
    #[inject]
    styles: Styles,
    #[inject]
    logger: Logger,
    counter: std::sync::atomic::AtomicU32,
}

#[routes]
impl Shout {
    #[init]
    async fn init(&self) {
        self.styles.0.lock().unwrap().push("upper".into());
        self.logger.info("added");
    }

    #[route(get, "/shout", auth = "unauthenticated")]
    async fn shout(&self) -> String {
        self.counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst).to_string()
    }
}

/// A module without anything.
#[backend_module(plugin = "carmen", id = "empty")]
pub struct Empty;

pub(super) fn main() {
    assert_eq!(Shout::PLUGIN_ID, "carmen");
    assert_eq!(Shout::MODULE_ID, "shout-v2");
    assert_eq!(Shout::registration().dependencies.len(), 2);
    assert_eq!(Empty::MODULE_ID, "empty");
    let _ = |c: &Carmen| c.styles.clone();
}
