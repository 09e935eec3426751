//! The root config service: `app-config.yaml` and friends, read the way Backstage reads them.
//!
//! Sources, later ones winning: every `--config <path>` argument in order or, with none,
//! `app-config.yaml` and then `app-config.local.yaml` (if present) from the working directory
//! (the directory the process was started in; `cargo run` starts in the workspace root); then
//! `APP_CONFIG_<a>_<b>=<json>` environment variables, which set `a.b`. Objects merge key by key;
//! arrays and scalars are replaced whole.
//!
//! Inside files: `${VAR}` in any string (`$${VAR}` is the literal text, `${VAR:-fallback}`
//! falls back; a value that references an unset variable is absent), `{ $env: VAR }`,
//! `{ $file: path }` (the file's contents, trailing whitespace trimmed) and
//! `{ $include: other.yaml#a.b }` (YAML or JSON, optionally one sub-tree), paths relative to
//! the file that names them.
//!
//! Values are read typed with serde by dotted key path; a plugin reads its own section with
//! [`PluginConfig`]. Errors name the key, the file it came from and what was expected. Values
//! typed [`Secret`], and the whole config, never print their values.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use crate::error::{Error, Result};

pub(crate) mod load;
mod plugin;
mod secret;

pub use plugin::PluginConfig;
pub use secret::Secret;

use load::{Env, Origins};

/// The backend's configuration, merged from every source.
///
/// Cheap to clone. Inject it as `#[inject] config: RootConfig`. Its `Debug` output lists the
/// sources and top-level keys, never values.
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
#[derive(Clone)]
pub struct RootConfig {
    inner: Arc<Inner>,
    /// Where this (sub-)config sits in the whole: `""` for the root, `"carmen"` for a section.
    prefix: Arc<str>,
}

struct Inner {
    value: Value,
    origins: Origins,
    sources: Vec<String>,
}

impl fmt::Debug for RootConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootConfig")
            .field("sources", &self.inner.sources)
            .field("prefix", &&*self.prefix)
            .field("keys", &self.keys(""))
            .finish_non_exhaustive()
    }
}

impl RootConfig {
    /// A config made from a value in code (tests, embedded defaults).
    pub fn from_value(value: Value) -> Self {
        let source = "config given in code".to_owned();
        let mut origins = Origins::default();
        origins.set("", &source);
        RootConfig {
            inner: Arc::new(Inner {
                value,
                origins,
                sources: vec![source],
            }),
            prefix: "".into(),
        }
    }

    /// An empty config: every key is absent.
    pub fn empty() -> Self {
        Self::from_value(Value::Object(Map::new()))
    }

    /// Reads the config files named by `--config` arguments in `args` (or, with none,
    /// `app-config.yaml` and `app-config.local.yaml` if present in `dir`), then the process's
    /// `APP_CONFIG_*` environment variables. Substitutions read the process environment.
    ///
    /// A missing `app-config.yaml` is not an error (the config is then empty); a missing file
    /// named by `--config` is.
    pub fn load(args: impl IntoIterator<Item = String>, dir: &Path) -> Result<Self> {
        Self::load_with_env(args, dir, std::env::vars().collect())
    }

    /// [`RootConfig::load`] with an explicit environment instead of the process's.
    ///
    /// ```
    /// let dir = std::env::temp_dir().join(format!("backstage-doc-config-{}", std::process::id()));
    /// std::fs::create_dir_all(&dir).unwrap();
    /// std::fs::write(dir.join("app-config.yaml"), "db:\n  host: ${DB_HOST}\n").unwrap();
    /// let env = [("DB_HOST".to_owned(), "db.internal".to_owned()),
    ///            ("APP_CONFIG_db_port".to_owned(), "5432".to_owned())].into_iter().collect();
    /// let config = backstage::RootConfig::load_with_env(Vec::new(), &dir, env).unwrap();
    /// assert_eq!(config.get::<String>("db.host").unwrap(), "db.internal");
    /// assert_eq!(config.get::<u16>("db.port").unwrap(), 5432);
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// ```
    pub fn load_with_env(
        args: impl IntoIterator<Item = String>,
        dir: &Path,
        env: Env,
    ) -> Result<Self> {
        Self::load_from_dirs(args, dir, &[dir], env)
    }

    /// The config files named by `--config` arguments in `args` (relative to `base`) or, with
    /// none, `app-config.yaml` and `app-config.local.yaml` from each of `dirs` in order (later
    /// ones winning), then `APP_CONFIG_*` from `env`.
    pub(crate) fn load_from_dirs(
        args: impl IntoIterator<Item = String>,
        base: &Path,
        dirs: &[&Path],
        env: Env,
    ) -> Result<Self> {
        let named = config_args(args)?;
        let mut files = Vec::new();
        if named.is_empty() {
            for dir in dirs {
                files.push((dir.join("app-config.yaml"), false));
                files.push((dir.join("app-config.local.yaml"), false));
            }
        } else {
            files.extend(named.into_iter().map(|p| (base.join(p), true)));
        }
        let mut merged = Value::Object(Map::new());
        let mut origins = Origins::default();
        let mut sources = Vec::new();
        for (path, required) in files {
            if !required && !path.exists() {
                continue;
            }
            let (value, included) = load::read_file(&path, &env)?;
            let source = path.display().to_string();
            load::merge(&mut merged, value, "", &source, &mut origins);
            origins.absorb(included);
            sources.push(source);
        }
        if let Some(overrides) = load::env_overrides(&env)? {
            load::merge(
                &mut merged,
                overrides,
                "",
                "APP_CONFIG_ environment variables",
                &mut origins,
            );
            sources.push("APP_CONFIG_ environment variables".to_owned());
        }
        if sources.is_empty() {
            sources.push("no config file".to_owned());
        }
        Ok(RootConfig {
            inner: Arc::new(Inner {
                value: merged,
                origins,
                sources,
            }),
            prefix: "".into(),
        })
    }

    /// This config with `value` merged over it (objects key by key), its keys reported as
    /// coming from `source`.
    pub(crate) fn merged_with(&self, value: Value, source: &str) -> Self {
        let mut merged = self.inner.value.clone();
        let mut origins = self.inner.origins.clone();
        load::merge(&mut merged, value, "", source, &mut origins);
        let mut sources = self.inner.sources.clone();
        sources.push(source.to_owned());
        RootConfig {
            inner: Arc::new(Inner {
                value: merged,
                origins,
                sources,
            }),
            prefix: self.prefix.clone(),
        }
    }

    /// The value at `key` (dotted path), typed. Fails when absent or of the wrong type, naming
    /// the key, where it came from and what was expected.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        match self.get_optional(key)? {
            Some(value) => Ok(value),
            None => Err(Error::input(format!(
                "missing required config value at '{}' (in {})",
                self.full(key),
                self.sources()
            ))),
        }
    }

    /// The value at `key`, typed, or `None` when absent.
    pub fn get_optional<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        match self.lookup(key) {
            None | Some(Value::Null) => Ok(None),
            Some(value) => self.deserialize(key, value).map(Some),
        }
    }

    /// Reads the object at `key` as `T`; an absent key reads as an empty object, so a struct
    /// whose fields all have defaults works without any config.
    pub(crate) fn get_section<T: DeserializeOwned>(&self, key: &str) -> Result<T> {
        let empty = Value::Object(Map::new());
        let value = match self.lookup(key) {
            None | Some(Value::Null) => &empty,
            Some(value) => value,
        };
        self.deserialize(key, value)
    }

    fn deserialize<T: DeserializeOwned>(&self, key: &str, value: &Value) -> Result<T> {
        serde_path_to_error::deserialize(value).map_err(|e| {
            let inner = e.path().to_string();
            let at = if inner == "." {
                self.full(key)
            } else {
                self.full(&join(key, &inner))
            };
            let source = self.inner.origins.of(&at).unwrap_or("config");
            Error::input(format!(
                "invalid config value at '{at}' in {source}: {}",
                e.inner()
            ))
        })
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

    /// The sub-config at `key`, or `None` when absent. Errors from it name full key paths.
    ///
    /// ```
    /// let config = backstage::RootConfig::from_value(serde_json::json!({"carmen": {"greeting": "hi"}}));
    /// let carmen = config.sub("carmen").unwrap();
    /// assert_eq!(carmen.get::<String>("greeting").unwrap(), "hi");
    /// ```
    pub fn sub(&self, key: &str) -> Option<RootConfig> {
        self.lookup(key)?;
        Some(RootConfig {
            inner: self.inner.clone(),
            prefix: self.full(key).into(),
        })
    }

    /// The config file (or other source) the value at `key` came from.
    ///
    /// ```
    /// let config = backstage::RootConfig::from_value(serde_json::json!({"a": 1}));
    /// assert_eq!(config.source_of("a"), Some("config given in code"));
    /// ```
    pub fn source_of(&self, key: &str) -> Option<&str> {
        self.inner.origins.of(&self.full(key))
    }

    fn sources(&self) -> String {
        self.inner.sources.join(", ")
    }

    fn full(&self, key: &str) -> String {
        join(&self.prefix, key)
    }

    fn lookup(&self, key: &str) -> Option<&Value> {
        let full = self.full(key);
        if full.is_empty() {
            return Some(&self.inner.value);
        }
        full.split('.').try_fold(&self.inner.value, |value, part| {
            value.as_object()?.get(part)
        })
    }
}

fn join(prefix: &str, key: &str) -> String {
    match (prefix.is_empty(), key.is_empty()) {
        (true, _) => key.to_owned(),
        (_, true) => prefix.to_owned(),
        _ if key.starts_with('[') => format!("{prefix}{key}"),
        _ => format!("{prefix}.{key}"),
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

/// A duration in any of Backstage's config forms: milliseconds as a number, a string like
/// `"5s"`, `"1m 30s"` or `"PT5S"` (ISO 8601), or an object like `{ minutes: 1, seconds: 30 }`.
/// Config sections name their durations with it and read as a whole with serde.
///
/// ```
/// use std::time::Duration;
/// use backstage::config::HumanDuration;
///
/// #[derive(serde::Deserialize)]
/// struct Section { timeout: HumanDuration }
/// let config = backstage::RootConfig::from_value(serde_json::json!({ "x": { "timeout": "2s" } }));
/// let section: Section = config.get("x").unwrap();
/// assert_eq!(Duration::from(section.timeout), Duration::from_secs(2));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HumanDuration(pub std::time::Duration);

impl From<HumanDuration> for std::time::Duration {
    fn from(duration: HumanDuration) -> Self {
        duration.0
    }
}

impl<'de> serde::Deserialize<'de> for HumanDuration {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let value = Value::deserialize(deserializer)?;
        parse_duration(&value).map(HumanDuration).ok_or_else(|| {
            serde::de::Error::custom(
                "not a duration: write milliseconds (5000), a string (\"5s\", \"PT5S\") or an object ({ seconds: 5 })",
            )
        })
    }
}

/// A duration at `key`, in any of Backstage's forms (see [`HumanDuration`]).
///
/// ```
/// use std::time::Duration;
/// let config = backstage::RootConfig::from_value(serde_json::json!({
///     "a": 1500, "b": "2s", "c": "PT1M", "d": { "minutes": 1, "milliseconds": 5 }, "f": "soon"
/// }));
/// assert_eq!(backstage::config::duration(&config, "a").unwrap(), Some(Duration::from_millis(1500)));
/// assert_eq!(backstage::config::duration(&config, "b").unwrap(), Some(Duration::from_secs(2)));
/// assert_eq!(backstage::config::duration(&config, "c").unwrap(), Some(Duration::from_secs(60)));
/// assert_eq!(backstage::config::duration(&config, "d").unwrap(), Some(Duration::from_millis(60_005)));
/// assert_eq!(backstage::config::duration(&config, "e").unwrap(), None);
/// let error = backstage::config::duration(&config, "f").unwrap_err().to_string();
/// assert!(error.contains("'f'") && error.contains("not a duration"), "{error}");
/// ```
pub fn duration(config: &RootConfig, key: &str) -> Result<Option<std::time::Duration>> {
    Ok(config
        .get_optional::<HumanDuration>(key)?
        .map(std::time::Duration::from))
}

/// A size in bytes: a number, or text like `"10mb"`, `"512kb"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Size(pub(crate) usize);

impl<'de> serde::Deserialize<'de> for Size {
    fn deserialize<D: serde::Deserializer<'de>>(
        deserializer: D,
    ) -> std::result::Result<Self, D::Error> {
        let size = match Value::deserialize(deserializer)? {
            Value::Number(n) => n.as_u64().and_then(|n| usize::try_from(n).ok()),
            Value::String(text) => parse_size(&text),
            _ => None,
        };
        size.map(Size).ok_or_else(|| {
            serde::de::Error::custom(
                "not a size: write bytes (1048576) or text like \"1mb\", \"512kb\"",
            )
        })
    }
}

/// `"10mb"`, `"512kb"`, `"100b"`, `"2048"`.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "b" => 1.0,
        "kb" | "k" => 1024.0,
        "mb" | "m" => 1024.0 * 1024.0,
        "gb" | "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * factor) as usize)
}

/// A duration from any of Backstage's forms, or `None`.
fn parse_duration(value: &Value) -> Option<std::time::Duration> {
    use std::time::Duration;
    match value {
        Value::Number(n) => n.as_u64().map(Duration::from_millis),
        Value::String(text) => {
            let text = text.trim();
            if let Some(iso) = text.strip_prefix("PT").or_else(|| text.strip_prefix("pt")) {
                return iso_duration(iso);
            }
            humantime::parse_duration(text).ok()
        }
        Value::Object(map) => {
            let mut total = Duration::ZERO;
            for (unit, amount) in map {
                let amount = amount.as_f64().filter(|a| *a >= 0.0)?;
                let seconds = match unit.as_str() {
                    "years" => 365.0 * 86_400.0,
                    "months" => 30.0 * 86_400.0,
                    "weeks" => 7.0 * 86_400.0,
                    "days" => 86_400.0,
                    "hours" => 3_600.0,
                    "minutes" => 60.0,
                    "seconds" => 1.0,
                    "milliseconds" => 0.001,
                    _ => return None,
                };
                total += Duration::from_secs_f64(amount * seconds);
            }
            Some(total)
        }
        _ => None,
    }
}

/// The time part of an ISO 8601 duration after `PT`: `1H30M`, `5S`, `0.5S`.
fn iso_duration(text: &str) -> Option<std::time::Duration> {
    let mut total = 0.0;
    let mut number = String::new();
    for c in text.chars() {
        match c {
            '0'..='9' | '.' => number.push(c),
            'H' | 'h' | 'M' | 'm' | 'S' | 's' => {
                let n: f64 = number.parse().ok()?;
                number.clear();
                total += n * match c.to_ascii_uppercase() {
                    'H' => 3_600.0,
                    'M' => 60.0,
                    _ => 1.0,
                };
            }
            _ => return None,
        }
    }
    number
        .is_empty()
        .then(|| std::time::Duration::from_secs_f64(total))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10mb"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("512KB"), Some(512 * 1024));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("lots"), None);
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
        let sub = config.sub("backend").unwrap();
        let err = sub.get::<u16>("listen.port").unwrap_err();
        assert!(
            err.message()
                .contains("'backend.listen.port' in config given in code"),
            "{}",
            err.message()
        );
    }

    #[test]
    fn debug_shows_no_values() {
        let config =
            RootConfig::from_value(json!({"backend": {"auth": {"keys": [{"secret": "hunter2"}]}}}));
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        assert!(debug.contains("backend"), "{debug}");
    }
}
