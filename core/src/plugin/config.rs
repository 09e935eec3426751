//! The config as something to inject: the whole (`RootConfig`, a root service) and a
//! plugin's own section (`PluginConfig<T>`).

use serde::de::DeserializeOwned;

use super::{BoxFuture, Inject, Root, Service, ServiceContext};
use crate::config::{PluginConfig, RootConfig};
use crate::error::{Error, Result};

impl Service for RootConfig {
    type Scope = Root;
    const ID: &'static str = "core.rootConfig";
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move { Ok(ctx.config().clone()) })
    }
}

impl<T: DeserializeOwned + Send + Sync + 'static> Inject for PluginConfig<T> {
    const ID: &'static str = "core.pluginConfig";

    fn inject<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let Some(plugin) = ctx.plugin_id() else {
                return Err(Error::internal(
                    "PluginConfig can only be injected into a plugin or its services",
                ));
            };
            let value: T = ctx.config().get_section(plugin)?;
            Ok(PluginConfig::new(value))
        })
    }
}

crate::plugin::register!(root RootConfig);
