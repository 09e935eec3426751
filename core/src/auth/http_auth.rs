//! The `httpAuth` service: the credentials of an HTTP request (bearer token, user cookie), and
//! issuing the user cookie.

use std::sync::Arc;
use std::time::SystemTime;

use axum::http::HeaderMap;

use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service as ServiceTrait, ServiceContext};

use super::{Auth, AuthenticateOptions, Credentials, Principal, UserCookie, UserPrincipal, cookie};

/// The `httpAuth` service: the credentials of an HTTP request, and the user cookie.
///
/// ```
/// use backstage::{Auth, HttpAuth, StaticTokens};
/// use axum::http::HeaderMap;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let http_auth = HttpAuth::new(Auth::new(StaticTokens::from_pairs([("a-long-token", "ci-bot")]).unwrap()));
/// let mut headers = HeaderMap::new();
/// headers.insert("authorization", "Bearer a-long-token".parse().unwrap());
/// assert!(http_auth.credentials(&headers).await.is_ok());
/// assert_eq!(http_auth.credentials(&HeaderMap::new()).await.unwrap_err().message(), "Missing credentials");
/// # });
/// ```
#[derive(Clone, Debug)]
pub struct HttpAuth {
    auth: Auth,
    /// The plugin's external base URL, for the cookie's domain and flags.
    external_base_url: Option<Arc<str>>,
    /// What a request without a token is, in development (Backstage's mock `httpAuth`
    /// `defaultCredentials`); `None` in every real backend.
    default_credentials: Option<Credentials>,
}

impl HttpAuth {
    /// An `HttpAuth` verifying bearer tokens with `auth`.
    pub fn new(auth: Auth) -> Self {
        HttpAuth {
            auth,
            external_base_url: None,
            default_credentials: None,
        }
    }

    /// This `HttpAuth`, with requests that carry no token acting as `credentials` instead of
    /// having none: what the development server ([`crate::dev`]) does, never a real backend.
    /// A token that authenticates as no one (`mock-none-token`) is still no one.
    ///
    /// ```
    /// use backstage::{Credentials, HttpAuth};
    /// use axum::http::HeaderMap;
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let http_auth = HttpAuth::new(backstage::testing::mock::auth())
    ///     .with_default_credentials(Credentials::user("user:development/guest"));
    /// let creds = http_auth.credentials(&HeaderMap::new()).await.unwrap();
    /// assert_eq!(creds.any().type_name(), "user");
    /// # });
    /// ```
    pub fn with_default_credentials(mut self, credentials: Credentials) -> Self {
        self.default_credentials = Some(credentials);
        self
    }

    /// Whether requests without a token get default credentials (development only).
    pub(crate) fn has_default_credentials(&self) -> bool {
        self.default_credentials.is_some()
    }

    /// The credentials of a request with `headers`: 401 "Missing credentials" without a bearer
    /// token, the token's verification error when it is not valid.
    pub async fn credentials(&self, headers: &HeaderMap) -> Result<Credentials> {
        self.credentials_with(headers, AuthenticateOptions::default())
            .await
    }

    /// The credentials of a request; with `allow_limited_access`, a request without a bearer
    /// token may authenticate with the user cookie (`backstage-auth`).
    pub async fn credentials_with(
        &self,
        headers: &HeaderMap,
        options: AuthenticateOptions,
    ) -> Result<Credentials> {
        let token = bearer_token(headers).or_else(|| {
            options
                .allow_limited_access
                .then(|| cookie_token(headers))
                .flatten()
        });
        let credentials = match (token, &self.default_credentials) {
            (Some(token), _) => self.auth.authenticate_with(token, options).await?,
            (None, Some(default)) => default.clone(),
            (None, None) => return Err(Error::authentication("Missing credentials")),
        };
        // A token may stand for no one (a mock `none` token): that is no credentials.
        if matches!(credentials.any(), Principal::None) {
            return Err(Error::authentication("Missing credentials"));
        }
        Ok(credentials)
    }

    /// Like [`HttpAuth::credentials`], but a request without a token gets `none` credentials.
    pub async fn optional_credentials(&self, headers: &HeaderMap) -> Result<Credentials> {
        match (bearer_token(headers), &self.default_credentials) {
            (Some(token), _) => self.auth.authenticate(token).await,
            (None, Some(default)) => Ok(default.clone()),
            (None, None) => Ok(Credentials::none()),
        }
    }

    /// Issues the user cookie for a request with `headers`, as Backstage's
    /// `httpAuth.issueUserCookie` does: for `credentials` when given (none credentials clear
    /// the cookie), else for the request's bearer user token. A cookie still valid for more
    /// than five minutes is kept (no `Set-Cookie`). Send [`UserCookie::set_cookie`] with the
    /// response.
    pub async fn issue_user_cookie(
        &self,
        headers: &HeaderMap,
        credentials: Option<&Credentials>,
    ) -> Result<UserCookie> {
        let options = cookie::CookieOptions::new(self.external_base_url.as_deref());
        let credentials = match credentials {
            Some(creds) if matches!(creds.any(), Principal::None) => {
                return Ok(UserCookie {
                    expires_at: SystemTime::now(),
                    set_cookie: Some(options.clear()),
                });
            }
            Some(creds) if !matches!(creds.any(), Principal::User(_)) => {
                return Err(Error::authentication(
                    "Refused to issue cookie for non-user principal",
                ));
            }
            Some(creds) => creds.narrow::<UserPrincipal>()?,
            None => self.credentials(headers).await?.narrow::<UserPrincipal>()?,
        };
        if let Some(existing) = cookie_token(headers)
            && let Ok(creds) = self
                .auth
                .authenticate_with(
                    existing,
                    AuthenticateOptions {
                        allow_limited_access: true,
                    },
                )
                .await
            && matches!(creds.any(), Principal::User(_))
            && let Some(expires_at) = creds.expires_at()
            && expires_at > SystemTime::now() + std::time::Duration::from_secs(5 * 60)
        {
            return Ok(UserCookie {
                expires_at,
                set_cookie: None,
            });
        }
        let (token, expires_at) = self.auth.limited_user_token(&credentials).await?;
        Ok(UserCookie {
            expires_at,
            set_cookie: Some(options.set(&token, expires_at)),
        })
    }
}

impl ServiceTrait for HttpAuth {
    type Scope = PluginScoped;
    const ID: &'static str = "core.httpAuth";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::auth::Auth, crate::discovery::Discovery);
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let auth = ctx.get::<Auth>().await?;
            let discovery = ctx.get::<crate::discovery::Discovery>().await?;
            let external_base_url = ctx
                .plugin_id()
                .map(|id| Arc::from(discovery.external_base_url(id).as_str()));
            Ok(HttpAuth {
                auth,
                external_base_url,
                default_credentials: None,
            })
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header (scheme case-insensitive), as
/// Backstage reads it: anything else counts as no token.
pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(http::header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, rest) = value.split_at_checked(6)?;
    if !scheme.eq_ignore_ascii_case("bearer") || !rest.starts_with(' ') {
        return None;
    }
    let token = rest.trim_start_matches(' ');
    // `to_str` let through visible ASCII and tabs only: the whitespace left to find is bytes.
    (!token.is_empty() && !token.bytes().any(|b| b == b' ' || b == b'\t')).then_some(token)
}

/// The name of the cookie that carries a user's limited token.
pub const USER_COOKIE: &str = "backstage-auth";

/// The `backstage-auth` cookie's value, if the request has one.
pub(crate) fn cookie_token(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == USER_COOKIE)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(http::header::AUTHORIZATION, value.parse().unwrap());
        headers
    }

    #[test]
    fn bearer_tokens_are_read_as_backstage_reads_them() {
        assert_eq!(bearer_token(&headers("Bearer abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("bearer   abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("BEARER abc")), Some("abc"));
        assert_eq!(bearer_token(&headers("Basic abc")), None);
        assert_eq!(bearer_token(&headers("Bearer")), None);
        assert_eq!(bearer_token(&headers("Bearerabc")), None);
        assert_eq!(bearer_token(&headers("Bearer a b")), None);
        assert_eq!(bearer_token(&headers("Bearer a\tb")), None);
        assert_eq!(bearer_token(&headers("Bearer ab\t")), None);
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }
}
