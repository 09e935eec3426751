//! Rate limits (`backend.rateLimit`): fixed windows per client address, in memory or in
//! Redis shared by instances.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::config::{HumanDuration, RootConfig};
use crate::error::{Error, Result};

/// How many client addresses the in-memory store remembers at most; past it, the least used
/// are forgotten first (an IPv6 /64 alone holds more addresses than any table can).
const MAX_CLIENTS: u64 = 250_000;

/// One client's window: when it began and how many requests it has counted.
struct Window {
    started: Instant,
    count: AtomicU64,
}

/// An in-memory table of client windows, each expiring `window` after its first request.
fn counters(window: Duration, capacity: u64) -> moka::sync::Cache<IpAddr, Arc<Window>> {
    moka::sync::Cache::builder()
        .max_capacity(capacity)
        .time_to_live(window)
        .build()
}

/// One rate limit: at most `limit` requests per client address per `window`.
pub(crate) struct RateLimit {
    window: Duration,
    limit: u64,
    allow: Vec<IpAddr>,
    pub(crate) skip_successful: bool,
    pub(crate) skip_failed: bool,
    /// Fixed windows in memory: an entry lives `window` from its first request (moka expires
    /// it), so a request costs the same whatever the number of clients.
    counters: moka::sync::Cache<IpAddr, Arc<Window>>,
    /// With `store.type: redis`: the counts live in Redis, shared by every instance.
    redis: Option<RedisStore>,
}

/// Fixed-window counters in Redis: `INCR` per client and window, expiring with the window.
pub(crate) struct RedisStore {
    redis: crate::cache::RedisConnection,
    /// `backstage:rate-limit:<scope>:`
    prefix: String,
    /// `passOnStoreError`: when Redis fails, let the request through instead of refusing it.
    pass_on_error: bool,
}

impl RedisStore {
    fn key(&self, ip: IpAddr) -> String {
        format!("{}{ip}", self.prefix)
    }

    /// Counts a request at `key`, whose count expires `window` after the first.
    async fn count(&self, key: &str, window: Duration) -> redis::RedisResult<u64> {
        let mut connection = self.redis.connection().await?;
        let (count,): (u64,) = redis::pipe()
            .atomic()
            .cmd("INCR")
            .arg(key)
            .cmd("PEXPIRE")
            .arg(key)
            .arg(u64::try_from(window.as_millis()).unwrap_or(u64::MAX))
            .arg("NX")
            .ignore()
            .query_async(&mut connection)
            .await?;
        Ok(count)
    }
}

/// What a rate limit says about a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    Allowed,
    /// Over the limit: 429.
    Limited,
    /// The shared store could not count it (and `passOnStoreError` is off): 503.
    StoreFailed,
}

/// One limit's settings, as Backstage's keys spell them.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct LimitSettings {
    window: Option<HumanDuration>,
    incoming_request_limit: Option<u64>,
    ip_allow_list: Option<Vec<IpAddr>>,
    #[serde(default)]
    skip_successful_requests: bool,
    #[serde(default)]
    skip_failed_requests: bool,
}

impl RateLimit {
    /// The limit at `key` (`backend.rateLimit`, `backend.rateLimit.plugin.<id>`), whose value
    /// is `value`; a wrong setting names its key.
    fn from_value(value: &Value, key: &str) -> Result<Self> {
        let settings: LimitSettings =
            serde_path_to_error::deserialize(value.clone()).map_err(|e| {
                Error::input(format!(
                    "invalid config value at '{key}.{}': {}",
                    e.path(),
                    e.inner()
                ))
            })?;
        let window = settings
            .window
            .map_or(Duration::from_secs(60), Duration::from);
        // Backstage's default: loopback callers are never limited.
        let allow = settings.ip_allow_list.unwrap_or_else(|| {
            vec![
                IpAddr::from([127, 0, 0, 1]),
                IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
            ]
        });
        Ok(RateLimit {
            window,
            limit: settings.incoming_request_limit.unwrap_or(5),
            allow,
            skip_successful: settings.skip_successful_requests,
            skip_failed: settings.skip_failed_requests,
            counters: counters(window, MAX_CLIENTS),
            redis: None,
        })
    }

    /// Counts a request from `ip`.
    pub(crate) async fn hit(&self, ip: IpAddr) -> Verdict {
        let ip = canonical(ip);
        if self.allow.iter().any(|a| canonical(*a) == ip) {
            return Verdict::Allowed;
        }
        if let Some(store) = &self.redis {
            let key = store.key(ip);
            let counted = match store.count(&key, self.window).await {
                // The connection broke (a restart, a killed client): the manager has
                // reconnected, so once more.
                Err(e) if e.is_connection_dropped() || e.is_io_error() => {
                    store.count(&key, self.window).await
                }
                counted => counted,
            };
            return match counted {
                Ok(count) if count <= self.limit => Verdict::Allowed,
                Ok(_) => Verdict::Limited,
                Err(e) => {
                    tracing::error!("the rate limit store (Redis) failed: {e}");
                    if store.pass_on_error {
                        Verdict::Allowed
                    } else {
                        Verdict::StoreFailed
                    }
                }
            };
        }
        let window = self.counters.get_with(ip, || {
            Arc::new(Window {
                started: Instant::now(),
                count: AtomicU64::new(0),
            })
        });
        if window.count.fetch_add(1, Ordering::Relaxed) < self.limit {
            Verdict::Allowed
        } else {
            Verdict::Limited
        }
    }

    /// Takes back a counted request (`skipSuccessfulRequests`, `skipFailedRequests`).
    pub(crate) async fn forget(&self, ip: IpAddr) {
        if let Some(store) = &self.redis {
            if let Ok(mut connection) = store.redis.connection().await {
                let _: redis::RedisResult<i64> = redis::cmd("DECR")
                    .arg(store.key(canonical(ip)))
                    .query_async(&mut connection)
                    .await;
            }
            return;
        }
        if let Some(window) = self.counters.get(&canonical(ip)) {
            let _ = window
                .count
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
    }

    /// Seconds until `ip`'s window ends.
    pub(crate) async fn retry_after(&self, ip: IpAddr) -> u64 {
        if let Some(store) = &self.redis {
            let left: redis::RedisResult<i64> = match store.redis.connection().await {
                Ok(mut connection) => {
                    redis::cmd("PTTL")
                        .arg(store.key(canonical(ip)))
                        .query_async(&mut connection)
                        .await
                }
                Err(e) => Err(e),
            };
            return left
                .map(|ms| (ms.max(0) as u64).div_ceil(1000).max(1))
                .unwrap_or(1);
        }
        self.counters
            .get(&canonical(ip))
            .map(|window| {
                self.window
                    .saturating_sub(window.started.elapsed())
                    .as_secs()
                    .max(1)
            })
            .unwrap_or(1)
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// `backend.rateLimit`: `true` or settings for every request (unless `global: false`), and
/// `plugin.<id>` settings for one plugin's requests. Counts live in this instance's memory.
#[derive(Default)]
pub(crate) struct RateLimits {
    pub(crate) global: Option<RateLimit>,
    pub(crate) plugins: HashMap<String, RateLimit>,
}

impl RateLimits {
    pub(crate) fn from_config(config: &RootConfig) -> Result<Self> {
        let value: Option<Value> = config.get_optional("backend.rateLimit")?;
        let mut limits = RateLimits::default();
        match value {
            None | Some(Value::Bool(false)) => {}
            Some(Value::Bool(true)) => {
                limits.global = Some(RateLimit::from_value(
                    &Value::Object(Default::default()),
                    "backend.rateLimit",
                )?)
            }
            Some(Value::Object(map)) => {
                let redis_url = match map.get("store") {
                    None => None,
                    Some(store) => match store.get("type").and_then(Value::as_str) {
                        None | Some("memory") => None,
                        Some("redis") => Some(store.get("connection").and_then(Value::as_str).ok_or_else(|| {
                            Error::input("backend.rateLimit.store.connection: a Redis store needs a connection string (redis://host:6379)")
                        })?),
                        Some(other) => {
                            return Err(Error::input(format!(
                                "backend.rateLimit.store.type: unknown store '{other}'; use 'memory' or 'redis'"
                            )));
                        }
                    },
                };
                let pass_on_error = map
                    .get("passOnStoreError")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let redis_for = |scope: &str| -> Result<Option<RedisStore>> {
                    redis_url
                        .map(|url| {
                            let redis = crate::cache::RedisConnection::new(url).map_err(|e| {
                                Error::input(format!(
                                    "backend.rateLimit.store.connection is not a Redis URL: {e}"
                                ))
                            })?;
                            Ok(RedisStore {
                                redis,
                                prefix: format!("backstage:rate-limit:{scope}:"),
                                pass_on_error,
                            })
                        })
                        .transpose()
                };
                let global = map.get("global").and_then(Value::as_bool).unwrap_or(true);
                let value = Value::Object(map.clone());
                if global {
                    let mut limit = RateLimit::from_value(&value, "backend.rateLimit")?;
                    limit.redis = redis_for("global")?;
                    limits.global = Some(limit);
                }
                if let Some(Value::Object(plugins)) = map.get("plugin") {
                    for (id, settings) in plugins {
                        let mut limit = RateLimit::from_value(
                            settings,
                            &format!("backend.rateLimit.plugin.{id}"),
                        )?;
                        limit.redis = redis_for(&format!("plugin:{id}"))?;
                        limits.plugins.insert(id.clone(), limit);
                    }
                }
            }
            Some(_) => {
                return Err(Error::input(
                    "backend.rateLimit must be true, false or an object",
                ));
            }
        }
        Ok(limits)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rate_limits_count_per_address_and_window() {
        let limit = RateLimit::from_value(
            &json!({ "incomingRequestLimit": 2, "window": 60000, "ipAllowList": ["10.0.0.9"] }),
            "x",
        )
        .unwrap();
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let hit = |ip: IpAddr| {
            futures_util::FutureExt::now_or_never(limit.hit(ip)).expect("memory counts are ready")
                == Verdict::Allowed
        };
        assert!(hit(a) && hit(a) && !hit(a));
        assert!(hit("10.0.0.2".parse().unwrap()));
        for _ in 0..10 {
            assert!(hit("10.0.0.9".parse().unwrap()));
        }
        futures_util::FutureExt::now_or_never(limit.forget(a)).expect("ready");
        futures_util::FutureExt::now_or_never(limit.forget(a)).expect("ready");
        assert!(hit(a));
    }

    #[test]
    fn many_clients_cost_what_few_do_and_the_table_is_bounded() {
        let mut limit = RateLimit::from_value(&json!({ "incomingRequestLimit": 5 }), "x").unwrap();
        limit.counters = counters(Duration::from_secs(60), 100_000);
        let hit = |n: u32| {
            let ip = IpAddr::V6(std::net::Ipv6Addr::from(
                0x2001_0db8_u128 << 96 | u128::from(n),
            ));
            futures_util::FutureExt::now_or_never(limit.hit(ip)).expect("memory counts are ready")
                == Verdict::Allowed
        };
        let timed = |from: u32| {
            let started = Instant::now();
            for n in from..from + 20_000 {
                assert!(hit(n));
            }
            started.elapsed()
        };
        let few = timed(0);
        for n in 20_000..150_000 {
            hit(n);
        }
        // With every address of a crowded table scanned per request (what this replaced), the
        // same 20,000 requests took hundreds of times longer.
        let many = timed(150_000);
        assert!(
            many < few * 20 + Duration::from_millis(200),
            "{few:?} with a few clients, {many:?} with 170,000"
        );
        limit.counters.run_pending_tasks();
        assert!(limit.counters.entry_count() <= 100_000);
    }

    #[test]
    fn a_wrong_setting_names_its_key() {
        let error = |value: serde_json::Value| {
            RateLimit::from_value(&value, "backend.rateLimit.plugin.carmen")
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
        };
        let window = error(json!({ "window": "soon" }));
        assert!(
            window.contains("'backend.rateLimit.plugin.carmen.window'")
                && window.contains("not a duration"),
            "{window}"
        );
        let allow = error(json!({ "ipAllowList": ["10.0.0.1", "nope"] }));
        assert!(allow.contains("carmen.ipAllowList[1]"), "{allow}");
        assert!(error(json!({ "incomingRequestLimit": -1 })).contains("incomingRequestLimit"));
    }
}
