//! Credentials and the `auth`, `httpAuth` and `userInfo` services.
//!
//! Every request that reaches a plugin route has passed the route's auth policy (see
//! [`crate::http`]); a handler asks for the caller with a [`Credentials`] parameter:
//! `Credentials` accepts any principal, `Credentials<User>` only users (403 for services),
//! `Credentials<Service>` only services.
//!
//! Tokens are verified as Backstage's `auth` service verifies them (see `tokens` for the
//! rules): plugin tokens (`typ: vnd.backstage.plugin`, ES256, checked against the calling
//! plugin's JWKS), user tokens from the auth backend (`typ: vnd.backstage.user`, checked against
//! `<auth>/.well-known/jwks.json`), limited user tokens (the `backstage-auth` cookie, only where
//! the route's policy is `user-cookie`), and external access from `backend.auth.externalAccess`
//! (`static`, `legacy` and `jwks`). Every rejection is a 401 `AuthenticationError` worded as
//! Backstage words it; access restrictions answer 403.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service as ServiceTrait, ServiceContext};

mod client;
pub(crate) mod cookie;
mod external;
pub(crate) mod jwks;
pub(crate) mod jws;
pub(crate) mod keys;
pub(crate) use keys::new_uuid;
pub(crate) mod tokens;

pub use client::PluginClient;
pub use cookie::UserCookie;
pub use external::StaticTokens;

/// A user principal: the signed-in user a request is made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// The user's entity ref, `user:default/alice`.
    pub user_entity_ref: String,
    /// The ownership entity refs the user's token carries (`ent` claim), if it carries them.
    pub ownership_entity_refs: Option<Vec<String>>,
}

/// A service principal: another backend or plugin calling this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Service {
    /// Who is calling: `plugin:<id>`, `external:<subject>` or a configured static subject.
    pub subject: String,
    /// Plugins this caller is restricted to, when its token says so.
    pub access_restrictions: Option<AccessRestrictions>,
}

/// Limits on what a service principal may call.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessRestrictions {
    /// The plugins the caller may call.
    pub plugin_id: Option<Vec<String>>,
}

/// Who made a request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    /// Nobody: a request without credentials on an `unauthenticated` route.
    None,
    /// A user.
    User(User),
    /// A service.
    Service(Service),
}

impl Principal {
    /// Backstage's name for this principal's type: `none`, `user` or `service`.
    pub fn type_name(&self) -> &'static str {
        match self {
            Principal::None => "none",
            Principal::User(_) => "user",
            Principal::Service(_) => "service",
        }
    }
}

/// A principal type a route may ask for: [`Principal`] (any), [`User`] or [`Service`].
pub trait PrincipalType: Send + Sync + 'static {
    /// Picks this type out of a principal, or `None` when the principal is of another type.
    fn select(principal: &Principal) -> Option<&Self>;
    /// Whether `none` principals are accepted.
    const ALLOWS_NONE: bool;
}

impl PrincipalType for Principal {
    fn select(principal: &Principal) -> Option<&Self> {
        Some(principal)
    }
    const ALLOWS_NONE: bool = true;
}

impl PrincipalType for User {
    fn select(principal: &Principal) -> Option<&Self> {
        match principal {
            Principal::User(user) => Some(user),
            _ => None,
        }
    }
    const ALLOWS_NONE: bool = false;
}

impl PrincipalType for Service {
    fn select(principal: &Principal) -> Option<&Self> {
        match principal {
            Principal::Service(service) => Some(service),
            _ => None,
        }
    }
    const ALLOWS_NONE: bool = false;
}

/// The verified credentials of a request; `P` narrows the principal type.
///
/// As a route parameter it is an extractor: `Credentials<User>` answers 403
/// `This endpoint does not allow 'service' credentials` to a service, as Backstage does.
///
/// ```
/// use backstage::{Credentials, Principal, User};
///
/// let creds = Credentials::<Principal>::user("user:default/alice");
/// let user: Credentials<User> = creds.narrow().unwrap();
/// assert_eq!(user.principal().user_entity_ref, "user:default/alice");
/// ```
pub struct Credentials<P: PrincipalType = Principal> {
    inner: Arc<Inner>,
    _type: PhantomData<fn() -> P>,
}

struct Inner {
    principal: Principal,
    /// The token these credentials came from, when it can be forwarded (user tokens).
    token: Option<Box<str>>,
    expires_at: Option<SystemTime>,
    /// For a user reached through a plugin token: the calling plugin (`plugin:<id>`).
    actor: Option<Box<str>>,
}

impl<P: PrincipalType> Clone for Credentials<P> {
    fn clone(&self) -> Self {
        Credentials {
            inner: self.inner.clone(),
            _type: PhantomData,
        }
    }
}

impl<P: PrincipalType + fmt::Debug> fmt::Debug for Credentials<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the token: credentials end up in logs.
        f.debug_struct("Credentials")
            .field("principal", &self.inner.principal)
            .field("expires_at", &self.inner.expires_at)
            .finish()
    }
}

impl Credentials<Principal> {
    /// Credentials of `principal`.
    pub fn new(principal: Principal) -> Self {
        Credentials {
            inner: Arc::new(Inner {
                principal,
                token: None,
                expires_at: None,
                actor: None,
            }),
            _type: PhantomData,
        }
    }

    /// These credentials, carrying the token they were verified from and when it expires: what
    /// [`Auth::plugin_request_token`] forwards for a user, and [`UserInfo`] reads.
    ///
    /// ```
    /// use std::time::{Duration, SystemTime};
    /// use backstage::Credentials;
    /// let expires = SystemTime::now() + Duration::from_secs(60);
    /// let creds = Credentials::user("user:default/alice").with_token("eyJ...", Some(expires));
    /// assert_eq!(creds.token(), Some("eyJ..."));
    /// assert_eq!(creds.expires_at(), Some(expires));
    /// ```
    pub fn with_token(self, token: &str, expires_at: Option<SystemTime>) -> Self {
        let inner = Inner {
            principal: self.inner.principal.clone(),
            token: Some(token.into()),
            expires_at,
            actor: self.inner.actor.clone(),
        };
        Credentials {
            inner: Arc::new(inner),
            _type: PhantomData,
        }
    }

    pub(crate) fn with_actor(self, actor: String) -> Self {
        let inner = Inner {
            principal: self.inner.principal.clone(),
            token: self.inner.token.clone(),
            expires_at: self.inner.expires_at,
            actor: Some(actor.into()),
        };
        Credentials {
            inner: Arc::new(inner),
            _type: PhantomData,
        }
    }

    /// Credentials with no principal.
    pub fn none() -> Self {
        Self::new(Principal::None)
    }

    /// User credentials for `user_entity_ref`.
    pub fn user(user_entity_ref: impl Into<String>) -> Self {
        Self::new(Principal::User(User {
            user_entity_ref: user_entity_ref.into(),
            ownership_entity_refs: None,
        }))
    }

    /// Service credentials for `subject`.
    pub fn service(subject: impl Into<String>) -> Self {
        Self::new(Principal::Service(Service {
            subject: subject.into(),
            access_restrictions: None,
        }))
    }
}

impl<P: PrincipalType> Credentials<P> {
    /// The principal, of the type `P` names.
    pub fn principal(&self) -> &P {
        match P::select(&self.inner.principal) {
            Some(principal) => principal,
            // `Credentials<P>` is only ever built after `P::select` succeeded.
            None => unreachable!("credentials narrowed to a principal type they do not hold"),
        }
    }

    /// The principal, whatever its type.
    pub fn any(&self) -> &Principal {
        &self.inner.principal
    }

    /// The token these credentials were verified from, when they carry one (user credentials
    /// do; it is what a call on the user's behalf forwards).
    pub fn token(&self) -> Option<&str> {
        self.inner.token.as_deref()
    }

    /// When the token behind these credentials expires, if known.
    pub fn expires_at(&self) -> Option<SystemTime> {
        self.inner.expires_at
    }

    /// For user credentials that arrived through a plugin token: the plugin that made the call
    /// on the user's behalf (`plugin:<id>`), as Backstage's `principal.actor`.
    pub fn actor(&self) -> Option<&str> {
        self.inner.actor.as_deref()
    }

    /// These credentials with the principal type forgotten.
    pub fn erase(&self) -> Credentials {
        Credentials {
            inner: self.inner.clone(),
            _type: PhantomData,
        }
    }

    /// These credentials narrowed to principal type `Q`, or Backstage's error when they are of
    /// another type (401 for none, 403 otherwise).
    pub fn narrow<Q: PrincipalType>(&self) -> Result<Credentials<Q>> {
        if Q::select(&self.inner.principal).is_some() {
            return Ok(Credentials {
                inner: self.inner.clone(),
                _type: PhantomData,
            });
        }
        Err(match &self.inner.principal {
            Principal::None => Error::authentication("Missing credentials"),
            other => Error::not_allowed(format!(
                "This endpoint does not allow '{}' credentials",
                other.type_name()
            )),
        })
    }
}

/// What the auth gate left in a request's extensions for the [`Credentials`] extractor.
#[derive(Clone)]
pub(crate) enum RequestAuth {
    Verified(Credentials),
    Failed(Arc<(crate::error::ErrorKind, String)>),
}

impl<S: Send + Sync, P: PrincipalType> FromRequestParts<S> for Credentials<P> {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self> {
        match parts.extensions.get::<RequestAuth>() {
            Some(RequestAuth::Verified(creds)) => creds.narrow(),
            Some(RequestAuth::Failed(failure)) => Err(Error::new(failure.0, failure.1.clone())),
            // The gate leaves nothing behind for a request without credentials on an open route.
            None => Credentials::none().narrow(),
        }
    }
}

/// A way to verify and issue tokens: what [`Auth`] delegates to. Implement it to replace token
/// handling (for example in tests) and install it with
/// `Backend::builder().service(Auth::new(...))`. Only [`Authenticator::authenticate`] is
/// required; the others refuse by default.
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies `token` and returns the credentials it carries, or a 401
    /// `AuthenticationError` ("Illegal token") when it is not valid.
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
        options: AuthenticateOptions,
    ) -> BoxFuture<'a, Result<Credentials>>;

    /// A token with which plugin `plugin_id` calls plugin `target_plugin_id` for
    /// `on_behalf_of`. An empty token means "send none".
    fn plugin_request_token<'a>(
        &'a self,
        plugin_id: &'a str,
        on_behalf_of: &'a Credentials,
        target_plugin_id: &'a str,
    ) -> BoxFuture<'a, Result<String>> {
        let _ = (plugin_id, on_behalf_of, target_plugin_id);
        Box::pin(async {
            Err(Error::authentication(
                "This auth service does not issue plugin tokens",
            ))
        })
    }

    /// The limited token (cookie token) of a user's credentials, and when it expires.
    fn limited_user_token<'a>(
        &'a self,
        credentials: &'a Credentials,
    ) -> BoxFuture<'a, Result<(String, SystemTime)>> {
        let _ = credentials;
        Box::pin(async {
            Err(Error::authentication(
                "This auth service does not issue limited user tokens",
            ))
        })
    }

    /// The public keys plugin `plugin_id` signs its tokens with, as JWKs.
    fn public_keys<'a>(
        &'a self,
        plugin_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<serde_json::Value>>> {
        let _ = plugin_id;
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// How a token may be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthenticateOptions {
    /// Whether limited user tokens (from the `backstage-auth` cookie) are accepted; only routes
    /// whose policy is `user-cookie` allow them.
    pub allow_limited_access: bool,
}

/// The `auth` service: verifies tokens, and issues the tokens a plugin calls other plugins
/// with.
///
/// In a plugin it is that plugin's: it checks access restrictions against the plugin, signs
/// with the plugin's keys, and calls itself `plugin:<id>`.
///
/// ```
/// use backstage::{Auth, StaticTokens, Principal};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let auth = Auth::new(StaticTokens::from_pairs([("a-long-token", "ci-bot")]).unwrap());
/// let creds = auth.authenticate("a-long-token").await.unwrap();
/// assert!(matches!(creds.any(), Principal::Service(s) if s.subject == "ci-bot"));
/// assert_eq!(auth.authenticate("wrong-token").await.unwrap_err().kind(), backstage::ErrorKind::Authentication);
/// # });
/// ```
#[derive(Clone)]
pub struct Auth {
    inner: Arc<dyn Authenticator>,
    plugin_id: Option<&'static str>,
    /// The plugin's key source, when the default factory made this `Auth`.
    keys: Option<Arc<keys::KeySource>>,
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Auth")
            .field("plugin_id", &self.plugin_id)
            .finish()
    }
}

/// A plugin request token, as [`Auth::plugin_request_token`] returns it.
#[derive(Clone, PartialEq, Eq)]
pub struct PluginRequestToken {
    /// The token; empty when the call is to be made without one (the default auth policy is
    /// disabled and there are no credentials to forward).
    pub token: String,
}

impl fmt::Debug for PluginRequestToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PluginRequestToken(..)")
    }
}

impl Auth {
    /// An `Auth` that verifies tokens with `authenticator`.
    pub fn new(authenticator: impl Authenticator) -> Self {
        Auth {
            inner: Arc::new(authenticator),
            plugin_id: None,
            keys: None,
        }
    }

    pub(crate) fn from_arc(inner: Arc<dyn Authenticator>, plugin_id: Option<&'static str>) -> Self {
        Auth {
            inner,
            plugin_id,
            keys: None,
        }
    }

    /// Lets the plugin's key store use the plugin's own database pool.
    pub(crate) fn share_database(&self, database: crate::database::Database) {
        if let Some(keys::KeySource::Database(keys)) = self.keys.as_deref() {
            keys.share_database(database);
        }
    }

    /// Verifies `token`.
    pub async fn authenticate(&self, token: &str) -> Result<Credentials> {
        self.authenticate_with(token, AuthenticateOptions::default())
            .await
    }

    /// Verifies `token` with `options` (limited user tokens only when allowed). In a plugin,
    /// a caller restricted to other plugins gets 403.
    pub async fn authenticate_with(
        &self,
        token: &str,
        options: AuthenticateOptions,
    ) -> Result<Credentials> {
        let creds = self.inner.authenticate(token, options).await?;
        if let Some(plugin_id) = self.plugin_id {
            external::check_restrictions(&creds, plugin_id)?;
        }
        Ok(creds)
    }

    /// Whether `credentials` hold a principal of type `P`.
    ///
    /// ```
    /// use backstage::{Auth, Credentials, StaticTokens, User, Service};
    /// let auth = Auth::new(StaticTokens::default());
    /// assert!(auth.is_principal::<User>(&Credentials::user("user:default/a")));
    /// assert!(!auth.is_principal::<Service>(&Credentials::user("user:default/a")));
    /// ```
    pub fn is_principal<P: PrincipalType>(&self, credentials: &Credentials) -> bool {
        P::select(credentials.any()).is_some()
    }

    /// Credentials with no principal.
    pub fn none_credentials(&self) -> Credentials {
        Credentials::none()
    }

    /// This plugin's own service credentials, `plugin:<id>`: what a plugin calls other plugins
    /// with when it acts for itself.
    pub fn own_service_credentials(&self) -> Credentials<Service> {
        let subject = match self.plugin_id {
            Some(id) => format!("plugin:{id}"),
            None => "plugin:root".to_owned(),
        };
        Credentials {
            inner: Credentials::service(subject).inner,
            _type: PhantomData,
        }
    }

    /// A token for calling plugin `target_plugin_id`: a plugin token signed with this plugin's
    /// key, on behalf of the user when `on_behalf_of` is a user (the target then sees user
    /// credentials), as this plugin otherwise.
    pub async fn plugin_request_token<P: PrincipalType>(
        &self,
        on_behalf_of: &Credentials<P>,
        target_plugin_id: &str,
    ) -> Result<PluginRequestToken> {
        let plugin_id = self.plugin_id.unwrap_or("root");
        let token = self
            .inner
            .plugin_request_token(plugin_id, &on_behalf_of.erase(), target_plugin_id)
            .await?;
        Ok(PluginRequestToken { token })
    }

    /// The limited token of a user (the cookie token) and when it expires.
    pub async fn limited_user_token(
        &self,
        credentials: &Credentials<User>,
    ) -> Result<(String, SystemTime)> {
        self.inner.limited_user_token(&credentials.erase()).await
    }

    /// The public keys this plugin's tokens are signed with (`{"keys": [...]}` at
    /// `/.backstage/auth/v1/jwks.json`).
    pub async fn list_public_service_keys(&self) -> Result<Vec<serde_json::Value>> {
        self.inner
            .public_keys(self.plugin_id.unwrap_or("root"))
            .await
    }
}

impl ServiceTrait for Auth {
    type Scope = PluginScoped;
    /// A replacement `Auth` made without a plugin becomes the plugin's.
    fn bind_to_plugin(self, plugin_id: &'static str) -> Self {
        Auth {
            plugin_id: self.plugin_id.or(Some(plugin_id)),
            ..self
        }
    }
    const ID: &'static str = "core.auth";
    const DEPENDENCIES: &'static [&'static str] = crate::plugin::dependencies!(
        crate::config::RootConfig,
        crate::discovery::Discovery,
        crate::database::DatabaseManager
    );
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let shared = ctx.get::<tokens::SharedAuth>().await?;
            let plugin_id = ctx.plugin_id();
            let Some(id) = plugin_id else {
                let root = tokens::BackstageAuthenticator::root(shared.0.clone());
                return Ok(Auth::from_arc(Arc::new(root), None));
            };
            let keys = shared.0.keys_of(id);
            let authenticator =
                tokens::BackstageAuthenticator::new(id, shared.0.clone(), keys.clone());
            Ok(Auth {
                inner: Arc::new(authenticator),
                plugin_id,
                keys: Some(keys),
            })
        })
    }
}

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
            Some(creds) => creds.narrow::<User>()?,
            None => self.credentials(headers).await?.narrow::<User>()?,
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
    (!token.is_empty() && !token.chars().any(char::is_whitespace)).then_some(token)
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

/// What [`UserInfo::get_user_info`] returns.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackstageUserInfo {
    /// The user's entity ref.
    pub user_entity_ref: String,
    /// The entities the user or its groups own, the user itself included.
    pub ownership_entity_refs: Vec<String>,
}

/// The `userInfo` service: who a user is.
///
/// The ownership refs come from the user token's `ent` claim; a token without one is sent to
/// the auth plugin's `/v1/userinfo`, as Backstage does. Credentials without a token (made in
/// tests) own what the user itself is.
///
/// ```
/// use backstage::{Credentials, UserInfo};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let info = UserInfo::default().get_user_info(&Credentials::user("user:default/alice")).await.unwrap();
/// assert_eq!(info.ownership_entity_refs, vec!["user:default/alice"]);
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct UserInfo {
    remote: Option<(crate::discovery::Discovery, reqwest::Client)>,
}

impl UserInfo {
    /// The user's entity ref and ownership refs.
    pub async fn get_user_info<P: PrincipalType>(
        &self,
        credentials: &Credentials<P>,
    ) -> Result<BackstageUserInfo> {
        let user = match credentials.any() {
            Principal::User(user) => user,
            other => {
                return Err(Error::input(format!(
                    "User info is only available for user principals, got '{}'",
                    other.type_name()
                )));
            }
        };
        if let Some(refs) = &user.ownership_entity_refs {
            return Ok(BackstageUserInfo {
                user_entity_ref: user.user_entity_ref.clone(),
                ownership_entity_refs: refs.clone(),
            });
        }
        let (Some(token), Some((discovery, http))) = (credentials.token(), &self.remote) else {
            return Ok(BackstageUserInfo {
                user_entity_ref: user.user_entity_ref.clone(),
                ownership_entity_refs: vec![user.user_entity_ref.clone()],
            });
        };
        #[derive(Deserialize)]
        struct Response {
            claims: ResponseClaims,
        }
        #[derive(Deserialize)]
        struct ResponseClaims {
            ent: Option<Vec<String>>,
        }
        let url = format!("{}/v1/userinfo", discovery.base_url("auth"));
        let response = http
            .get(&url)
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| Error::internal(format!("could not reach {url}: {e}")))?;
        if !response.status().is_success() {
            return Err(Error::internal(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        let body: Response = response
            .json()
            .await
            .map_err(|e| Error::internal(format!("{url} sent an unexpected body: {e}")))?;
        let refs = body
            .claims
            .ent
            .ok_or_else(|| Error::internal("Ownership entity refs can not be determined"))?;
        Ok(BackstageUserInfo {
            user_entity_ref: user.user_entity_ref.clone(),
            ownership_entity_refs: refs,
        })
    }
}

impl ServiceTrait for UserInfo {
    type Scope = PluginScoped;
    const ID: &'static str = "core.userInfo";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::discovery::Discovery);
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let shared = ctx.get::<tokens::SharedAuth>().await?;
            Ok(UserInfo {
                remote: Some((shared.0.discovery.clone(), shared.0.http.clone())),
            })
        })
    }
}

crate::plugin::register!(Auth, HttpAuth, UserInfo, client::PluginClient);

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
        assert_eq!(bearer_token(&HeaderMap::new()), None);
    }

    #[test]
    fn narrowing_gives_backstage_errors() {
        let service = Credentials::service("ci-bot");
        let err = service.narrow::<User>().unwrap_err();
        assert_eq!(err.status().as_u16(), 403);
        assert_eq!(
            err.message(),
            "This endpoint does not allow 'service' credentials"
        );
        let err = Credentials::none().narrow::<Service>().unwrap_err();
        assert_eq!(err.message(), "Missing credentials");
        assert_eq!(
            Credentials::user("user:default/a")
                .narrow::<User>()
                .unwrap()
                .principal()
                .user_entity_ref,
            "user:default/a"
        );
    }
}
