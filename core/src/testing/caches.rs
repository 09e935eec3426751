//! `TestCaches`: one test body against every cache store that is configured.

use std::fmt;

use serde_json::{Value, json};

use crate::cache::Cache;
use crate::cache::CacheManager;
use crate::config::RootConfig;
use crate::error::{Error, Result};

/// The environment variable with a Redis connection string for tests.
pub const REDIS_ENV: &str = "BACKSTAGE_TEST_CACHE_REDIS_CONNECTION_STRING";

/// The cache stores a test runs against: memory always; Redis when [`REDIS_ENV`] is set. The
/// ones skipped are reported on stderr.
///
/// ```
/// use backstage::testing::TestCaches;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// for store in TestCaches::each() {
///     let cache = store.cache("carmen").unwrap();
///     cache.set("k", &1).await.unwrap();
///     assert_eq!(cache.get::<i32>("k").await.unwrap(), Some(1), "{}", store.name());
///     store.cleanup().await;
/// }
/// # });
/// ```
pub struct TestCaches;

impl TestCaches {
    /// One [`TestCache`] per available store.
    pub fn each() -> Vec<TestCache> {
        let mut stores = vec![TestCache::new(None)];
        match std::env::var(REDIS_ENV) {
            Ok(url) if !url.trim().is_empty() => stores.push(TestCache::new(Some(url))),
            _ => {
                let line = format!("TestCaches: skipped redis: {REDIS_ENV} is not set\n");
                let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
            }
        }
        stores
    }
}

/// One cache store for one test.
///
/// ```
/// let store = &backstage::testing::TestCaches::each()[0];
/// assert_eq!(store.name(), "memory");
/// assert_eq!(store.config()["backend"]["cache"]["store"], "memory");
/// ```
pub struct TestCache {
    url: Option<String>,
    prefix: String,
}

impl fmt::Debug for TestCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestCache")
            .field("store", &self.name())
            .field("prefix", &self.prefix)
            .finish()
    }
}

impl TestCache {
    fn new(url: Option<String>) -> TestCache {
        TestCache {
            url,
            prefix: format!("bt{}_", &crate::error::log_id()[..10]),
        }
    }

    /// `memory` or `redis`.
    pub fn name(&self) -> &'static str {
        if self.url.is_some() {
            "redis"
        } else {
            "memory"
        }
    }

    /// The connection string, for Redis.
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref()
    }

    /// The prefix of the namespaces [`TestCache::cache`] hands out (`bt<random>_`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// `{"backend": {"cache": ...}}` for this store, to merge into a test backend's config.
    /// Plugins there use their own ids as namespaces, so tests that share one Redis should
    /// use distinct plugin ids or keys.
    pub fn config(&self) -> Value {
        match &self.url {
            Some(url) => json!({ "backend": { "cache": { "store": "redis", "connection": url } } }),
            None => json!({ "backend": { "cache": { "store": "memory" } } }),
        }
    }

    /// A cache for `plugin_id` on this store, under this test's own prefix (so tests running
    /// at once never see each other's keys). An error when [`REDIS_ENV`] is not a Redis URL.
    pub fn cache(&self, plugin_id: &str) -> Result<Cache> {
        let manager = CacheManager::from_config(&RootConfig::from_value(self.config()))
            .map_err(|e| Error::input(format!("{REDIS_ENV}: {}", e.message())))?;
        Ok(manager.for_plugin(&format!("{}{plugin_id}", self.prefix)))
    }

    /// Deletes the keys this test's caches wrote (Redis only; memory goes with the process).
    pub async fn cleanup(&self) {
        let Some(url) = &self.url else { return };
        let Ok(client) = redis::Client::open(url.as_str()) else {
            return;
        };
        let Ok(mut connection) = client.get_multiplexed_async_connection().await else {
            return;
        };
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg(format!("{}*", self.prefix))
            .query_async(&mut connection)
            .await
            .unwrap_or_default();
        if !keys.is_empty() {
            let _: redis::RedisResult<()> = redis::cmd("DEL")
                .arg(keys)
                .query_async(&mut connection)
                .await;
        }
    }
}
