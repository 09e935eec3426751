//! JSON Web Key Sets: fetched once, cached, refetched when a token names a key the cache does
//! not hold, with bounds on how often that may happen, per set and across all of them.
//!
//! A set is remote (a URL: the auth backend's, another backend's plugin, an external issuer) or
//! local: the keys of a plugin this backend serves, read in-process from where the plugin keeps
//! them, so verifying a token from a neighbour never takes one of the server's own connections.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::jws::{Jwk, VerifyKey};

/// How long a fetched key set is used before it is fetched again.
const MAX_AGE: Duration = Duration::from_secs(10 * 60);
/// After a fetch, an unknown key id waits this long before it may cause another fetch...
const COOLDOWN: Duration = Duration::from_secs(30);
/// ...unless one of this many forced refetches per [`FORCED_WINDOW`] is left (key rotation).
const FORCED_LIMIT: usize = 10;
const FORCED_WINDOW: Duration = Duration::from_secs(60);
/// A key set larger than this is refused.
const MAX_BODY: usize = 256 * 1024;
/// After a failed fetch, requests fail at once for this long instead of fetching again.
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// Fetches of any set, together, at most this many per [`BUDGET_WINDOW`]: tokens naming many
/// issuers or key ids cost a bounded amount of work whatever else holds.
const BUDGET: usize = 60;
const BUDGET_WINDOW: Duration = Duration::from_secs(60);

/// Why no key could be found.
#[derive(Clone, Debug)]
pub(crate) enum KeyError {
    /// The set was fetched and holds no key for the token.
    NoMatchingKey,
    /// The set could not be fetched (timeout, HTTP error, bad JSON).
    Fetch(String),
}

impl std::fmt::Display for KeyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyError::NoMatchingKey => f.write_str("no applicable key found in the JWKS"),
            KeyError::Fetch(why) => write!(f, "could not fetch the JWKS: {why}"),
        }
    }
}

/// A key set as fetched, and when.
struct Fetched {
    at: Instant,
    keys: Vec<(Option<String>, Option<String>, Arc<VerifyKey>)>,
}

impl Fetched {
    fn find(&self, kid: Option<&str>, alg: &str) -> Option<Arc<VerifyKey>> {
        self.keys
            .iter()
            .filter(|(key_kid, key_alg, _)| {
                (kid.is_none() || key_kid.as_deref() == kid)
                    && key_alg.as_deref().is_none_or(|a| a == alg)
            })
            .map(|(_, _, key)| key.clone())
            .next()
    }
}

/// Where a key set comes from.
#[derive(Clone)]
pub(crate) enum Source {
    /// A JWKS URL.
    Remote(String),
    /// A plugin of this backend: its keys, read in-process.
    Local(Arc<super::keys::KeySource>),
}

/// Every key set this backend reads, by name (the URL, or `local:<pluginId>`), and the HTTP
/// client that fetches them. moka keeps them for [`MAX_AGE`] and makes the requests that miss
/// at once share one fetch.
pub(crate) struct JwksCache {
    http: reqwest::Client,
    timeout: Duration,
    sets: moka::future::Cache<String, Arc<Fetched>>,
    /// Sets whose last fetch failed, with why, for [`FAILURE_BACKOFF`].
    failures: moka::sync::Cache<String, String>,
    forced: Mutex<Vec<Instant>>,
    fetches: Mutex<Vec<Instant>>,
}

impl JwksCache {
    pub(crate) fn new(http: reqwest::Client, timeout: Duration) -> Self {
        JwksCache {
            http,
            timeout,
            sets: moka::future::Cache::builder()
                .max_capacity(100)
                .time_to_live(MAX_AGE)
                .build(),
            failures: moka::sync::Cache::builder()
                .max_capacity(100)
                .time_to_live(FAILURE_BACKOFF)
                .build(),
            forced: Mutex::new(Vec::new()),
            fetches: Mutex::new(Vec::new()),
        }
    }

    /// Takes one use of `limit` per `window` from `uses`; `false` when none is left.
    fn take(uses: &Mutex<Vec<Instant>>, limit: usize, window: Duration) -> bool {
        let mut uses = uses.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        uses.retain(|t| now.duration_since(*t) < window);
        if uses.len() >= limit {
            return false;
        }
        uses.push(now);
        true
    }

    /// The key of the set at `url` for a token with `kid` and `alg`.
    pub(crate) async fn key(
        &self,
        url: &str,
        kid: Option<&str>,
        alg: &str,
    ) -> Result<Arc<VerifyKey>, KeyError> {
        self.key_of(url, || Source::Remote(url.to_owned()), kid, alg)
            .await
    }

    /// The key of local plugin `plugin_id`, whose keys are `keys`, for a token with `kid` and
    /// `alg`.
    pub(crate) async fn local_key(
        &self,
        plugin_id: &str,
        keys: impl Fn() -> Arc<super::keys::KeySource>,
        kid: Option<&str>,
        alg: &str,
    ) -> Result<Arc<VerifyKey>, KeyError> {
        let name = format!("local:{plugin_id}");
        self.key_of(&name, || Source::Local(keys()), kid, alg).await
    }

    async fn key_of(
        &self,
        name: &str,
        source: impl Fn() -> Source,
        kid: Option<&str>,
        alg: &str,
    ) -> Result<Arc<VerifyKey>, KeyError> {
        let fetched = self.fetched(name, &source).await?;
        if let Some(key) = fetched.find(kid, alg) {
            return Ok(key);
        }
        // A key id the set does not hold: the issuer may have rotated its keys. Fetch again,
        // but not more often than the cooldown allows, save a few forced fetches per minute.
        if fetched.at.elapsed() < COOLDOWN && !Self::take(&self.forced, FORCED_LIMIT, FORCED_WINDOW)
        {
            return Err(KeyError::NoMatchingKey);
        }
        // Only the set this request saw is dropped: one fetched meanwhile stays.
        if self
            .sets
            .get(name)
            .await
            .is_some_and(|current| Arc::ptr_eq(&current, &fetched))
        {
            self.sets.invalidate(name).await;
        }
        let fetched = self.fetched(name, &source).await?;
        fetched.find(kid, alg).ok_or(KeyError::NoMatchingKey)
    }

    /// The set called `name`: cached, or fetched once for every request that asks meanwhile.
    async fn fetched(
        &self,
        name: &str,
        source: &impl Fn() -> Source,
    ) -> Result<Arc<Fetched>, KeyError> {
        if let Some(why) = self.failures.get(name) {
            return Err(KeyError::Fetch(why));
        }
        self.sets
            .try_get_with(name.to_owned(), async {
                if !Self::take(&self.fetches, BUDGET, BUDGET_WINDOW) {
                    return Err(KeyError::Fetch(format!(
                        "not fetching {name}: {BUDGET} key set fetches in the last minute already"
                    )));
                }
                let fetched = match source() {
                    Source::Remote(url) => self.fetch(&url).await,
                    Source::Local(keys) => local(&keys).await,
                };
                if let Err(KeyError::Fetch(why)) = &fetched {
                    self.failures.insert(name.to_owned(), why.clone());
                }
                fetched.map(Arc::new)
            })
            .await
            .map_err(|e| (*e).clone())
    }

    async fn fetch(&self, url: &str) -> Result<Fetched, KeyError> {
        #[derive(serde::Deserialize)]
        struct Set {
            keys: Vec<serde_json::Value>,
        }
        let response = self
            .http
            .get(url)
            .timeout(self.timeout)
            .send()
            .await
            .map_err(|e| KeyError::Fetch(describe(&e)))?;
        if !response.status().is_success() {
            return Err(KeyError::Fetch(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        if response
            .content_length()
            .is_some_and(|len| len > MAX_BODY as u64)
        {
            return Err(KeyError::Fetch(format!("{url} sent a key set too large")));
        }
        let body = response
            .bytes()
            .await
            .map_err(|e| KeyError::Fetch(describe(&e)))?;
        if body.len() > MAX_BODY {
            return Err(KeyError::Fetch(format!("{url} sent a key set too large")));
        }
        let set: Set = serde_json::from_slice(&body)
            .map_err(|e| KeyError::Fetch(format!("{url} sent an invalid key set: {e}")))?;
        Ok(Fetched::from_jwks(set.keys))
    }
}

/// The public keys of a plugin of this backend, read where it keeps them.
async fn local(keys: &super::keys::KeySource) -> Result<Fetched, KeyError> {
    let jwks = keys
        .public_keys()
        .await
        .map_err(|e| KeyError::Fetch(format!("could not read the plugin's keys: {e}")))?;
    Ok(Fetched::from_jwks(jwks))
}

impl Fetched {
    fn from_jwks(jwks: Vec<serde_json::Value>) -> Fetched {
        let keys = jwks
            .into_iter()
            .filter_map(|value| serde_json::from_value::<Jwk>(value).ok())
            .filter_map(|jwk| {
                let key = jwk.to_key()?;
                Some((jwk.kid, jwk.alg, Arc::new(key)))
            })
            .collect();
        Fetched {
            at: Instant::now(),
            keys,
        }
    }
}

fn describe(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    match e.url() {
        Some(url) => format!("{what} for {url}"),
        None => what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A JWKS endpoint that takes 200 ms to answer, counting the requests it gets.
    async fn slow_jwks(body: String) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        let hits = Arc::new(AtomicUsize::new(0));
        let counted = hits.clone();
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let body = body.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buffer = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&buffer[..n]),
                        }
                    }
                    counted.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    let answer = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        (url, hits)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_that_miss_at_once_share_one_fetch() {
        let pair = super::super::jws::generate_es256().unwrap();
        let jwk = super::super::jws::es256_public_jwk(&pair, "k");
        let (url, hits) = slow_jwks(serde_json::json!({ "keys": [jwk] }).to_string()).await;
        let cache = JwksCache::new(reqwest::Client::new(), Duration::from_secs(5));
        let lookups = (0..20).map(|_| cache.key(&url, Some("k"), "ES256"));
        let found = futures_util::future::join_all(lookups).await;
        assert!(found.iter().all(Result::is_ok));
        assert_eq!(hits.load(Ordering::SeqCst), 1);
        // Cached now: no fetch at all.
        assert!(cache.key(&url, Some("k"), "ES256").await.is_ok());
        assert_eq!(hits.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_fetch_is_not_repeated_for_a_while() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks.json", listener.local_addr().unwrap());
        drop(listener);
        let cache = JwksCache::new(reqwest::Client::new(), Duration::from_secs(5));
        let first = cache.key(&url, Some("k"), "ES256").await;
        assert!(matches!(first, Err(KeyError::Fetch(_))), "{first:?}");
        let budget_left = |cache: &JwksCache| {
            BUDGET
                - cache
                    .fetches
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .len()
        };
        let before = budget_left(&cache);
        let again = cache.key(&url, Some("k"), "ES256").await;
        assert!(matches!(again, Err(KeyError::Fetch(_))), "{again:?}");
        assert_eq!(
            budget_left(&cache),
            before,
            "the failure was remembered, not refetched"
        );
    }
}
