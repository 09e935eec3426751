//! Static external access tokens (`backend.auth.externalAccess`, type `static`).

use std::sync::Arc;

use serde::Deserialize;
use subtle::ConstantTimeEq;

use super::{
    AccessRestrictions, AuthenticateOptions, Authenticator, Credentials, Principal, Service,
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
/// Tokens are compared in constant time. Entries of other types (`legacy`, `jwks`) are left to
/// the full auth implementation and skipped here with a warning.
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
    options: Option<StaticOptions>,
    #[serde(default)]
    access_restrictions: Option<Vec<Restriction>>,
}

#[derive(Deserialize)]
struct StaticOptions {
    token: Option<String>,
    subject: Option<String>,
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
        let entries: Vec<Entry> = config
            .get_optional("backend.auth.externalAccess")?
            .unwrap_or_default();
        let mut tokens = StaticTokens::default();
        for (i, entry) in entries.into_iter().enumerate() {
            let key = format!("backend.auth.externalAccess[{i}]");
            if entry.kind != "static" {
                tracing::warn!(
                    "{key}: external access of type '{}' is not supported yet; its tokens are refused",
                    entry.kind
                );
                continue;
            }
            let options = entry.options.ok_or_else(|| {
                Error::input(format!("{key}.options is required for type 'static'"))
            })?;
            let token = options
                .token
                .ok_or_else(|| Error::input(format!("{key}.options.token is required")))?;
            let subject = options
                .subject
                .ok_or_else(|| Error::input(format!("{key}.options.subject is required")))?;
            let restrictions = entry.access_restrictions.map(|list| AccessRestrictions {
                plugin_id: Some(list.into_iter().map(|r| r.plugin).collect()),
            });
            tokens.add(&token, &subject, restrictions, &key)?;
        }
        Ok(tokens)
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
        let principal = Principal::Service(Service {
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
    if let Principal::Service(Service {
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

/// An authenticator shared by all plugins, checked against one plugin's restrictions.
pub(crate) struct PluginAuthenticator {
    pub(crate) inner: Arc<dyn Authenticator>,
    pub(crate) plugin_id: &'static str,
}

impl Authenticator for PluginAuthenticator {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
        options: AuthenticateOptions,
    ) -> BoxFuture<'a, Result<Credentials>> {
        Box::pin(async move {
            let creds = self.inner.authenticate(token, options).await?;
            check_restrictions(&creds, self.plugin_id)?;
            Ok(creds)
        })
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
    fn restrictions_name_the_allowed_plugins() {
        let creds = Credentials::new(Principal::Service(Service {
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
