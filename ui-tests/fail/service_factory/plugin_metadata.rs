use backstage::prelude::*;

#[service_factory]
async fn metadata(#[inject] meta: PluginMetadata) -> PluginMetadata {
    meta
}

fn main() {}
