//! Backstage's token rules: which token is which, how each is verified, and how plugin tokens
//! and limited user tokens are made.
//!
//! A token is looked at in Backstage's order: a plugin token (`typ: vnd.backstage.plugin`),
//! then a user token (`typ: vnd.backstage.user` or `vnd.backstage.limited-user`, or an older one
//! whose `aud` is `backstage`), then external access. A token that claims to be a plugin or
//! user token and fails verification is refused with that type's message; it is never tried as
//! something else.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::external::ExternalAccess;
use super::jwks::JwksCache;
use super::jws::{self, Jws, LIMITED_USER_TYP, PLUGIN_TYP, USER_AUD, USER_TYP};
use super::keys::{DatabaseKeys, KEY_DURATION, KeySource, StaticKeys};
use super::{AuthenticateOptions, Authenticator, Credentials, Principal, UserPrincipal};
use crate::discovery::Discovery;
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, Root, Service as ServiceTrait, ServiceContext};

/// How long a JWKS fetch may take before the token it was for is refused.
pub(crate) const JWKS_TIMEOUT: Duration = Duration::from_secs(5);

/// What every plugin's auth shares: config, external access, key caches, the HTTP client, and
/// the keys of the plugins this backend serves.
pub(crate) struct Shared {
    pub(crate) external: ExternalAccess,
    pub(crate) jwks: JwksCache,
    pub(crate) discovery: Discovery,
    pub(crate) http: reqwest::Client,
    pub(crate) static_keys: Option<Arc<StaticKeys>>,
    pub(crate) disable_default_auth_policy: bool,
    /// The plugins this backend serves: their tokens are checked against their keys in-process.
    local_plugins: Vec<&'static str>,
    /// Where local plugins' keys are made: one key source per plugin, shared by the plugin's
    /// own `Auth` (which signs) and every verifier here.
    local_keys: Mutex<HashMap<&'static str, Arc<KeySource>>>,
    databases: crate::database::DatabaseManager,
}

impl Shared {
    /// The key source of plugin `plugin_id` of this backend.
    pub(crate) fn keys_of(&self, plugin_id: &'static str) -> Arc<KeySource> {
        let mut keys = self.local_keys.lock().unwrap_or_else(|p| p.into_inner());
        keys.entry(plugin_id)
            .or_insert_with(|| {
                Arc::new(match &self.static_keys {
                    Some(keys) => KeySource::Static(keys.clone()),
                    None => {
                        KeySource::Database(DatabaseKeys::new(plugin_id, self.databases.clone()))
                    }
                })
            })
            .clone()
    }

    /// `plugin_id` as the id of a plugin this backend serves.
    fn local_plugin(&self, plugin_id: &str) -> Option<&'static str> {
        self.local_plugins.iter().copied().find(|p| *p == plugin_id)
    }
}

/// The root service holding [`Shared`], read from config once per backend.
#[derive(Clone)]
pub(crate) struct SharedAuth(pub(crate) Arc<Shared>);

impl ServiceTrait for SharedAuth {
    type Scope = Root;
    const ID: &'static str = "core.auth.shared";
    const DEPENDENCIES: &'static [&'static str] = crate::plugin::dependencies!(
        crate::config::RootConfig,
        crate::discovery::Discovery,
        crate::database::DatabaseManager
    );
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let config = ctx.config();
            let http = reqwest::Client::builder()
                .connect_timeout(JWKS_TIMEOUT)
                .build()
                .map_err(|e| Error::internal(format!("could not build an HTTP client: {e}")))?;
            Ok(SharedAuth(Arc::new(Shared {
                external: ExternalAccess::from_config(config)?,
                jwks: JwksCache::new(http.clone(), JWKS_TIMEOUT),
                discovery: ctx.get::<Discovery>().await?,
                http,
                static_keys: StaticKeys::from_config(config)?.map(Arc::new),
                disable_default_auth_policy: config
                    .get_optional("backend.auth.dangerouslyDisableDefaultAuthPolicy")?
                    .unwrap_or(false),
                local_plugins: ctx
                    .instance_metadata()
                    .plugins()
                    .iter()
                    .map(|p| p.id)
                    .collect(),
                local_keys: Mutex::default(),
                databases: ctx.get::<crate::database::DatabaseManager>().await?,
            })))
        })
    }
}

/// Backstage's `auth` service for one plugin.
pub(crate) struct BackstageAuthenticator {
    plugin_id: &'static str,
    shared: Arc<Shared>,
    keys: Option<Arc<KeySource>>,
}

/// A plugin id as Backstage accepts one in a plugin token's `sub`.
fn is_plugin_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn seconds_to_time(secs: f64) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs_f64(secs.max(0.0))
}

impl BackstageAuthenticator {
    pub(crate) fn new(plugin_id: &'static str, shared: Arc<Shared>, keys: Arc<KeySource>) -> Self {
        BackstageAuthenticator {
            plugin_id,
            shared,
            keys: Some(keys),
        }
    }

    /// The root's auth: verifies, but has no keys to sign with.
    pub(crate) fn root(shared: Arc<Shared>) -> Self {
        BackstageAuthenticator {
            plugin_id: "root",
            shared,
            keys: None,
        }
    }

    /// Checks `jws`'s signature with the key its header names in the key set at `url`; the
    /// error says why (for the log line, never for the caller).
    async fn check_signature(&self, url: &str, jws: &Jws<'_>) -> std::result::Result<(), String> {
        let alg = jws.header.alg.as_str();
        let key = self
            .shared
            .jwks
            .key(url, jws.header.kid.as_deref(), alg)
            .await
            .map_err(|e| e.to_string())?;
        if key.verify(alg, jws.signing_input.as_bytes(), &jws.signature) {
            Ok(())
        } else {
            Err("signature verification failed".to_owned())
        }
    }

    /// An external token: a static token is compared here and answered at once; a signed one
    /// is checked against the legacy secrets and JWKS issuers in a boxed future.
    fn verify_external<'a>(
        &'a self,
        token: &'a str,
        parsed: Option<Jws<'a>>,
    ) -> BoxFuture<'a, Result<Credentials>> {
        let external = &self.shared.external;
        if let Some(creds) = external.statics.verify(token) {
            return Box::pin(std::future::ready(Ok(creds.clone())));
        }
        let Some(jws) = parsed else {
            return Box::pin(std::future::ready(Err(Error::authentication(
                "Illegal token",
            ))));
        };
        Box::pin(async move {
            match external.verify_signed(&jws, &self.shared.jwks).await? {
                Some(creds) => Ok(creds),
                None => Err(Error::authentication("Illegal token")),
            }
        })
    }

    async fn verify_plugin(&self, jws: &Jws<'_>) -> Result<Credentials> {
        let Some(sub) = jws.claims.sub.as_deref() else {
            return Err(Error::authentication(
                "Invalid plugin token: missing subject",
            ));
        };
        if !is_plugin_id(sub) {
            return Err(Error::authentication(
                "Invalid plugin token: forbidden subject format",
            ));
        }
        let failed = |why: &dyn std::fmt::Display| {
            tracing::warn!(
                plugin = self.plugin_id,
                "Failed to verify incoming plugin token from '{sub}': {why}"
            );
            Error::authentication("Failed plugin token verification")
        };
        // A plugin of this backend: its keys, in-process. A plugin elsewhere: its JWKS where
        // discovery.endpoints says. Any other plugin id cannot have signed anything that a
        // fetch could confirm (discovery would point at this very backend): no fetch.
        let alg = jws.header.alg.as_str();
        let kid = jws.header.kid.as_deref();
        let key = if let Some(local) = self.shared.local_plugin(sub) {
            self.shared
                .jwks
                .local_key(local, || self.shared.keys_of(local), kid, alg)
                .await
        } else if self.shared.discovery.lists(sub) {
            let url = format!(
                "{}/.backstage/auth/v1/jwks.json",
                self.shared.discovery.base_url(sub)
            );
            self.shared.jwks.key(&url, kid, alg).await
        } else {
            return Err(failed(&format!(
                "'{sub}' is neither a plugin of this backend nor listed in discovery.endpoints"
            )));
        };
        let key = key.map_err(|e| failed(&e))?;
        if !key.verify(alg, jws.signing_input.as_bytes(), &jws.signature) {
            return Err(failed(&"signature verification failed"));
        }
        jws.claims
            .check(&["iat", "exp", "sub", "aud"])
            .map_err(|e| failed(&e))?;
        if !jws
            .claims
            .aud
            .as_ref()
            .is_some_and(|aud| aud.contains(self.plugin_id))
        {
            return Err(failed(&jws::ClaimError::Audience));
        }
        let subject = format!("plugin:{sub}");
        match &jws.claims.obo {
            Some(obo) => {
                let parsed = jws::decode(obo).filter(|o| {
                    matches!(o.header.typ.as_deref(), Some(USER_TYP | LIMITED_USER_TYP))
                });
                let Some(parsed) = parsed else {
                    return Err(Error::authentication(
                        "Invalid user token in plugin token obo claim",
                    ));
                };
                let user = self.verify_user(obo, &parsed).await?;
                Ok(user.with_actor(subject))
            }
            None => Ok(Credentials::service(subject)),
        }
    }

    async fn verify_user(&self, token: &str, jws: &Jws<'_>) -> Result<Credentials> {
        let failed = |why: &dyn std::fmt::Display| {
            tracing::warn!(
                plugin = self.plugin_id,
                "Failed to verify incoming user token: {why}"
            );
            Error::authentication("Failed user token verification")
        };
        let url = format!(
            "{}/.well-known/jwks.json",
            self.shared.discovery.base_url("auth")
        );
        self.check_signature(&url, jws)
            .await
            .map_err(|why| failed(&why))?;
        jws.claims
            .check(&["iat", "exp", "sub"])
            .map_err(|e| failed(&e))?;
        if let Some(aud) = &jws.claims.aud
            && !aud.contains(USER_AUD)
        {
            return Err(failed(&jws::ClaimError::Audience));
        }
        let Some(sub) = jws.claims.sub.as_deref().filter(|s| !s.is_empty()) else {
            return Err(Error::authentication("No user sub found in token"));
        };
        let creds = Credentials::new(Principal::User(UserPrincipal {
            user_entity_ref: sub.to_owned(),
            ownership_entity_refs: jws.claims.ent.clone(),
        }));
        Ok(creds.with_token(token, jws.claims.exp.map(seconds_to_time)))
    }

    async fn issue(
        &self,
        target_plugin_id: &str,
        on_behalf_of: Option<(String, SystemTime)>,
    ) -> Result<String> {
        #[derive(Serialize)]
        struct Header<'a> {
            typ: &'a str,
            alg: &'a str,
            kid: &'a str,
        }
        #[derive(Serialize)]
        struct Claims<'a> {
            sub: &'a str,
            aud: &'a str,
            iat: u64,
            exp: u64,
            #[serde(skip_serializing_if = "Option::is_none")]
            obo: Option<&'a str>,
        }
        let keys = self
            .keys
            .as_ref()
            .ok_or_else(|| Error::internal("only plugins issue plugin tokens"))?;
        let key = keys.signing_key().await?;
        let iat = jws::now_secs() as u64;
        let mut exp = iat + KEY_DURATION.as_secs();
        if let Some((_, expires)) = &on_behalf_of {
            let obo_exp = expires
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            exp = exp.min(obo_exp);
        }
        let header = serde_json::to_string(&Header {
            typ: PLUGIN_TYP,
            alg: "ES256",
            kid: &key.kid,
        })
        .map_err(|e| Error::internal(e.to_string()))?;
        let claims = serde_json::to_string(&Claims {
            sub: self.plugin_id,
            aud: target_plugin_id,
            iat,
            exp,
            obo: on_behalf_of.as_ref().map(|(token, _)| token.as_str()),
        })
        .map_err(|e| Error::internal(e.to_string()))?;
        jws::sign_es256(&key.pair, &header, &claims)
            .map_err(|_| Error::internal("could not sign a plugin token"))
    }
}

/// The limited token of a user token, as Backstage's auth backend prepared it: the user token's
/// `uip` claim is the signature of exactly this header and payload, so their JSON must match
/// the auth backend's byte for byte (key order `typ, alg, kid` and `sub, iat, exp`).
pub(crate) fn limited_user_token(token: &str) -> Result<(String, SystemTime)> {
    #[derive(serde::Deserialize, Serialize)]
    struct Header {
        #[serde(skip_serializing_if = "Option::is_none")]
        typ: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        alg: Option<serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        kid: Option<serde_json::Value>,
    }
    #[derive(serde::Deserialize)]
    struct Payload {
        sub: Option<serde_json::Value>,
        iat: Option<serde_json::Value>,
        exp: Option<serde_json::Number>,
        uip: Option<String>,
    }
    #[derive(Serialize)]
    struct Limited<'a> {
        #[serde(skip_serializing_if = "Option::is_none")]
        sub: Option<&'a serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        iat: Option<&'a serde_json::Value>,
        #[serde(skip_serializing_if = "Option::is_none")]
        exp: Option<&'a serde_json::Number>,
    }
    let invalid = || Error::authentication("Failed to create limited user token, invalid token");
    let mut parts = token.split('.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return Err(invalid());
    };
    let header: Header = jws::b64_decode(header)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)?;
    let payload: Payload = jws::b64_decode(payload)
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or_else(invalid)?;
    let expires_at = payload
        .exp
        .as_ref()
        .and_then(serde_json::Number::as_f64)
        .map(seconds_to_time)
        .ok_or_else(invalid)?;
    match header.typ.as_deref() {
        None | Some(LIMITED_USER_TYP) => return Ok((token.to_owned(), expires_at)),
        Some(USER_TYP) => {}
        Some(_) => {
            return Err(Error::authentication(
                "Failed to create limited user token, invalid token type",
            ));
        }
    }
    let Some(uip) = &payload.uip else {
        return Ok((token.to_owned(), expires_at));
    };
    let limited_header = Header {
        typ: Some(LIMITED_USER_TYP.to_owned()),
        alg: header.alg,
        kid: header.kid,
    };
    let limited_payload = Limited {
        sub: payload.sub.as_ref(),
        iat: payload.iat.as_ref(),
        exp: payload.exp.as_ref(),
    };
    let (Some(h), Some(p)) = (encode(&limited_header), encode(&limited_payload)) else {
        return Err(invalid());
    };
    Ok((format!("{h}.{p}.{uip}"), expires_at))
}

/// `value` as JSON, base64url-encoded.
fn encode<T: Serialize>(value: &T) -> Option<String> {
    serde_json::to_string(value)
        .ok()
        .map(|json| jws::b64_encode(json.as_bytes()))
}

impl Authenticator for BackstageAuthenticator {
    /// Decides synchronously which check a token needs, and boxes only that check's future: a
    /// static token (the common service caller) is answered without an async state machine, and
    /// no request pays for the size of the JWKS lookup it does not make.
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
        options: AuthenticateOptions,
    ) -> BoxFuture<'a, Result<Credentials>> {
        if token.len() > jws::MAX_TOKEN_BYTES {
            return Box::pin(std::future::ready(Err(Error::authentication(
                "Illegal token",
            ))));
        }
        let parsed = jws::decode(token);
        if let Some(jws) = parsed {
            match jws.header.typ.as_deref() {
                Some(PLUGIN_TYP) => return Box::pin(async move { self.verify_plugin(&jws).await }),
                Some(USER_TYP) => {
                    return Box::pin(async move { self.verify_user(token, &jws).await });
                }
                Some(LIMITED_USER_TYP) => {
                    return Box::pin(async move {
                        let creds = self.verify_user(token, &jws).await?;
                        if !options.allow_limited_access {
                            return Err(Error::authentication("Illegal limited user token"));
                        }
                        Ok(creds)
                    });
                }
                _ if jws
                    .claims
                    .aud
                    .as_ref()
                    .is_some_and(|aud| aud.contains(USER_AUD)) =>
                {
                    return Box::pin(async move { self.verify_user(token, &jws).await });
                }
                _ => return self.verify_external(token, Some(jws)),
            }
        }
        self.verify_external(token, None)
    }

    fn plugin_request_token<'a>(
        &'a self,
        _plugin_id: &'a str,
        on_behalf_of: &'a Credentials,
        target_plugin_id: &'a str,
    ) -> BoxFuture<'a, Result<String>> {
        Box::pin(async move {
            match on_behalf_of.any() {
                Principal::None if self.shared.disable_default_auth_policy => Ok(String::new()),
                Principal::Service(_) => self.issue(target_plugin_id, None).await,
                Principal::User(_) => {
                    let token = on_behalf_of.token().ok_or_else(|| {
                        Error::internal("User credentials is unexpectedly missing token")
                    })?;
                    let limited = limited_user_token(token)?;
                    self.issue(target_plugin_id, Some(limited)).await
                }
                other => Err(Error::authentication(format!(
                    "Refused to issue service token for credential type '{}'",
                    other.type_name()
                ))),
            }
        })
    }

    fn limited_user_token<'a>(
        &'a self,
        credentials: &'a Credentials,
    ) -> BoxFuture<'a, Result<(String, SystemTime)>> {
        Box::pin(async move {
            let token = credentials.token().ok_or_else(|| {
                Error::authentication("User credentials is unexpectedly missing token")
            })?;
            limited_user_token(token)
        })
    }

    fn public_keys<'a>(
        &'a self,
        _plugin_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>>> {
        Box::pin(async move {
            match &self.keys {
                Some(keys) => keys.public_keys().await,
                None => Ok(Vec::new()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plugin_tokens_for_a_user_expire_with_the_user_token() {
        let manager = crate::database::DatabaseManager::for_tests(
            crate::config::RootConfig::from_value(serde_json::json!({})),
        );
        let shared = Arc::new(Shared {
            external: ExternalAccess::default(),
            jwks: JwksCache::new(reqwest::Client::new(), JWKS_TIMEOUT),
            discovery: Discovery::new("http://localhost:7007", "http://localhost:7007"),
            http: reqwest::Client::new(),
            static_keys: None,
            disable_default_auth_policy: false,
            local_plugins: vec!["alpha"],
            local_keys: Mutex::default(),
            databases: manager.clone(),
        });
        let keys = shared.keys_of("alpha");
        let auth = BackstageAuthenticator::new("alpha", shared, keys);
        let user_exp = jws::now_secs() as u64 + 600;
        let pair = jws::generate_es256().unwrap();
        let user = jws::sign_es256(
            &pair,
            r#"{"typ":"vnd.backstage.user","alg":"ES256","kid":"k"}"#,
            &format!(r#"{{"sub":"user:default/a","aud":"backstage","iat":1,"exp":{user_exp},"uip":"c2ln"}}"#),
        )
        .unwrap();
        let creds = Credentials::user("user:default/a").with_token(&user, None);
        let token = auth
            .plugin_request_token("alpha", &creds, "beta")
            .await
            .unwrap();
        let claims = jws::decode(&token).unwrap().claims;
        assert_eq!(
            claims.exp,
            Some(user_exp as f64),
            "capped by the user token"
        );
        assert_eq!(claims.sub.as_deref(), Some("alpha"));
        let obo = claims.obo.unwrap();
        assert!(
            obo.ends_with(".c2ln"),
            "the limited token carries the user's uip"
        );

        let own = Credentials::service("plugin:alpha");
        let token = auth
            .plugin_request_token("alpha", &own, "beta")
            .await
            .unwrap();
        let claims = jws::decode(&token).unwrap().claims;
        let lifetime = claims.exp.unwrap() - claims.iat.unwrap();
        assert_eq!(lifetime, 3600.0, "an hour for the plugin itself");
        assert!(claims.obo.is_none());
        let none = auth
            .plugin_request_token("alpha", &Credentials::none(), "beta")
            .await;
        assert_eq!(
            none.unwrap_err().message(),
            "Refused to issue service token for credential type 'none'"
        );
        manager.close().await;
    }

    #[test]
    fn plugin_ids_follow_backstage_pattern() {
        assert!(is_plugin_id("catalog"));
        assert!(is_plugin_id("my_plugin-2"));
        assert!(!is_plugin_id(""));
        assert!(!is_plugin_id("../etc"));
        assert!(!is_plugin_id("a b"));
        assert!(!is_plugin_id("evil.example.com"));
    }

    #[test]
    fn limited_tokens_keep_the_auth_backends_bytes() {
        // A user token as the auth backend makes one: `uip` signs the limited form.
        let pair = jws::generate_es256().unwrap();
        let limited_header = r#"{"typ":"vnd.backstage.limited-user","alg":"ES256","kid":"k-1"}"#;
        let limited_payload = r#"{"sub":"user:default/alice","iat":1700000000,"exp":4000000000}"#;
        let limited = jws::sign_es256(&pair, limited_header, limited_payload).unwrap();
        let uip = limited.rsplit('.').next().unwrap();
        let user_header = r#"{"typ":"vnd.backstage.user","alg":"ES256","kid":"k-1"}"#;
        let user_payload = format!(
            r#"{{"iss":"http://localhost:7007/api/auth","sub":"user:default/alice","ent":["user:default/alice"],"aud":"backstage","iat":1700000000,"exp":4000000000,"uip":"{uip}"}}"#
        );
        let user = jws::sign_es256(&pair, user_header, &user_payload).unwrap();
        let (made, expires) = limited_user_token(&user).unwrap();
        assert_eq!(made, limited);
        assert_eq!(expires, UNIX_EPOCH + Duration::from_secs(4_000_000_000));
        // A limited token stays what it is.
        assert_eq!(limited_user_token(&limited).unwrap().0, limited);
    }
}
