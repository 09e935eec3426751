//! Reading config sources the way Backstage does: files, `$include`/`$file`/`$env`, `${VAR}`
//! substitution, `APP_CONFIG_*` environment overrides, and merging.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Files larger than this are refused rather than read into memory.
pub(crate) const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;
/// At most this many `$include`s are followed while reading one source.
const MAX_INCLUDES: usize = 1000;

/// Which source set each path, for error messages. A path's source is its own entry or the
/// nearest ancestor's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Origins {
    by_path: BTreeMap<String, String>,
}

impl Origins {
    /// Takes over every entry of `other` (more precise origins, such as includes').
    pub(crate) fn absorb(&mut self, other: Origins) {
        for (path, source) in other.by_path {
            self.set(&path, &source);
        }
    }

    /// Records `source` for `path` and everything below it.
    pub(crate) fn set(&mut self, path: &str, source: &str) {
        let below = format!("{path}.");
        self.by_path
            .retain(|p, _| p != path && !(path.is_empty() || p.starts_with(&below)));
        self.by_path.insert(path.to_owned(), source.to_owned());
    }

    /// The source of `path`.
    pub(crate) fn of(&self, path: &str) -> Option<&str> {
        let mut current = path;
        loop {
            if let Some(source) = self.by_path.get(current) {
                return Some(source);
            }
            match current.rfind(['.', '[']) {
                Some(i) => current = &current[..i],
                None if !current.is_empty() => current = "",
                None => return None,
            }
        }
    }
}

/// The environment, as the loader sees it (tests pass their own).
pub(crate) type Env = HashMap<String, String>;

/// Reads one config file, resolving its `$include`, `$file`, `$env` and `${VAR}`s. Returns the
/// value and the origins of what its `$include`s brought in.
pub(crate) fn read_file(path: &Path, env: &Env) -> Result<(Value, Origins)> {
    let source = path.display().to_string();
    let value = parse_file(path)?;
    let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut reader = Reader {
        env,
        origins: Origins::default(),
        includes: 0,
        stack: vec![canonical(path)],
    };
    let value = reader
        .transform(value, "", &dir, &source)?
        .unwrap_or_else(|| Value::Object(Map::new()));
    if !value.is_object() {
        return Err(Error::input(format!(
            "config file {source} must hold a mapping at the top level"
        )));
    }
    Ok((value, reader.origins))
}

fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

fn read_text(path: &Path, what: &str) -> Result<String> {
    let meta = std::fs::metadata(path)
        .map_err(|e| Error::input(format!("cannot read {what} {}: {e}", path.display())))?;
    if meta.is_dir() {
        return Err(Error::input(format!(
            "{what} {} is a directory, not a file",
            path.display()
        )));
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(Error::input(format!(
            "{what} {} is {} bytes; config files are limited to {MAX_FILE_BYTES} bytes",
            path.display(),
            meta.len()
        )));
    }
    std::fs::read_to_string(path)
        .map_err(|e| Error::input(format!("cannot read {what} {}: {e}", path.display())))
}

/// Parses a YAML (or JSON, which is YAML) config file.
fn parse_file(path: &Path) -> Result<Value> {
    let text = read_text(path, "config file")?;
    parse_yaml(&text, &path.display().to_string())
}

pub(crate) fn parse_yaml(text: &str, source: &str) -> Result<Value> {
    if text.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    let value: Value = serde_norway::from_str(text)
        .map_err(|e| Error::input(format!("invalid YAML in config file {source}: {e}")))?;
    match value {
        Value::Null => Ok(Value::Object(Map::new())),
        value => Ok(value),
    }
}

struct Reader<'a> {
    env: &'a Env,
    /// Where included subtrees came from.
    origins: Origins,
    includes: usize,
    /// The files being included, outermost first, to find include cycles.
    stack: Vec<PathBuf>,
}

impl Reader<'_> {
    /// Resolves the special forms in `value`; `None` when the value is absent (an unset
    /// variable). `dir` is where relative paths start; `source` names the file.
    fn transform(
        &mut self,
        value: Value,
        path: &str,
        dir: &Path,
        source: &str,
    ) -> Result<Option<Value>> {
        match value {
            Value::String(text) => {
                Ok(substitute(&text, self.env, path, source)?.map(Value::String))
            }
            Value::Array(items) => {
                let mut out = Vec::with_capacity(items.len());
                for (i, item) in items.into_iter().enumerate() {
                    if let Some(item) =
                        self.transform(item, &format!("{path}[{i}]"), dir, source)?
                    {
                        out.push(item);
                    }
                }
                Ok(Some(Value::Array(out)))
            }
            Value::Object(map) => {
                if let Some(special) = map.keys().find(|k| k.starts_with('$')).cloned() {
                    return self.special(map, &special, path, dir, source);
                }
                let mut out = Map::new();
                for (key, item) in map {
                    let child = join(path, &key);
                    if let Some(item) = self.transform(item, &child, dir, source)? {
                        out.insert(key, item);
                    }
                }
                Ok(Some(Value::Object(out)))
            }
            other => Ok(Some(other)),
        }
    }

    fn special(
        &mut self,
        map: Map<String, Value>,
        key: &str,
        path: &str,
        dir: &Path,
        source: &str,
    ) -> Result<Option<Value>> {
        let at = describe(path, source);
        if map.len() != 1 {
            return Err(Error::input(format!(
                "{at}: the key {key} cannot have sibling keys"
            )));
        }
        let Some(Value::String(argument)) = map.get(key) else {
            return Err(Error::input(format!("{at}: {key} takes a string")));
        };
        match key {
            "$env" => Ok(self.env.get(argument.trim()).cloned().map(Value::String)),
            "$file" => {
                let file = dir.join(argument);
                let text = read_text(&file, &format!("{at}: $file"))?;
                Ok(Some(Value::String(text.trim_end().to_owned())))
            }
            "$include" => {
                self.includes += 1;
                if self.includes > MAX_INCLUDES {
                    return Err(Error::input(format!(
                        "{at}: more than {MAX_INCLUDES} $include's"
                    )));
                }
                let (file_part, data_path) = match argument.split_once('#') {
                    Some((file, data)) => (file, Some(data)),
                    None => (argument.as_str(), None),
                };
                let file = dir.join(file_part);
                let identity = canonical(&file);
                if self.stack.contains(&identity) {
                    let chain: Vec<String> =
                        self.stack.iter().map(|p| p.display().to_string()).collect();
                    return Err(Error::input(format!(
                        "{at}: $include of {} forms a cycle ({} -> {})",
                        file.display(),
                        chain.join(" -> "),
                        identity.display()
                    )));
                }
                let text = read_text(&file, &format!("{at}: $include"))?;
                let included_source = file.display().to_string();
                let parsed = match file.extension().and_then(|e| e.to_str()) {
                    Some("json") => serde_json::from_str(&text).map_err(|e| {
                        Error::input(format!(
                            "{at}: invalid JSON in included file {included_source}: {e}"
                        ))
                    })?,
                    Some("yaml" | "yml") => parse_yaml(&text, &included_source)?,
                    _ => {
                        return Err(Error::input(format!(
                            "{at}: no configuration format available for included file {included_source}; use .yaml, .yml or .json"
                        )));
                    }
                };
                let mut selected = parsed;
                if let Some(data_path) = data_path.filter(|d| !d.is_empty()) {
                    let parts: Vec<&str> = data_path.split('.').collect();
                    for (i, part) in parts.iter().enumerate() {
                        let Value::Object(mut object) = selected else {
                            return Err(Error::input(format!(
                                "{at}: value at '{}' in included file {included_source} is not an object",
                                parts[..i].join(".")
                            )));
                        };
                        selected = object.remove(*part).unwrap_or(Value::Null);
                    }
                }
                self.origins.set(path, &included_source);
                let included_dir = file.parent().map(Path::to_path_buf).unwrap_or_default();
                self.stack.push(identity);
                let result = self.transform(selected, path, &included_dir, &included_source);
                self.stack.pop();
                result
            }
            other => Err(Error::input(format!(
                "{at}: unknown special key {other}; use $include, $file or $env"
            ))),
        }
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

fn describe(path: &str, source: &str) -> String {
    if path.is_empty() {
        format!("in {source}")
    } else {
        format!("at '{path}' in {source}")
    }
}

/// `${VAR}` substitution, as Backstage does it: `$${VAR}` is the literal `${VAR}`,
/// `${VAR:-fallback}` falls back when `VAR` is unset or empty, and a value that references an
/// unset variable (without fallback) is absent as a whole.
pub(crate) fn substitute(
    text: &str,
    env: &Env,
    path: &str,
    source: &str,
) -> Result<Option<String>> {
    if !text.contains("${") {
        return Ok(Some(text.to_owned()));
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let escaped = start > 0 && rest.as_bytes()[start - 1] == b'$';
        let Some(len) = rest[start + 2..].find(['}', '{']) else {
            out.push_str(rest);
            return Ok(Some(out));
        };
        let end = start + 2 + len;
        if rest.as_bytes()[end] == b'{' {
            // `${` followed by another `{`: not a reference; keep the text as it is.
            out.push_str(&rest[..end]);
            rest = &rest[end..];
            continue;
        }
        let inner = &rest[start + 2..end];
        if escaped {
            out.push_str(&rest[..start - 1]);
            out.push_str(&rest[start..=end]);
        } else {
            out.push_str(&rest[..start]);
            let value = match inner.split_once(":-") {
                Some((name, fallback)) => Some(
                    env.get(name.trim())
                        .filter(|v| !v.is_empty())
                        .cloned()
                        .unwrap_or_else(|| fallback.to_owned()),
                ),
                None => env.get(inner.trim()).cloned(),
            };
            match value {
                Some(value) => out.push_str(&value),
                None => {
                    tracing::debug!(
                        "config value {} is absent: ${{{}}} is not set",
                        describe(path, source),
                        inner.trim()
                    );
                    return Ok(None);
                }
            }
        }
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(Some(out))
}

/// `APP_CONFIG_a_b=<json>` overrides, as Backstage reads them: the value is JSON when it parses
/// (but not `null`), a string otherwise; key parts are letters, digits and dashes.
pub(crate) fn env_overrides(env: &Env) -> Result<Option<Value>> {
    let mut names: Vec<&String> = env
        .keys()
        .filter(|k| k.starts_with("APP_CONFIG_"))
        .collect();
    names.sort();
    let mut data = Map::new();
    for name in names {
        let raw = &env[name];
        if raw.is_empty() {
            continue;
        }
        let key = &name["APP_CONFIG_".len()..];
        let parts: Vec<&str> = key.split('_').collect();
        if parts.iter().any(|part| !valid_key_part(part)) {
            return Err(Error::input(format!(
                "invalid environment config key '{name}': after APP_CONFIG_, write the key's parts joined by '_', each starting with a letter (APP_CONFIG_backend_listen_port)"
            )));
        }
        let value = match serde_json::from_str::<Value>(raw) {
            Ok(Value::Null) => {
                return Err(Error::input(format!(
                    "environment config key '{name}': the value may not be null"
                )));
            }
            Ok(value) => value,
            Err(_) => Value::String(raw.clone()),
        };
        let mut object = &mut data;
        for (i, part) in parts.iter().enumerate() {
            if i + 1 == parts.len() {
                if object.contains_key(*part) {
                    return Err(Error::input(format!(
                        "environment config key '{name}' overrides a value another APP_CONFIG_ variable sets"
                    )));
                }
                object.insert((*part).to_owned(), value.clone());
            } else {
                let entry = object
                    .entry((*part).to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
                let Value::Object(next) = entry else {
                    return Err(Error::input(format!(
                        "environment config key '{name}' cannot nest under 'APP_CONFIG_{}', which is a value",
                        parts[..=i].join("_")
                    )));
                };
                object = next;
            }
        }
    }
    Ok((!data.is_empty()).then_some(Value::Object(data)))
}

fn valid_key_part(part: &str) -> bool {
    let mut chars = part.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '-')
}

/// Merges `over` into `base`: objects key by key, everything else replaced whole. Records
/// `source` for every path `over` sets.
pub(crate) fn merge(
    base: &mut Value,
    over: Value,
    path: &str,
    source: &str,
    origins: &mut Origins,
) {
    match (base, over) {
        (Value::Object(base), Value::Object(over)) => {
            for (key, value) in over {
                let child = join(path, &key);
                match base.get_mut(&key) {
                    Some(existing) => merge(existing, value, &child, source, origins),
                    None => {
                        origins.set(&child, source);
                        base.insert(key, value);
                    }
                }
            }
        }
        (base, over) => {
            origins.set(path, source);
            *base = over;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn substitution_follows_backstage() {
        let e = env(&[("HOST", "db"), ("EMPTY", "")]);
        let s = |t: &str| substitute(t, &e, "k", "f").unwrap();
        assert_eq!(
            s("postgres://${HOST}:5432").as_deref(),
            Some("postgres://db:5432")
        );
        assert_eq!(s("${ HOST }").as_deref(), Some("db"));
        assert_eq!(s("$${HOST}").as_deref(), Some("${HOST}"));
        assert_eq!(s("a $${HOST} b ${HOST}").as_deref(), Some("a ${HOST} b db"));
        assert_eq!(s("${MISSING}"), None);
        assert_eq!(s("x ${HOST} ${MISSING}"), None);
        assert_eq!(s("${MISSING:-fallback}").as_deref(), Some("fallback"));
        assert_eq!(s("${EMPTY:-fallback}").as_deref(), Some("fallback"));
        assert_eq!(s("${EMPTY}").as_deref(), Some(""));
        assert_eq!(s("no refs $ { here").as_deref(), Some("no refs $ { here"));
        assert_eq!(s("unclosed ${HOST").as_deref(), Some("unclosed ${HOST"));
    }

    #[test]
    fn env_overrides_follow_backstage() {
        let value = env_overrides(&env(&[
            ("APP_CONFIG_backend_listen_port", "7008"),
            ("APP_CONFIG_backend_baseUrl", "http://x"),
            ("APP_CONFIG_carmen_list", "[1,2]"),
            ("APP_CONFIG_carmen_flag", "true"),
            ("APP_CONFIG_carmen_text", "not json {"),
            ("APP_CONFIG_carmen_skipped", ""),
            ("OTHER", "1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "backend": { "listen": { "port": 7008 }, "baseUrl": "http://x" },
                "carmen": { "list": [1, 2], "flag": true, "text": "not json {" }
            })
        );
        for bad in [
            "APP_CONFIG_backend__port",
            "APP_CONFIG_1st",
            "APP_CONFIG_",
            "APP_CONFIG_a.b",
        ] {
            let err = env_overrides(&env(&[(bad, "1")])).unwrap_err();
            assert!(err.message().contains(bad), "{}", err.message());
        }
        assert!(env_overrides(&env(&[("APP_CONFIG_a", "null")])).is_err());
        assert!(env_overrides(&env(&[("APP_CONFIG_a", "1"), ("APP_CONFIG_a_b", "2")])).is_err());
        assert_eq!(env_overrides(&env(&[])).unwrap(), None);
    }

    #[test]
    fn origins_find_the_nearest_source() {
        let mut origins = Origins::default();
        origins.set("", "a.yaml");
        origins.set("backend.listen", "b.yaml");
        assert_eq!(origins.of("backend.listen.port"), Some("b.yaml"));
        assert_eq!(origins.of("backend.baseUrl"), Some("a.yaml"));
        assert_eq!(origins.of("list[3].name"), Some("a.yaml"));
    }
}
