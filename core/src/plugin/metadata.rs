//! The `rootInstanceMetadata` service: what this backend instance runs.

use std::sync::Arc;

use super::{BoxFuture, ModuleRegistration, PluginRegistration, Root, Service, ServiceContext};
use crate::error::Result;

/// One plugin of this backend and its modules.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledPlugin {
    /// The plugin id.
    pub id: &'static str,
    /// The ids of its modules, sorted.
    pub modules: Vec<&'static str>,
}

/// The plugins installed in this backend instance, sorted by id, with their modules.
///
/// ```
/// # async fn example(meta: backstage::backend::InstanceMetadata) {
/// for plugin in meta.plugins() {
///     println!("{}: {:?}", plugin.id, plugin.modules);
/// }
/// # }
/// ```
#[derive(Clone, Debug, Default)]
pub struct InstanceMetadata {
    plugins: Arc<[InstalledPlugin]>,
}

impl InstanceMetadata {
    pub(crate) fn new(plugins: &[&PluginRegistration], modules: &[&ModuleRegistration]) -> Self {
        let plugins = plugins
            .iter()
            .map(|plugin| InstalledPlugin {
                id: plugin.id,
                modules: modules
                    .iter()
                    .filter(|m| m.plugin_id == plugin.id)
                    .map(|m| m.module_id)
                    .collect(),
            })
            .collect();
        InstanceMetadata { plugins }
    }

    /// The installed plugins.
    pub fn plugins(&self) -> &[InstalledPlugin] {
        &self.plugins
    }
}

impl Service for InstanceMetadata {
    type Scope = Root;
    const ID: &'static str = "core.rootInstanceMetadata";
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move { Ok(ctx.instance_metadata().clone()) })
    }
}

crate::plugin::register!(root InstanceMetadata);
