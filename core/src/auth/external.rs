//! External access (`backend.auth.externalAccess`): static tokens, legacy shared secrets
//! (HS256) and tokens of an external issuer checked against its JWKS.

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::jwks::JwksCache;
use super::jws::{self, Jws, VerifyKey};
use super::{
    AccessRestrictions, AuthenticateOptions, Authenticator, Credentials, Principal,
    ServicePrincipal,
};
use crate::config::RootConfig;
use crate::error::{Error, Result};
use crate::plugin::BoxFuture;

/// Verifies the static tokens configured under `backend.auth.externalAccess`:
///
/// ```yaml
/// backend:
///   auth:
///     externalAccess:
///       - type: static
///         options:
///           token: ${CI_TOKEN}     # at least 8 characters, no whitespace
///           subject: ci-bot        # the service principal's subject
///         accessRestrictions:      # optional
///           - plugin: carmen
/// ```
///
/// Tokens are compared in constant time. Entries of other types (`legacy`, `jwks`) are read by
/// the backend's auth service and skipped here.
///
/// ```
/// use backstage::StaticTokens;
/// assert!(StaticTokens::from_pairs([("short", "x")]).is_err());
/// assert!(StaticTokens::from_pairs([("long-enough", "ci-bot")]).is_ok());
/// ```
#[derive(Debug, Default)]
pub struct StaticTokens {
    tokens: Vec<(Box<[u8]>, Credentials)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    options: Option<serde_json::Value>,
    #[serde(default)]
    access_restrictions: Option<Vec<Restriction>>,
}

#[derive(Deserialize)]
struct StaticOptions {
    token: Option<String>,
    subject: Option<String>,
}

#[derive(Deserialize)]
struct LegacyOptions {
    secret: Option<String>,
    subject: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JwksOptions {
    url: Option<String>,
    #[serde(default)]
    algorithm: Option<jws::OneOrMany>,
    #[serde(default)]
    issuer: Option<jws::OneOrMany>,
    #[serde(default)]
    audience: Option<jws::OneOrMany>,
    #[serde(default)]
    subject_prefix: Option<String>,
}

#[derive(Deserialize)]
struct Restriction {
    plugin: String,
}

impl StaticTokens {
    /// Tokens from `(token, subject)` pairs, validated as the config is.
    pub fn from_pairs<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self> {
        let mut tokens = StaticTokens::default();
        for (i, (token, subject)) in pairs.into_iter().enumerate() {
            tokens.add(token, subject, None, &format!("static token {i}"))?;
        }
        Ok(tokens)
    }

    /// The static tokens of `backend.auth.externalAccess`; a malformed entry is an error that
    /// names its index (never its token).
    pub fn from_config(config: &RootConfig) -> Result<Self> {
        Ok(ExternalAccess::from_config(config)?.statics)
    }

    fn add(
        &mut self,
        token: &str,
        subject: &str,
        restrictions: Option<AccessRestrictions>,
        key: &str,
    ) -> Result<()> {
        if token.len() < 8 || token.chars().any(char::is_whitespace) {
            return Err(Error::input(format!(
                "{key}.options.token: a static token must be at least 8 characters long and contain no whitespace"
            )));
        }
        if subject.is_empty() || subject.chars().any(char::is_whitespace) {
            return Err(Error::input(format!(
                "{key}.options.subject: must be a non-empty string without whitespace"
            )));
        }
        let principal = Principal::Service(ServicePrincipal {
            subject: subject.to_owned(),
            access_restrictions: restrictions,
        });
        self.tokens
            .push((token.as_bytes().into(), Credentials::new(principal)));
        Ok(())
    }

    /// The credentials of `token`, if it is one of these tokens.
    pub fn verify(&self, token: &str) -> Option<&Credentials> {
        let token = token.as_bytes();
        let mut found = None;
        for (candidate, creds) in &self.tokens {
            if bool::from(candidate.as_ref().ct_eq(token)) {
                found = Some(creds);
            }
        }
        found
    }
}

impl Authenticator for StaticTokens {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
        _options: AuthenticateOptions,
    ) -> BoxFuture<'a, Result<Credentials>> {
        let result = self
            .verify(token)
            .cloned()
            .ok_or_else(|| Error::authentication("Illegal token"));
        Box::pin(std::future::ready(result))
    }
}

/// Enforces a service principal's access restrictions for `plugin_id`.
pub(crate) fn check_restrictions(creds: &Credentials, plugin_id: &str) -> Result<()> {
    if let Principal::Service(ServicePrincipal {
        access_restrictions: Some(AccessRestrictions {
            plugin_id: Some(ids),
        }),
        ..
    }) = creds.any()
        && !ids.iter().any(|id| id == plugin_id)
    {
        return Err(Error::not_allowed(format!(
            "This token's access is restricted to plugin(s) '{}'",
            ids.join("', '")
        )));
    }
    Ok(())
}

/// A legacy shared secret: HS256 tokens with `sub: backstage-server` and no `aud`.
struct Legacy {
    key: VerifyKey,
    credentials: Credentials,
}

/// An external issuer whose tokens are checked against its JWKS.
struct JwksIssuer {
    url: String,
    algorithms: Option<jws::OneOrMany>,
    issuers: Option<jws::OneOrMany>,
    audiences: Option<jws::OneOrMany>,
    subject_prefix: Option<String>,
    restrictions: Option<AccessRestrictions>,
}

/// Every kind of external access the config allows.
#[derive(Default)]
pub(crate) struct ExternalAccess {
    pub(crate) statics: StaticTokens,
    legacy: Vec<Legacy>,
    jwks: Vec<JwksIssuer>,
}

fn options<T: serde::de::DeserializeOwned>(
    value: Option<serde_json::Value>,
    key: &str,
    kind: &str,
) -> Result<T> {
    let value = value
        .ok_or_else(|| Error::input(format!("{key}.options is required for type '{kind}'")))?;
    serde_json::from_value(value).map_err(|e| Error::input(format!("{key}.options: {e}")))
}

fn required(value: Option<String>, key: &str, field: &str) -> Result<String> {
    value.ok_or_else(|| Error::input(format!("{key}.options.{field} is required")))
}

impl ExternalAccess {
    /// Reads `backend.auth.externalAccess` and the deprecated `backend.auth.keys` (legacy
    /// secrets whose subject is `external:backstage-plugin`). Errors name the entry's key,
    /// never a token or secret.
    pub(crate) fn from_config(config: &RootConfig) -> Result<Self> {
        let entries: Vec<Entry> = config
            .get_optional("backend.auth.externalAccess")?
            .unwrap_or_default();
        let mut access = ExternalAccess::default();
        for (i, entry) in entries.into_iter().enumerate() {
            let key = format!("backend.auth.externalAccess[{i}]");
            let restrictions = entry.access_restrictions.map(|list| AccessRestrictions {
                plugin_id: Some(list.into_iter().map(|r| r.plugin).collect()),
            });
            match entry.kind.as_str() {
                "static" => {
                    let o: StaticOptions = options(entry.options, &key, "static")?;
                    let token = required(o.token, &key, "token")?;
                    let subject = required(o.subject, &key, "subject")?;
                    access.statics.add(&token, &subject, restrictions, &key)?;
                }
                "legacy" => {
                    let o: LegacyOptions = options(entry.options, &key, "legacy")?;
                    let secret = required(o.secret, &key, "secret")?;
                    let subject = required(o.subject, &key, "subject")?;
                    access.add_legacy(&secret, &subject, restrictions, &key)?;
                }
                "jwks" => {
                    let o: JwksOptions = options(entry.options, &key, "jwks")?;
                    let url = required(o.url, &key, "url")?;
                    if url.chars().any(char::is_whitespace) || url::Url::parse(&url).is_err() {
                        return Err(Error::input(format!(
                            "{key}.options.url: '{url}' is not a valid URL"
                        )));
                    }
                    access.jwks.push(JwksIssuer {
                        url,
                        algorithms: o.algorithm,
                        issuers: o.issuer,
                        audiences: o.audience,
                        subject_prefix: o.subject_prefix,
                        restrictions,
                    });
                }
                other => {
                    return Err(Error::input(format!(
                        "{key}.type: unknown external access type '{other}'; use 'static', 'legacy' or 'jwks'"
                    )));
                }
            }
        }
        #[derive(Deserialize)]
        struct OldKey {
            secret: Option<String>,
        }
        let old: Vec<OldKey> = config
            .get_optional("backend.auth.keys")?
            .unwrap_or_default();
        for (i, entry) in old.into_iter().enumerate() {
            let key = format!("backend.auth.keys[{i}]");
            let secret = entry
                .secret
                .ok_or_else(|| Error::input(format!("{key}.secret is required")))?;
            access.add_legacy(&secret, "external:backstage-plugin", None, &key)?;
        }
        Ok(access)
    }

    fn add_legacy(
        &mut self,
        secret: &str,
        subject: &str,
        restrictions: Option<AccessRestrictions>,
        key: &str,
    ) -> Result<()> {
        let bytes = (!secret.is_empty() && !secret.chars().any(char::is_whitespace))
            .then(|| jws::decode_secret(secret))
            .flatten()
            .ok_or_else(|| {
                Error::input(format!("{key}: the secret must be a valid base64 string"))
            })?;
        if subject.is_empty() || subject.chars().any(char::is_whitespace) {
            return Err(Error::input(format!(
                "{key}: the subject must be a set of non-space characters"
            )));
        }
        self.legacy.push(Legacy {
            key: VerifyKey::Hmac(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &bytes)),
            credentials: Credentials::new(Principal::Service(ServicePrincipal {
                subject: subject.to_owned(),
                access_restrictions: restrictions,
            })),
        });
        Ok(())
    }

    /// The credentials of a signed external token (a legacy secret's or a JWKS issuer's), `None`
    /// when no external access accepts it. Static tokens are compared before, without a future.
    pub(crate) async fn verify_signed(
        &self,
        jws: &Jws<'_>,
        cache: &JwksCache,
    ) -> Result<Option<Credentials>> {
        let input = jws.signing_input.as_bytes();
        if jws.header.alg == "HS256"
            && jws.claims.sub.as_deref() == Some("backstage-server")
            && jws.claims.aud.is_none()
        {
            for legacy in &self.legacy {
                if legacy.key.verify("HS256", input, &jws.signature) {
                    if let Err(e) = jws.claims.check(&["exp"]) {
                        tracing::warn!("Refused a legacy token: {e}");
                        return Err(Error::authentication("Illegal token"));
                    }
                    return Ok(Some(legacy.credentials.clone()));
                }
            }
            return Ok(None);
        }
        for issuer in &self.jwks {
            let alg = jws.header.alg.as_str();
            if issuer.algorithms.as_ref().is_some_and(|a| !a.contains(alg)) {
                continue;
            }
            let Ok(key) = cache.key(&issuer.url, jws.header.kid.as_deref(), alg).await else {
                continue;
            };
            if !key.verify(alg, input, &jws.signature) || jws.claims.check(&["exp"]).is_err() {
                continue;
            }
            if let Some(issuers) = &issuer.issuers
                && !jws
                    .claims
                    .iss
                    .as_deref()
                    .is_some_and(|iss| issuers.contains(iss))
            {
                continue;
            }
            if let Some(audiences) = &issuer.audiences {
                let matches = match &jws.claims.aud {
                    Some(jws::OneOrMany::One(aud)) => audiences.contains(aud),
                    Some(jws::OneOrMany::Many(auds)) => auds.iter().any(|a| audiences.contains(a)),
                    None => false,
                };
                if !matches {
                    continue;
                }
            }
            let Some(sub) = jws.claims.sub.as_deref() else {
                continue;
            };
            let subject = match &issuer.subject_prefix {
                Some(prefix) => format!("external:{prefix}:{sub}"),
                None => format!("external:{sub}"),
            };
            return Ok(Some(Credentials::new(Principal::Service(
                ServicePrincipal {
                    subject,
                    access_restrictions: issuer.restrictions.clone(),
                },
            ))));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_static_entries_and_rejects_bad_ones() {
        let config = RootConfig::from_value(json!({"backend": {"auth": {"externalAccess": [
            {"type": "static", "options": {"token": "0123456789", "subject": "ci-bot"}},
            {"type": "legacy", "options": {"secret": "abc", "subject": "x"}},
        ]}}}));
        let tokens = StaticTokens::from_config(&config).unwrap();
        assert!(
            matches!(tokens.verify("0123456789").unwrap().any(), Principal::Service(s) if s.subject == "ci-bot")
        );
        assert!(tokens.verify("0123456788").is_none());
        assert!(tokens.verify("012345678").is_none());

        let config = RootConfig::from_value(json!({"backend": {"auth": {"externalAccess": [
            {"type": "static", "options": {"token": "has a space", "subject": "ci-bot"}},
        ]}}}));
        let err = StaticTokens::from_config(&config).unwrap_err();
        assert!(
            err.message()
                .starts_with("backend.auth.externalAccess[0].options.token"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains("has a space"));
    }

    #[test]
    fn legacy_secrets_come_from_external_access_and_the_old_keys() {
        let config = RootConfig::from_value(json!({"backend": {"auth": {
            "externalAccess": [{"type": "legacy", "options": {"secret": "c2VjcmV0LW9uZQ", "subject": "one"}}],
            "keys": [{"secret": "c2VjcmV0LXR3bw=="}],
        }}}));
        let access = ExternalAccess::from_config(&config).unwrap();
        let subjects: Vec<String> = access
            .legacy
            .iter()
            .map(|l| match l.credentials.any() {
                Principal::Service(s) => s.subject.clone(),
                _ => String::new(),
            })
            .collect();
        assert_eq!(subjects, ["one", "external:backstage-plugin"]);

        let bad = RootConfig::from_value(json!({"backend": {"auth": {
            "externalAccess": [{"type": "legacy", "options": {"secret": "not base64!", "subject": "x"}}],
        }}}));
        let err = ExternalAccess::from_config(&bad).err().unwrap();
        assert!(
            err.message().starts_with("backend.auth.externalAccess[0]"),
            "{}",
            err.message()
        );
        assert!(!err.message().contains("not base64!"));
        let unknown = RootConfig::from_value(json!({"backend": {"auth": {
            "externalAccess": [{"type": "magic", "options": {}}],
        }}}));
        let err = ExternalAccess::from_config(&unknown).err().unwrap();
        assert!(
            err.message()
                .contains("unknown external access type 'magic'")
        );
    }

    #[test]
    fn restrictions_name_the_allowed_plugins() {
        let creds = Credentials::new(Principal::Service(ServicePrincipal {
            subject: "ci".into(),
            access_restrictions: Some(AccessRestrictions {
                plugin_id: Some(vec!["a".into(), "b".into()]),
            }),
        }));
        assert!(check_restrictions(&creds, "a").is_ok());
        let err = check_restrictions(&creds, "c").unwrap_err();
        assert_eq!(
            err.message(),
            "This token's access is restricted to plugin(s) 'a', 'b'"
        );
    }
}
