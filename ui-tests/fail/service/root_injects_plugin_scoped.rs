use backstage::prelude::*;

#[service(scope = "root")]
#[derive(Clone)]
pub struct Audit {
    #[inject]
    logger: Logger,
    #[inject]
    config: RootConfig,
}

#[service]
#[derive(Clone)]
pub struct PerPlugin {
    #[inject]
    meta: PluginMetadata,
}

#[service(scope = "root")]
#[derive(Clone)]
pub struct Registry {
    #[inject]
    per_plugin: PerPlugin,
}

fn main() {}
