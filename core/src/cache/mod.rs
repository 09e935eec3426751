//! The `cache` service: a key-value cache private to each plugin, in memory by default and in
//! Redis by config, so that several instances of one backend share it.
//!
//! ```yaml
//! backend:
//!   cache:
//!     store: redis                      # or memory (the default)
//!     connection: redis://cache.example.com:6379
//!     defaultTtl: { minutes: 10 }       # or 600000 (ms), "10m", "PT10M"; none: entries stay
//! ```
//!
//! Keys and values are laid out as Backstage's Keyv stores lay them out, so a Rust plugin and a
//! TypeScript plugin with the same id read each other's entries in one Redis: the key is
//! `<pluginId>:<base64 of the key>` (the SHA-256 of the key, base64, when that would be 200
//! characters or longer) and the value is `{"value":<json>,"expires":<epoch ms>}`.
//! `memcache`, which Backstage also knows, is refused at start-up with a message naming the
//! stores this backend has.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::config::RootConfig;
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Root, Service, ServiceContext};

mod store;

pub(crate) use store::{RedisConnection, Store};

/// A plugin's cache: JSON values under string keys, each with an optional time to live.
///
/// Inject it into a plugin; every plugin sees only its own keys.
///
/// ```
/// use std::time::Duration;
/// use backstage::Cache;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let cache = Cache::memory("carmen");
/// cache.set("greeting", &"hello").await.unwrap();
/// assert_eq!(cache.get::<String>("greeting").await.unwrap().as_deref(), Some("hello"));
///
/// cache.set_with_ttl("soon-gone", &42, Duration::from_millis(20)).await.unwrap();
/// tokio::time::sleep(Duration::from_millis(60)).await;
/// assert_eq!(cache.get::<i32>("soon-gone").await.unwrap(), None);
///
/// cache.delete("greeting").await.unwrap();
/// assert_eq!(cache.get::<String>("greeting").await.unwrap(), None);
/// # });
/// ```
#[derive(Clone)]
pub struct Cache {
    store: Arc<Store>,
    namespace: Arc<str>,
    default_ttl: Option<Duration>,
}

impl fmt::Debug for Cache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("namespace", &self.namespace)
            .field("store", &self.store.name())
            .field("default_ttl", &self.default_ttl)
            .finish()
    }
}

impl Cache {
    /// A cache for `plugin_id` in a fresh in-memory store of its own (for tests and tools; a
    /// backend hands plugins the store from its config).
    pub fn memory(plugin_id: &str) -> Cache {
        Cache {
            store: Arc::new(Store::memory()),
            namespace: plugin_id.into(),
            default_ttl: None,
        }
    }

    /// The value at `key`, if there is one that has not expired and reads as a `T`.
    ///
    /// A value that does not deserialise as `T` is an error, not a miss.
    pub async fn get<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>> {
        let Some(raw) = self.store.get(&self.key(key)).await? else {
            return Ok(None);
        };
        let Some(value) = decode(&raw, now_ms()) else {
            return Ok(None);
        };
        serde_json::from_value(value).map(Some).map_err(|e| {
            Error::input(format!(
                "cache key '{key}' of plugin '{}' does not hold the type asked for: {e}",
                self.namespace
            ))
        })
    }

    /// Stores `value` at `key` for the default time to live (`backend.cache.defaultTtl`, or
    /// [`Cache::with_default_ttl`]); without one the entry stays until deleted or evicted.
    pub async fn set<T: Serialize + ?Sized>(&self, key: &str, value: &T) -> Result<()> {
        self.write(key, value, self.default_ttl).await
    }

    /// Stores `value` at `key` for `ttl`.
    pub async fn set_with_ttl<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Duration,
    ) -> Result<()> {
        self.write(key, value, Some(ttl)).await
    }

    /// Removes `key`; removing a key that is not there is not an error.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.store.delete(&self.key(key)).await
    }

    /// The same cache with another default time to live (Backstage's `withOptions`).
    ///
    /// ```
    /// # use std::time::Duration;
    /// let short = backstage::Cache::memory("carmen").with_default_ttl(Duration::from_secs(5));
    /// assert_eq!(short.default_ttl(), Some(Duration::from_secs(5)));
    /// ```
    #[must_use]
    pub fn with_default_ttl(&self, ttl: Duration) -> Cache {
        Cache {
            default_ttl: Some(ttl),
            ..self.clone()
        }
    }

    /// The time to live of [`Cache::set`].
    pub fn default_ttl(&self) -> Option<Duration> {
        self.default_ttl
    }

    async fn write<T: Serialize + ?Sized>(
        &self,
        key: &str,
        value: &T,
        ttl: Option<Duration>,
    ) -> Result<()> {
        let value = serde_json::to_value(value)
            .map_err(|e| Error::input(format!("cache value for '{key}' is not JSON: {e}")))?;
        let ttl = ttl.filter(|t| !t.is_zero());
        let raw = encode(&value, ttl.map(|t| now_ms() + t.as_millis() as u64));
        self.store.set(&self.key(key), raw, ttl).await
    }

    /// `<pluginId>:<normalised key>`, as Backstage's cache client and Keyv write it.
    fn key(&self, key: &str) -> String {
        format!("{}:{}", self.namespace, normalise_key(key))
    }
}

/// Backstage's key normalisation: base64 of the key, or base64 of its SHA-256 when the base64
/// would be 200 characters or more.
fn normalise_key(key: &str) -> String {
    let engine = base64::engine::general_purpose::STANDARD;
    let encoded = engine.encode(key);
    if encoded.len() < 200 {
        return encoded;
    }
    engine.encode(ring::digest::digest(&ring::digest::SHA256, key.as_bytes()))
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Keyv's envelope: `{"value":...,"expires":...}` (no `expires` without a time to live).
fn encode(value: &Value, expires: Option<u64>) -> String {
    // Written by hand: Keyv puts `value` first, and serde_json's map would sort the keys.
    match expires {
        Some(expires) => format!(r#"{{"value":{value},"expires":{expires}}}"#),
        None => format!(r#"{{"value":{value}}}"#),
    }
}

/// The value inside an envelope, unless it has expired or is not an envelope.
fn decode(raw: &str, now: u64) -> Option<Value> {
    let Value::Object(mut envelope) = serde_json::from_str(raw).ok()? else {
        return None;
    };
    if let Some(expires) = envelope.get("expires").and_then(Value::as_u64)
        && expires <= now
    {
        return None;
    }
    envelope.remove("value")
}

/// Makes each plugin's [`Cache`] from `backend.cache`, all on one store.
///
/// ```
/// use backstage::RootConfig;
/// use backstage::cache::CacheManager;
/// let manager = CacheManager::from_config(&RootConfig::from_value(serde_json::json!({
///     "backend": { "cache": { "store": "memory", "defaultTtl": "5m" } }
/// }))).unwrap();
/// assert_eq!(manager.for_plugin("carmen").default_ttl(), Some(std::time::Duration::from_secs(300)));
/// ```
#[derive(Clone)]
pub struct CacheManager {
    store: Arc<Store>,
    default_ttl: Option<Duration>,
}

impl fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheManager")
            .field("store", &self.store.name())
            .field("default_ttl", &self.default_ttl)
            .finish()
    }
}

impl CacheManager {
    /// Reads `backend.cache`; names the key at fault when it is wrong.
    ///
    /// ```
    /// use backstage::RootConfig;
    /// use backstage::cache::CacheManager;
    /// let config = RootConfig::from_value(serde_json::json!({ "backend": { "cache": { "store": "memcache" } } }));
    /// let error = CacheManager::from_config(&config).unwrap_err();
    /// assert!(error.to_string().contains("backend.cache.store"));
    /// ```
    pub fn from_config(config: &RootConfig) -> Result<CacheManager> {
        let store: Option<String> = config.get_optional("backend.cache.store")?;
        let default_ttl = crate::config::duration(config, "backend.cache.defaultTtl")?;
        let store = match store.as_deref().unwrap_or("memory") {
            "memory" => Store::memory(),
            "redis" => {
                let connection: Option<String> = config.get_optional("backend.cache.connection")?;
                let connection = connection.filter(|c| !c.trim().is_empty()).ok_or_else(|| {
                    Error::input(
                        "backend.cache.connection: the redis cache store needs a connection string (redis://host:6379)",
                    )
                })?;
                Store::redis(&connection).map_err(|e| {
                    Error::input(format!(
                        "backend.cache.connection: not a Redis connection string: {e}"
                    ))
                })?
            }
            other => {
                return Err(Error::input(format!(
                    "backend.cache.store: unknown store '{other}'; use 'memory' or 'redis'"
                )));
            }
        };
        Ok(CacheManager {
            store: Arc::new(store),
            default_ttl,
        })
    }

    /// The cache of plugin `plugin_id`.
    pub fn for_plugin(&self, plugin_id: &str) -> Cache {
        Cache {
            store: self.store.clone(),
            namespace: plugin_id.into(),
            default_ttl: self.default_ttl,
        }
    }
}

impl Service for CacheManager {
    type Scope = Root;
    const ID: &'static str = "core.rootCacheManager";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::config::RootConfig);

    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move { CacheManager::from_config(ctx.config()) })
    }
}

impl Service for Cache {
    type Scope = PluginScoped;
    const ID: &'static str = "core.cache";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::cache::CacheManager);

    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let plugin_id = ctx
                .plugin_id()
                .ok_or_else(|| Error::internal("the cache service belongs to a plugin"))?;
            Ok(ctx.get::<CacheManager>().await?.for_plugin(plugin_id))
        })
    }
}

crate::plugin::register!(Cache, root CacheManager);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn keys_are_normalised_as_backstage_does() {
        assert_eq!(normalise_key("test:key"), "dGVzdDprZXk=");
        let long = "k".repeat(150);
        let hashed = normalise_key(&long);
        assert_eq!(hashed.len(), 44, "{hashed}");
        assert_ne!(normalise_key(&"k".repeat(151)), hashed);
    }

    #[test]
    fn envelopes_expire() {
        let raw = encode(&json!({"a": 1}), Some(1_000));
        assert_eq!(raw, r#"{"value":{"a":1},"expires":1000}"#);
        assert_eq!(decode(&raw, 999), Some(json!({"a": 1})));
        assert_eq!(decode(&raw, 1_000), None);
        assert_eq!(
            decode(&encode(&json!("x"), None), u64::MAX),
            Some(json!("x"))
        );
        assert_eq!(decode("not json", 0), None);
    }

    #[tokio::test]
    async fn plugins_do_not_see_each_others_keys() {
        let manager = CacheManager::from_config(&RootConfig::empty()).unwrap();
        let (a, b) = (manager.for_plugin("a"), manager.for_plugin("b"));
        a.set("k", &1).await.unwrap();
        assert_eq!(a.get::<i32>("k").await.unwrap(), Some(1));
        assert_eq!(b.get::<i32>("k").await.unwrap(), None);
        let error = a.get::<String>("k").await.unwrap_err();
        assert!(error.to_string().contains("cache key 'k'"), "{error}");
    }

    #[test]
    fn config_errors_name_the_key() {
        let bad = |v: Value| {
            CacheManager::from_config(&RootConfig::from_value(json!({"backend": {"cache": v}})))
                .unwrap_err()
                .to_string()
        };
        assert!(bad(json!({"store": "memcache"})).contains("backend.cache.store"));
        assert!(bad(json!({"store": "redis"})).contains("backend.cache.connection"));
        assert!(
            bad(json!({"store": "redis", "connection": "http://x"}))
                .contains("backend.cache.connection")
        );
        assert!(bad(json!({"defaultTtl": "soon"})).contains("backend.cache.defaultTtl"));
    }
}
