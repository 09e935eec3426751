//! The root config service: `app-config.yaml` and friends, read the way Backstage reads them.
//!
//! Sources, later ones winning: every `--config <path>` argument in order or, with none,
//! `app-config.yaml` and then `app-config.local.yaml` (if present) from the working directory.
//! Objects merge key by key; arrays and scalars are replaced whole. Values are read typed with
//! serde by dotted key path (`backend.listen`).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// The backend's configuration, merged from every source.
///
/// Cheap to clone. Inject it as `#[inject] config: RootConfig`.
///
/// ```
/// use backstage::RootConfig;
///
/// let config = RootConfig::from_value(serde_json::json!({
///     "backend": { "baseUrl": "http://localhost:7007", "listen": { "port": 7007 } }
/// }));
/// let port: u16 = config.get("backend.listen.port").unwrap();
/// assert_eq!(port, 7007);
/// assert_eq!(config.get_optional::<String>("backend.nothing").unwrap(), None);
/// assert!(config.has("backend.baseUrl"));
/// ```
#[derive(Clone, Debug)]
pub struct RootConfig {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    value: Value,
    /// Where the value came from, for error messages: file names, or "code".
    sources: Vec<String>,
}

impl RootConfig {
    /// A config made from a value in code (tests, embedded defaults).
    pub fn from_value(value: Value) -> Self {
        RootConfig {
            inner: Arc::new(Inner {
                value,
                sources: vec!["config given in code".to_owned()],
            }),
        }
    }

    /// An empty config: every key is absent.
    pub fn empty() -> Self {
        Self::from_value(Value::Object(Map::new()))
    }

    /// Reads the config files named by `--config` arguments in `args`, or with none
    /// `app-config.yaml` and `app-config.local.yaml` (if present) in `dir`.
    ///
    /// A missing `app-config.yaml` is not an error (the config is then empty); a missing file
    /// named by `--config` is.
    pub fn load(args: impl IntoIterator<Item = String>, dir: &Path) -> Result<Self> {
        let named = config_args(args)?;
        let mut files: Vec<(PathBuf, bool)> = Vec::new();
        if named.is_empty() {
            files.push((dir.join("app-config.yaml"), false));
            files.push((dir.join("app-config.local.yaml"), false));
        } else {
            files.extend(named.into_iter().map(|p| (dir.join(p), true)));
        }
        let mut merged = Value::Object(Map::new());
        let mut sources = Vec::new();
        for (path, required) in files {
            let text = match std::fs::read_to_string(&path) {
                Ok(text) => text,
                Err(e) if !required && e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => {
                    return Err(Error::internal(format!(
                        "cannot read config file {}: {e}",
                        path.display()
                    )));
                }
            };
            let value = parse_yaml(&text, &path)?;
            merge(&mut merged, value);
            sources.push(path.display().to_string());
        }
        if sources.is_empty() {
            sources.push("no config file".to_owned());
        }
        Ok(RootConfig {
            inner: Arc::new(Inner {
                value: merged,
                sources,
            }),
        })
    }

    /// The value at `key` (dotted path), typed. Fails when absent or of the wrong type, naming
    /// the key and the config sources.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        match self.get_optional(key)? {
            Some(value) => Ok(value),
            None => Err(Error::input(format!(
                "missing required config value at '{key}' (in {})",
                self.sources()
            ))),
        }
    }

    /// The value at `key`, typed, or `None` when absent.
    pub fn get_optional<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.lookup(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => T::deserialize(value).map(Some).map_err(|e| {
                Error::input(format!(
                    "invalid config value at '{key}' (in {}): {e}",
                    self.sources()
                ))
            }),
        }
    }

    /// Whether `key` holds a value.
    pub fn has(&self, key: &str) -> bool {
        !matches!(self.lookup(key), None | Some(Value::Null))
    }

    /// The keys of the object at `key` (`""` for the top level); empty when it is not an object.
    ///
    /// ```
    /// let config = backstage::RootConfig::from_value(serde_json::json!({"a": {"x": 1, "y": 2}}));
    /// assert_eq!(config.keys("a"), vec!["x", "y"]);
    /// ```
    pub fn keys(&self, key: &str) -> Vec<String> {
        match self.lookup(key) {
            Some(Value::Object(map)) => map.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    /// The sub-config at `key`, or `None` when absent.
    ///
    /// ```
    /// let config = backstage::RootConfig::from_value(serde_json::json!({"carmen": {"greeting": "hi"}}));
    /// let carmen = config.sub("carmen").unwrap();
    /// assert_eq!(carmen.get::<String>("greeting").unwrap(), "hi");
    /// ```
    pub fn sub(&self, key: &str) -> Option<RootConfig> {
        let value = self.lookup(key)?.clone();
        Some(RootConfig {
            inner: Arc::new(Inner {
                value,
                sources: self.inner.sources.clone(),
            }),
        })
    }

    /// The whole merged value.
    pub fn value(&self) -> &Value {
        &self.inner.value
    }

    fn sources(&self) -> String {
        self.inner.sources.join(", ")
    }

    fn lookup(&self, key: &str) -> Option<&Value> {
        if key.is_empty() {
            return Some(&self.inner.value);
        }
        key.split('.').try_fold(&self.inner.value, |value, part| {
            value.as_object()?.get(part)
        })
    }
}

fn config_args(args: impl IntoIterator<Item = String>) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut args = args.into_iter();
    while let Some(arg) = args.next() {
        if arg == "--config" || arg == "-c" {
            match args.next() {
                Some(path) => out.push(path),
                None => {
                    return Err(Error::input(format!(
                        "{arg} needs a path: --config app-config.yaml"
                    )));
                }
            }
        } else if let Some(path) = arg.strip_prefix("--config=") {
            out.push(path.to_owned());
        }
    }
    Ok(out)
}

fn parse_yaml(text: &str, path: &Path) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_norway::from_str(text).map_err(|e| {
        Error::input(format!(
            "invalid YAML in config file {}: {e}",
            path.display()
        ))
    })?;
    match value {
        Value::Object(_) => Ok(value),
        Value::Null => Ok(Value::Object(Map::new())),
        _ => Err(Error::input(format!(
            "config file {} must hold a mapping at the top level",
            path.display()
        ))),
    }
}

/// Merges `over` into `base`: objects key by key, everything else replaced whole.
fn merge(base: &mut Value, over: Value) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => *base = over,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn objects_merge_and_arrays_replace() {
        let mut base = json!({"a": {"x": 1, "list": [1, 2]}, "b": 1});
        merge(
            &mut base,
            json!({"a": {"y": 2, "list": [3]}, "b": {"c": true}}),
        );
        assert_eq!(
            base,
            json!({"a": {"x": 1, "y": 2, "list": [3]}, "b": {"c": true}})
        );
    }

    #[test]
    fn config_args_in_both_forms() {
        let args = [
            "bin",
            "--config",
            "a.yaml",
            "--config=b.yaml",
            "-c",
            "c.yaml",
        ]
        .map(String::from);
        assert_eq!(
            config_args(args).unwrap(),
            vec!["a.yaml", "b.yaml", "c.yaml"]
        );
        assert!(config_args(["--config".to_owned()]).is_err());
    }

    #[test]
    fn load_reads_local_over_main_and_names_bad_files() {
        let dir = std::env::temp_dir().join(format!("backstage-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("app-config.yaml"),
            "backend:\n  listen: 7007\n  baseUrl: http://a\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("app-config.local.yaml"),
            "backend:\n  listen: 7008\n",
        )
        .unwrap();
        let config = RootConfig::load(Vec::new(), &dir).unwrap();
        assert_eq!(config.get::<u16>("backend.listen").unwrap(), 7008);
        assert_eq!(config.get::<String>("backend.baseUrl").unwrap(), "http://a");

        std::fs::write(dir.join("bad.yaml"), "backend: [unclosed\n").unwrap();
        let err =
            RootConfig::load(["--config".to_owned(), "bad.yaml".to_owned()], &dir).unwrap_err();
        assert!(err.message().contains("bad.yaml"), "{}", err.message());
        let err =
            RootConfig::load(["--config".to_owned(), "missing.yaml".to_owned()], &dir).unwrap_err();
        assert!(err.message().contains("missing.yaml"), "{}", err.message());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn typed_errors_name_the_key() {
        let config = RootConfig::from_value(json!({"backend": {"listen": {"port": "many"}}}));
        let err = config.get::<u16>("backend.listen.port").unwrap_err();
        assert!(
            err.message().contains("backend.listen.port"),
            "{}",
            err.message()
        );
        let err = config.get::<u16>("backend.nope").unwrap_err();
        assert!(
            err.message()
                .contains("missing required config value at 'backend.nope'")
        );
    }
}
