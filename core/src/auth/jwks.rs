//! JSON Web Key Sets: fetched once, cached, refetched when a token names a key the cache does
//! not hold, with bounds on how often that may happen, per set and across all of them.
//!
//! A set is remote (a URL: the auth backend's, another backend's plugin, an external issuer) or
//! local: the keys of a plugin this backend serves, read in-process from where the plugin keeps
//! them, so verifying a token from a neighbour never takes one of the server's own connections.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
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
#[derive(Debug)]
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

#[derive(Default)]
struct Fetched {
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

struct KeySet {
    /// The URL, or `local:<pluginId>`: the cache key and the name in messages.
    name: String,
    source: Source,
    current: RwLock<Option<(Instant, Arc<Fetched>)>>,
    fetching: tokio::sync::Mutex<()>,
    failed: Mutex<Option<(Instant, String)>>,
}

/// Every remote key set this backend reads, by URL, and the HTTP client that fetches them.
pub(crate) struct JwksCache {
    http: reqwest::Client,
    timeout: Duration,
    sets: Mutex<HashMap<String, Arc<KeySet>>>,
    forced: Mutex<Vec<Instant>>,
    fetches: Mutex<Vec<Instant>>,
}

impl JwksCache {
    pub(crate) fn new(http: reqwest::Client, timeout: Duration) -> Self {
        JwksCache {
            http,
            timeout,
            sets: Mutex::new(HashMap::new()),
            forced: Mutex::new(Vec::new()),
            fetches: Mutex::new(Vec::new()),
        }
    }

    fn set(&self, name: &str, source: impl FnOnce() -> Source) -> Arc<KeySet> {
        let mut sets = self.sets.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = sets.get(name) {
            return set.clone();
        }
        if sets.len() >= 100 {
            sets.clear();
        }
        let set = Arc::new(KeySet {
            name: name.to_owned(),
            source: source(),
            current: RwLock::new(None),
            fetching: tokio::sync::Mutex::new(()),
            failed: Mutex::new(None),
        });
        sets.insert(name.to_owned(), set.clone());
        set
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

    fn try_forced(&self) -> bool {
        Self::take(&self.forced, FORCED_LIMIT, FORCED_WINDOW)
    }

    /// The key of the set at `url` for a token with `kid` and `alg`.
    pub(crate) async fn key(
        &self,
        url: &str,
        kid: Option<&str>,
        alg: &str,
    ) -> Result<Arc<VerifyKey>, KeyError> {
        let set = self.set(url, || Source::Remote(url.to_owned()));
        self.key_of(&set, kid, alg).await
    }

    /// The key of local plugin `plugin_id`, whose keys are `keys`, for a token with `kid` and
    /// `alg`.
    pub(crate) async fn local_key(
        &self,
        plugin_id: &str,
        keys: impl FnOnce() -> Arc<super::keys::KeySource>,
        kid: Option<&str>,
        alg: &str,
    ) -> Result<Arc<VerifyKey>, KeyError> {
        let set = self.set(&format!("local:{plugin_id}"), || Source::Local(keys()));
        self.key_of(&set, kid, alg).await
    }

    async fn key_of(
        &self,
        set: &KeySet,
        kid: Option<&str>,
        alg: &str,
    ) -> Result<Arc<VerifyKey>, KeyError> {
        let snapshot = set
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        if let Some((at, fetched)) = &snapshot
            && at.elapsed() < MAX_AGE
            && let Some(key) = fetched.find(kid, alg)
        {
            return Ok(key);
        }
        let _fetching = set.fetching.lock().await;
        // Another request may have fetched while this one waited.
        let latest = set
            .current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let fetched_meanwhile = match (&snapshot, &latest) {
            (None, Some(_)) => true,
            (Some((a, _)), Some((b, _))) => b > a,
            _ => false,
        };
        if let Some((at, fetched)) = &latest {
            if let Some(key) = fetched.find(kid, alg)
                && at.elapsed() < MAX_AGE
            {
                return Ok(key);
            }
            let may_fetch = at.elapsed() >= MAX_AGE
                || (!fetched_meanwhile && (at.elapsed() >= COOLDOWN || self.try_forced()));
            if !may_fetch {
                return Err(KeyError::NoMatchingKey);
            }
        }
        if let Some((at, why)) = &*set.failed.lock().unwrap_or_else(|p| p.into_inner())
            && at.elapsed() < FAILURE_BACKOFF
        {
            return Err(KeyError::Fetch(why.clone()));
        }
        if !Self::take(&self.fetches, BUDGET, BUDGET_WINDOW) {
            return Err(KeyError::Fetch(format!(
                "not fetching {}: {BUDGET} key set fetches in the last minute already",
                set.name
            )));
        }
        let fetched = match &set.source {
            Source::Remote(url) => self.fetch(url).await,
            Source::Local(keys) => local(keys).await,
        };
        let fetched = match fetched {
            Ok(fetched) => Arc::new(fetched),
            Err(e) => {
                let why = match &e {
                    KeyError::Fetch(why) => why.clone(),
                    KeyError::NoMatchingKey => String::new(),
                };
                *set.failed.lock().unwrap_or_else(|p| p.into_inner()) = Some((Instant::now(), why));
                return Err(e);
            }
        };
        *set.current.write().unwrap_or_else(|p| p.into_inner()) =
            Some((Instant::now(), fetched.clone()));
        fetched.find(kid, alg).ok_or(KeyError::NoMatchingKey)
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
        Fetched { keys }
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
