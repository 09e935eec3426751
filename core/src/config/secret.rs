//! `Secret<T>`: a config value that never prints.

use std::fmt;

use serde::{Deserialize, Deserializer};

/// A configuration value that is never shown: its `Debug` and `Display` print `[secret]`, and
/// a value of the wrong type is reported without the value itself.
///
/// Mark the secret fields of a plugin's typed config section with it:
///
/// ```
/// use backstage::config::Secret;
///
/// #[derive(serde::Deserialize, Debug)]
/// struct CarmenConfig {
///     endpoint: String,
///     token: Secret<String>,
/// }
///
/// let config: CarmenConfig =
///     serde_json::from_value(serde_json::json!({"endpoint": "https://x", "token": "hunter2"})).unwrap();
/// assert_eq!(config.token.expose(), "hunter2");
/// assert!(!format!("{config:?}").contains("hunter2"));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    /// Wraps `value`.
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The secret value. Do not log it.
    pub fn expose(&self) -> &T {
        &self.0
    }

    /// The secret value, unwrapped.
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

impl<T> fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

impl<'de, T: serde::de::DeserializeOwned> Deserialize<'de> for Secret<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let value = serde_json::Value::deserialize(deserializer)?;
        let kind = match &value {
            serde_json::Value::Null => "null",
            serde_json::Value::Bool(_) => "a boolean",
            serde_json::Value::Number(_) => "a number",
            serde_json::Value::String(_) => "a string",
            serde_json::Value::Array(_) => "a list",
            serde_json::Value::Object(_) => "a mapping",
        };
        T::deserialize(value).map(Secret).map_err(|_| {
            serde::de::Error::custom(format!(
                "this secret has the wrong type ({kind}, expected {}); its value is not shown",
                std::any::type_name::<T>()
            ))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_types_do_not_leak_the_value() {
        let err = serde_json::from_value::<Secret<u16>>(serde_json::json!("hunter2")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
        assert!(err.to_string().contains("a string"), "{err}");
        assert_eq!(Secret::new(3).to_string(), "[secret]");
    }
}
