//! `PluginConfig<T>`: a plugin's own config section, typed and injected.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A plugin's own config section, the key named by its plugin id (`carmen:` for `carmen`),
/// read into `T` with serde when the plugin starts.
///
/// A missing section reads as an empty mapping, so a `T` whose fields all have defaults needs
/// no config. A missing required field or a value of the wrong type fails start-up with the
/// key path, the file and what was expected. Mark secret fields [`crate::config::Secret`].
///
/// ```
/// use backstage::prelude::*;
/// use backstage::config::{PluginConfig, Secret};
///
/// #[derive(serde::Deserialize)]
/// pub struct CarmenConfig {
///     #[serde(default = "hello")]
///     greeting: String,
///     api_token: Option<Secret<String>>,
/// }
/// fn hello() -> String { "Hello".into() }
///
/// #[backend_plugin(id = "carmen")]
/// pub struct Carmen {
///     #[inject]
///     config: PluginConfig<CarmenConfig>,
/// }
/// # fn main() {}
/// ```
pub struct PluginConfig<T> {
    value: Arc<T>,
}

impl<T> Clone for PluginConfig<T> {
    fn clone(&self) -> Self {
        PluginConfig {
            value: self.value.clone(),
        }
    }
}

impl<T> Deref for PluginConfig<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T: fmt::Debug> fmt::Debug for PluginConfig<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.value.fmt(f)
    }
}

impl<T> PluginConfig<T> {
    /// A plugin config holding `value` (for tests).
    pub fn new(value: T) -> Self {
        PluginConfig {
            value: Arc::new(value),
        }
    }
}
