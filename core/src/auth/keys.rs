//! The signing keys of a plugin's outgoing plugin tokens, and the public keys it serves at
//! `/.backstage/auth/v1/jwks.json`.
//!
//! Two sources, as in Backstage (`backend.auth.pluginKeyStore.type`):
//! - `database` (the default): each instance makes its own P-256 key pair for each plugin, uses
//!   it for an hour, and stores the public half for three hours in the table
//!   `backstage_backend_public_keys__keys` of the plugin's own database, so every instance's
//!   JWKS lists the keys of all instances.
//! - `static`: key pairs read from PEM files (`static.keys[].publicKeyFile`, `privateKeyFile`,
//!   `keyId`); the first entry signs and must have a private key.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair};
use serde::Deserialize;
use sqlx::Row;
use tokio::sync::OnceCell;

use super::jws;
use crate::config::RootConfig;
use crate::database::{Database, DatabaseManager, Engine};
use crate::error::{Error, Result};

/// How long a generated key signs tokens (and how long a plugin token lives at most).
pub(crate) const KEY_DURATION: Duration = Duration::from_secs(60 * 60);
/// Public keys outlive their signing period by this factor, so tokens signed last stay valid.
const KEY_EXPIRATION_FACTOR: u32 = 3;
const TABLE: &str = "backstage_backend_public_keys__keys";

/// A private key that signs, with its key id.
pub(crate) struct SigningKey {
    pub(crate) kid: String,
    pub(crate) pair: EcdsaKeyPair,
    /// When this key stops signing.
    until: Instant,
}

/// Where a plugin's keys come from.
pub(crate) enum KeySource {
    Database(DatabaseKeys),
    Static(Arc<StaticKeys>),
}

impl KeySource {
    /// The key that signs now.
    pub(crate) async fn signing_key(&self) -> Result<Arc<SigningKey>> {
        match self {
            KeySource::Database(keys) => keys.signing_key().await,
            KeySource::Static(keys) => Ok(keys.signing.clone()),
        }
    }

    /// The public keys other services verify this plugin's tokens with.
    pub(crate) async fn public_keys(&self) -> Result<Vec<serde_json::Value>> {
        match self {
            KeySource::Database(keys) => keys.list().await,
            KeySource::Static(keys) => Ok(keys.public.clone()),
        }
    }
}

/// Keys kept in the plugin's database.
pub(crate) struct DatabaseKeys {
    plugin_id: &'static str,
    manager: DatabaseManager,
    database: OnceCell<Database>,
    table: OnceCell<()>,
    current: Mutex<Option<Arc<SigningKey>>>,
    rotating: tokio::sync::Mutex<()>,
    /// How long a key signs: [`KEY_DURATION`] (shorter in tests).
    duration: Duration,
}

impl DatabaseKeys {
    pub(crate) fn new(plugin_id: &'static str, manager: DatabaseManager) -> Self {
        DatabaseKeys {
            plugin_id,
            manager,
            database: OnceCell::new(),
            table: OnceCell::new(),
            current: Mutex::new(None),
            rotating: tokio::sync::Mutex::new(()),
            duration: KEY_DURATION,
        }
    }

    /// Uses the plugin's own database handle (one pool per plugin) when the plugin has one.
    pub(crate) fn share_database(&self, database: Database) {
        let _ = self.database.set(database);
    }

    /// The plugin's database, with the key table in it. Connected on first use, so a plugin
    /// that never signs nor serves keys never opens a connection for them.
    async fn database(&self) -> Result<&Database> {
        let database = self
            .database
            .get_or_try_init(|| self.manager.for_plugin(self.plugin_id))
            .await?;
        let create = match database.engine() {
            Engine::Postgres => format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (id varchar(255) NOT NULL PRIMARY KEY, key text NOT NULL, expires_at timestamptz NOT NULL)"
            ),
            Engine::MySql => format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (id varchar(255) NOT NULL PRIMARY KEY, `key` text NOT NULL, expires_at timestamp NOT NULL)"
            ),
            Engine::Sqlite => format!(
                "CREATE TABLE IF NOT EXISTS {TABLE} (id varchar(255) NOT NULL PRIMARY KEY, key text NOT NULL, expires_at bigint NOT NULL)"
            ),
        };
        self.table
            .get_or_try_init(|| async {
                sqlx::query(&create)
                    .execute(database.pool())
                    .await
                    .map(|_| ())
                    .map_err(|e| self.error("could not create the public key table", &e))
            })
            .await?;
        Ok(database)
    }

    fn error(&self, what: &str, e: &sqlx::Error) -> Error {
        Error::internal(format!(
            "plugin '{}': {what} ({TABLE}): {e}",
            self.plugin_id
        ))
    }

    async fn signing_key(&self) -> Result<Arc<SigningKey>> {
        if let Some(key) = self.fresh() {
            return Ok(key);
        }
        let _rotating = self.rotating.lock().await;
        if let Some(key) = self.fresh() {
            return Ok(key);
        }
        let pair = jws::generate_es256()
            .map_err(|_| Error::internal("could not generate a signing key"))?;
        let kid = uuid::Uuid::new_v4().to_string();
        let public = jws::es256_public_jwk(&pair, &kid).to_string();
        let keep = self.duration * KEY_EXPIRATION_FACTOR;
        let database = self.database().await?;
        let insert = match database.engine() {
            Engine::Postgres => format!(
                "INSERT INTO {TABLE} (id, key, expires_at) VALUES ($1, $2, now() + interval '{} seconds')",
                keep.as_secs()
            ),
            Engine::MySql => format!(
                "INSERT INTO {TABLE} (id, `key`, expires_at) VALUES (?, ?, CURRENT_TIMESTAMP + INTERVAL {} SECOND)",
                keep.as_secs()
            ),
            Engine::Sqlite => {
                format!("INSERT INTO {TABLE} (id, key, expires_at) VALUES (?, ?, ?)")
            }
        };
        let mut query = sqlx::query(&insert).bind(kid.clone()).bind(public);
        if database.engine() == Engine::Sqlite {
            query = query.bind(epoch_millis() + keep.as_millis() as i64);
        }
        query
            .execute(database.pool())
            .await
            .map_err(|e| self.error("could not store a public key", &e))?;
        tracing::info!(plugin = self.plugin_id, "Created new signing key {kid}");
        let key = Arc::new(SigningKey {
            kid,
            pair,
            until: Instant::now() + self.duration,
        });
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) = Some(key.clone());
        Ok(key)
    }

    fn fresh(&self) -> Option<Arc<SigningKey>> {
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        current
            .as_ref()
            .filter(|key| key.until > Instant::now())
            .cloned()
    }

    /// The unexpired public keys of every instance; expired ones are deleted on the way.
    async fn list(&self) -> Result<Vec<serde_json::Value>> {
        let database = self.database().await?;
        let (select, delete) = match database.engine() {
            Engine::Postgres => (
                format!("SELECT key FROM {TABLE} WHERE expires_at > now()"),
                format!("DELETE FROM {TABLE} WHERE expires_at <= now()"),
            ),
            Engine::MySql => (
                format!("SELECT `key` FROM {TABLE} WHERE expires_at > CURRENT_TIMESTAMP"),
                format!("DELETE FROM {TABLE} WHERE expires_at <= CURRENT_TIMESTAMP"),
            ),
            Engine::Sqlite => (
                format!("SELECT key FROM {TABLE} WHERE expires_at > ?"),
                format!("DELETE FROM {TABLE} WHERE expires_at <= ?"),
            ),
        };
        let now = epoch_millis();
        let mut query = sqlx::query(&select);
        let mut cleanup = sqlx::query(&delete);
        if database.engine() == Engine::Sqlite {
            query = query.bind(now);
            cleanup = cleanup.bind(now);
        }
        let rows = query
            .fetch_all(database.pool())
            .await
            .map_err(|e| self.error("could not list public keys", &e))?;
        if let Err(e) = cleanup.execute(database.pool()).await {
            tracing::warn!(
                plugin = self.plugin_id,
                "could not delete expired public keys: {e}"
            );
        }
        let mut keys = Vec::with_capacity(rows.len());
        for row in rows {
            // MySQL hands text columns to the portable driver as bytes.
            let text: String = match row.try_get::<String, _>(0) {
                Ok(text) => text,
                Err(_) => row
                    .try_get::<Vec<u8>, _>(0)
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
                    .map_err(|e| self.error("could not read a public key", &e))?,
            };
            match serde_json::from_str(&text) {
                Ok(key) => keys.push(key),
                Err(e) => {
                    tracing::warn!(
                        plugin = self.plugin_id,
                        "skipping a malformed public key: {e}"
                    )
                }
            }
        }
        Ok(keys)
    }
}

/// Key pairs read from files (`backend.auth.pluginKeyStore.type: static`).
pub(crate) struct StaticKeys {
    signing: Arc<SigningKey>,
    public: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct StaticKeyConfig {
    public_key_file: String,
    #[serde(default)]
    private_key_file: Option<String>,
    key_id: String,
    #[serde(default)]
    algorithm: Option<String>,
}

/// The DER prefix of a P-256 public key in SubjectPublicKeyInfo form; the point follows.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

impl StaticKeys {
    /// Reads `backend.auth.pluginKeyStore` when its type is `static`; `None` for the database
    /// store. Errors name the key and the file.
    pub(crate) fn from_config(config: &RootConfig) -> Result<Option<Self>> {
        const KEY: &str = "backend.auth.pluginKeyStore";
        let kind: Option<String> = config.get_optional(&format!("{KEY}.type"))?;
        match kind.as_deref() {
            None | Some("database") => return Ok(None),
            Some("static") => {}
            Some(other) => {
                return Err(Error::input(format!(
                    "{KEY}.type: unknown key store '{other}'; use 'database' or 'static'"
                )));
            }
        }
        let entries: Vec<StaticKeyConfig> = config
            .get_optional(&format!("{KEY}.static.keys"))?
            .unwrap_or_default();
        if entries.is_empty() {
            return Err(Error::input(format!(
                "{KEY}.static.keys: at least one key pair is required when the static key store is used"
            )));
        }
        let mut public = Vec::new();
        let mut signing = None;
        for (i, entry) in entries.iter().enumerate() {
            let at = format!("{KEY}.static.keys[{i}]");
            if let Some(alg) = &entry.algorithm
                && alg != "ES256"
            {
                return Err(Error::input(format!(
                    "{at}.algorithm: only ES256 keys are supported, not '{alg}'"
                )));
            }
            let spki = read_pem(&entry.public_key_file, &at, "publicKeyFile")?;
            let point = spki
                .strip_prefix(&P256_SPKI_PREFIX[..])
                .filter(|point| point.len() == 65)
                .ok_or_else(|| {
                    Error::input(format!(
                        "{at}.publicKeyFile: {} is not a P-256 public key in SPKI PEM form",
                        entry.public_key_file
                    ))
                })?;
            let (x, y) = point[1..].split_at(32);
            public.push(serde_json::json!({
                "kty": "EC",
                "x": jws::b64_encode(x),
                "y": jws::b64_encode(y),
                "crv": "P-256",
                "kid": entry.key_id,
                "alg": "ES256",
            }));
            if i == 0 {
                let Some(file) = &entry.private_key_file else {
                    return Err(Error::input(format!(
                        "{at}.privateKeyFile: the first key pair signs and needs a private key"
                    )));
                };
                let pkcs8 = read_pem(file, &at, "privateKeyFile")?;
                let pair = EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pkcs8,
                    &ring::rand::SystemRandom::new(),
                )
                .map_err(|e| {
                    Error::input(format!(
                        "{at}.privateKeyFile: {file} is not a P-256 private key in PKCS#8 PEM form ({e})"
                    ))
                })?;
                signing = Some(Arc::new(SigningKey {
                    kid: entry.key_id.clone(),
                    pair,
                    // Static keys never rotate.
                    until: Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600),
                }));
            }
        }
        let signing = signing.ok_or_else(|| Error::internal("no signing key"))?;
        Ok(Some(StaticKeys { signing, public }))
    }
}

fn read_pem(path: &str, at: &str, field: &str) -> Result<Vec<u8>> {
    let text = std::fs::read(path)
        .map_err(|e| Error::input(format!("{at}.{field}: cannot read {path}: {e}")))?;
    let mut reader = std::io::BufReader::new(&text[..]);
    match rustls_pemfile::read_one(&mut reader) {
        Ok(Some(rustls_pemfile::Item::SubjectPublicKeyInfo(der))) => Ok(der.as_ref().to_vec()),
        Ok(Some(rustls_pemfile::Item::Pkcs8Key(der))) => Ok(der.secret_pkcs8_der().to_vec()),
        _ => Err(Error::input(format!(
            "{at}.{field}: {path} holds no PEM public key (SPKI) or private key (PKCS#8)"
        ))),
    }
}

fn epoch_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn keys_rotate_and_old_public_keys_stay_listed() {
        let manager = DatabaseManager::for_tests(RootConfig::from_value(serde_json::json!({})));
        let mut keys = DatabaseKeys::new("rotation", manager.clone());
        keys.duration = Duration::from_millis(100);
        let first = keys.signing_key().await.unwrap();
        assert_eq!(
            keys.signing_key().await.unwrap().kid,
            first.kid,
            "reused while fresh"
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        let second = keys.signing_key().await.unwrap();
        assert_ne!(second.kid, first.kid, "a new key once the old one expired");
        let listed: Vec<String> = keys
            .list()
            .await
            .unwrap()
            .iter()
            .map(|k| k["kid"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            listed.contains(&first.kid) && listed.contains(&second.kid),
            "{listed:?}"
        );
        manager.close().await;
    }
}
