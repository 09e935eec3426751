//! A module for `carmen`: makes every greeting shout, through carmen's `GreetingStyles`
//! extension point. Link it next to carmen with `use carmen_module_shout as _;`.
//!
//! Turn it off per deployment without relinking: exclude the module's plugin, or let it fail
//! with `backend.startup.plugins.carmen.modules.shout.onPluginModuleBootFailure: continue`.

use backstage::prelude::*;
use carmen_backend::GreetingStyles;

/// The module: injects carmen's extension point and adds a style in its `#[init]`.
#[backend_module(plugin = "carmen", id = "shout")]
pub struct Shout {
    #[inject]
    styles: GreetingStyles,
    #[inject]
    logger: Logger,
}

#[routes]
impl Shout {
    #[init]
    async fn init(&self) {
        self.styles.add(|greeting| greeting.to_uppercase());
        self.logger.info("greetings will shout");
    }
}
