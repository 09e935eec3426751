//! Where cache entries live: process memory (moka) or Redis.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// A cache store holding raw envelopes under full keys.
pub(crate) enum Store {
    Memory(moka::sync::Cache<String, Entry>),
    Redis(RedisConnection),
}

/// A value in memory with the time to live it was written with.
#[derive(Clone)]
pub(crate) struct Entry {
    raw: Arc<str>,
    ttl: Option<Duration>,
}

/// Evicts each memory entry when its own time to live runs out.
struct PerEntryTtl;

impl moka::Expiry<String, Entry> for PerEntryTtl {
    fn expire_after_create(&self, _: &String, entry: &Entry, _: Instant) -> Option<Duration> {
        entry.ttl
    }

    fn expire_after_update(
        &self,
        _: &String,
        entry: &Entry,
        _: Instant,
        _: Option<Duration>,
    ) -> Option<Duration> {
        entry.ttl
    }
}

impl Store {
    pub(crate) fn memory() -> Store {
        Store::Memory(
            moka::sync::Cache::builder()
                .expire_after(PerEntryTtl)
                .build(),
        )
    }

    pub(crate) fn redis(url: &str) -> redis::RedisResult<Store> {
        Ok(Store::Redis(RedisConnection::new(url)?))
    }

    pub(crate) fn name(&self) -> &'static str {
        match self {
            Store::Memory(_) => "memory",
            Store::Redis(_) => "redis",
        }
    }

    pub(crate) async fn get(&self, key: &str) -> Result<Option<String>> {
        match self {
            Store::Memory(cache) => Ok(cache.get(key).map(|e| e.raw.to_string())),
            Store::Redis(redis) => {
                let mut connection = redis.connection().await.map_err(failed)?;
                redis::cmd("GET")
                    .arg(key)
                    .query_async(&mut connection)
                    .await
                    .map_err(failed)
            }
        }
    }

    pub(crate) async fn set(&self, key: &str, raw: String, ttl: Option<Duration>) -> Result<()> {
        match self {
            Store::Memory(cache) => {
                cache.insert(
                    key.to_owned(),
                    Entry {
                        raw: raw.into(),
                        ttl,
                    },
                );
                Ok(())
            }
            Store::Redis(redis) => {
                let mut connection = redis.connection().await.map_err(failed)?;
                let mut command = redis::cmd("SET");
                command.arg(key).arg(raw);
                if let Some(ttl) = ttl {
                    command.arg("PX").arg(ttl.as_millis().max(1) as u64);
                }
                command
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(failed)
            }
        }
    }

    pub(crate) async fn delete(&self, key: &str) -> Result<()> {
        match self {
            Store::Memory(cache) => {
                cache.invalidate(key);
                Ok(())
            }
            Store::Redis(redis) => {
                let mut connection = redis.connection().await.map_err(failed)?;
                redis::cmd("DEL")
                    .arg(key)
                    .query_async::<()>(&mut connection)
                    .await
                    .map_err(failed)
            }
        }
    }
}

fn failed(e: redis::RedisError) -> Error {
    Error::internal(format!("the cache store (Redis) failed: {e}"))
}

/// A Redis connection made on first use, with short timeouts and few retries: a request must
/// not hang on a broken store.
pub(crate) struct RedisConnection {
    client: redis::Client,
    connection: tokio::sync::OnceCell<redis::aio::ConnectionManager>,
}

impl RedisConnection {
    pub(crate) fn new(url: &str) -> redis::RedisResult<RedisConnection> {
        Ok(RedisConnection {
            client: redis::Client::open(url)?,
            connection: tokio::sync::OnceCell::new(),
        })
    }

    pub(crate) async fn connection(&self) -> redis::RedisResult<redis::aio::ConnectionManager> {
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_number_of_retries(1)
            .set_connection_timeout(Duration::from_secs(2))
            .set_response_timeout(Duration::from_secs(2));
        self.connection
            .get_or_try_init(|| self.client.get_connection_manager_with_config(config))
            .await
            .cloned()
    }
}
