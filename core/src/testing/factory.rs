//! Build one service in isolation, with chosen dependencies.

use std::any::TypeId;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};

use crate::config::RootConfig;
use crate::error::Result;
use crate::plugin::{Instances, Override, PluginInstances, Registry, Service, ServiceContext};

/// Builds services the way a backend does, without a backend: for testing one service's
/// factory with chosen dependencies.
///
/// ```
/// use backstage::testing::ServiceFactoryTester;
/// use backstage::{Discovery, PluginMetadata};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let tester = ServiceFactoryTester::new()
///     .config(serde_json::json!({ "backend": { "baseUrl": "https://backstage.example.com" } }));
/// let discovery: Discovery = tester.get().await.unwrap();
/// assert_eq!(discovery.external_base_url("catalog"), "https://backstage.example.com/api/catalog");
/// let meta: PluginMetadata = tester.get_for_plugin("carmen").await.unwrap();
/// assert_eq!(meta.id(), "carmen");
/// # });
/// ```
pub struct ServiceFactoryTester {
    registry: Arc<Registry>,
    plugins: Mutex<HashMap<&'static str, Arc<PluginInstances>>>,
}

impl fmt::Debug for ServiceFactoryTester {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ServiceFactoryTester")
    }
}

impl Default for ServiceFactoryTester {
    fn default() -> Self {
        Self::new()
    }
}

impl ServiceFactoryTester {
    /// A tester with an empty config and every default factory.
    pub fn new() -> Self {
        Self::with(RootConfig::empty(), HashMap::new())
    }

    fn with(config: RootConfig, overrides: HashMap<TypeId, Override>) -> Self {
        let registry = Registry {
            config,
            bound: None,
            root: Instances::default(),
            overrides,
            metadata: crate::backend::InstanceMetadata::default(),
        };
        ServiceFactoryTester {
            registry: Arc::new(registry),
            plugins: Mutex::default(),
        }
    }

    fn parts(self) -> (RootConfig, HashMap<TypeId, Override>) {
        let registry = Arc::try_unwrap(self.registry).unwrap_or_else(|shared| Registry {
            config: shared.config.clone(),
            bound: None,
            root: Instances::default(),
            overrides: shared.overrides.clone(),
            metadata: crate::backend::InstanceMetadata::default(),
        });
        (registry.config, registry.overrides)
    }

    /// Uses `config` as the root config.
    pub fn config(self, config: serde_json::Value) -> Self {
        let (_, overrides) = self.parts();
        Self::with(RootConfig::from_value(config), overrides)
    }

    /// Gives every service that depends on `S` this `instance`.
    #[track_caller]
    pub fn service<S: Service>(self, instance: S) -> Self {
        let caller = std::panic::Location::caller();
        let (config, mut overrides) = self.parts();
        overrides.insert(
            TypeId::of::<S>(),
            Override {
                service: S::ID,
                factory: crate::plugin::value_override(instance),
                location: format!("{}:{}", caller.file(), caller.line()),
            },
        );
        Self::with(config, overrides)
    }

    /// The root instance of `S` (made once, then shared, as in a backend).
    pub async fn get<S: Service>(&self) -> Result<S> {
        ServiceContext {
            registry: &self.registry,
            plugin: None,
        }
        .get::<S>()
        .await
    }

    /// The instance of `S` for plugin `plugin_id` (made once per plugin).
    pub async fn get_for_plugin<S: Service>(&self, plugin_id: &'static str) -> Result<S> {
        let plugin = {
            let mut plugins = self.plugins.lock().unwrap_or_else(|p| p.into_inner());
            plugins
                .entry(plugin_id)
                .or_insert_with(|| {
                    Arc::new(PluginInstances {
                        id: plugin_id,
                        instances: Instances::default(),
                    })
                })
                .clone()
        };
        ServiceContext {
            registry: &self.registry,
            plugin: Some(&plugin),
        }
        .get::<S>()
        .await
    }
}
