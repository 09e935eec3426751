//! Credentials and the `auth`, `httpAuth` and `userInfo` services.
//!
//! Every request that reaches a plugin route has passed the route's auth policy (see
//! [`crate::http`]); a handler asks for the caller with a [`Credentials`] parameter:
//! `Credentials` accepts any principal, `Credentials<User>` only users (403 for services),
//! `Credentials<Service>` only services.
//!
//! Tokens accepted today: static external tokens from `backend.auth.externalAccess`
//! (type `static`, options `token` and `subject`); they give service credentials whose subject is
//! the configured one, as Backstage does.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service as ServiceTrait, ServiceContext};

mod external;

pub(crate) use external::PluginAuthenticator;
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
    inner: Arc<Principal>,
    _type: PhantomData<fn() -> P>,
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
        f.debug_struct("Credentials")
            .field("principal", &*self.inner)
            .finish()
    }
}

impl Credentials<Principal> {
    /// Credentials of `principal`.
    pub fn new(principal: Principal) -> Self {
        Credentials {
            inner: Arc::new(principal),
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
        match P::select(&self.inner) {
            Some(principal) => principal,
            // `Credentials<P>` is only ever built after `P::select` succeeded.
            None => unreachable!("credentials narrowed to a principal type they do not hold"),
        }
    }

    /// The principal, whatever its type.
    pub fn any(&self) -> &Principal {
        &self.inner
    }

    /// These credentials narrowed to principal type `Q`, or Backstage's error when they are of
    /// another type (401 for none, 403 otherwise).
    pub fn narrow<Q: PrincipalType>(&self) -> Result<Credentials<Q>> {
        if Q::select(&self.inner).is_some() {
            return Ok(Credentials {
                inner: self.inner.clone(),
                _type: PhantomData,
            });
        }
        Err(match &*self.inner {
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

/// A way to verify tokens: what [`Auth`] delegates to. Implement it to replace token
/// verification (for example in tests) and install it with
/// `Backend::builder().service(Auth::new(...))`.
pub trait Authenticator: Send + Sync + 'static {
    /// Verifies `token` and returns the credentials it carries, or a 401
    /// `AuthenticationError` ("Illegal token") when it is not valid.
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
        options: AuthenticateOptions,
    ) -> BoxFuture<'a, Result<Credentials>>;
}

/// How a token may be used.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AuthenticateOptions {
    /// Whether limited user tokens (from the `backstage-auth` cookie) are accepted; only routes
    /// whose policy is `user-cookie` allow them.
    pub allow_limited_access: bool,
}

/// The `auth` service: verifies tokens.
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
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Auth")
    }
}

impl Auth {
    /// An `Auth` that verifies tokens with `authenticator`.
    pub fn new(authenticator: impl Authenticator) -> Self {
        Auth {
            inner: Arc::new(authenticator),
        }
    }

    pub(crate) fn from_arc(inner: Arc<dyn Authenticator>) -> Self {
        Auth { inner }
    }

    /// Verifies `token`.
    pub async fn authenticate(&self, token: &str) -> Result<Credentials> {
        self.inner
            .authenticate(token, AuthenticateOptions::default())
            .await
    }

    /// Verifies `token` with `options` (limited user tokens only when allowed).
    pub async fn authenticate_with(
        &self,
        token: &str,
        options: AuthenticateOptions,
    ) -> Result<Credentials> {
        self.inner.authenticate(token, options).await
    }
}

impl ServiceTrait for Auth {
    type Scope = PluginScoped;
    const ID: &'static str = "core.auth";
    const DEPENDENCIES: &'static [&'static str] = &["core.rootConfig"];
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let tokens = ctx.get::<SharedStaticTokens>().await?;
            match ctx.plugin_id() {
                Some(plugin_id) => Ok(Auth::new(external::PluginAuthenticator {
                    inner: tokens.0,
                    plugin_id,
                })),
                None => Ok(Auth { inner: tokens.0 }),
            }
        })
    }
}

/// The static tokens of `backend.auth.externalAccess`, read once per backend.
#[derive(Clone)]
struct SharedStaticTokens(Arc<dyn Authenticator>);

impl ServiceTrait for SharedStaticTokens {
    type Scope = crate::plugin::Root;
    const ID: &'static str = "core.auth.externalAccess";
    const DEPENDENCIES: &'static [&'static str] = &["core.rootConfig"];
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            Ok(SharedStaticTokens(Arc::new(StaticTokens::from_config(
                ctx.config(),
            )?)))
        })
    }
}

/// The `httpAuth` service: the credentials of an HTTP request.
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
}

impl HttpAuth {
    /// An `HttpAuth` verifying bearer tokens with `auth`.
    pub fn new(auth: Auth) -> Self {
        HttpAuth { auth }
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
        if let Some(token) = bearer_token(headers) {
            return self.auth.authenticate_with(token, options).await;
        }
        if options.allow_limited_access
            && let Some(token) = cookie_token(headers)
        {
            return self.auth.authenticate_with(token, options).await;
        }
        Err(Error::authentication("Missing credentials"))
    }

    /// Like [`HttpAuth::credentials`], but a request without a token gets `none` credentials.
    pub async fn optional_credentials(&self, headers: &HeaderMap) -> Result<Credentials> {
        match bearer_token(headers) {
            Some(token) => self.auth.authenticate(token).await,
            None => Ok(Credentials::none()),
        }
    }
}

impl ServiceTrait for HttpAuth {
    type Scope = PluginScoped;
    const ID: &'static str = "core.httpAuth";
    const DEPENDENCIES: &'static [&'static str] = &["core.auth"];
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move { Ok(HttpAuth::new(ctx.get::<Auth>().await?)) })
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
/// ```
/// use backstage::{Credentials, UserInfo};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let info = UserInfo::default().get_user_info(&Credentials::user("user:default/alice")).await.unwrap();
/// assert_eq!(info.ownership_entity_refs, vec!["user:default/alice"]);
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct UserInfo {
    _private: (),
}

impl UserInfo {
    /// The user's entity ref and ownership refs, from the user's token. A token without an
    /// `ent` claim owns what the user itself is.
    pub async fn get_user_info<P: PrincipalType>(
        &self,
        credentials: &Credentials<P>,
    ) -> Result<BackstageUserInfo> {
        match credentials.any() {
            Principal::User(user) => Ok(BackstageUserInfo {
                user_entity_ref: user.user_entity_ref.clone(),
                ownership_entity_refs: user
                    .ownership_entity_refs
                    .clone()
                    .unwrap_or_else(|| vec![user.user_entity_ref.clone()]),
            }),
            other => Err(Error::input(format!(
                "User info is only available for user principals, got '{}'",
                other.type_name()
            ))),
        }
    }
}

impl ServiceTrait for UserInfo {
    type Scope = PluginScoped;
    const ID: &'static str = "core.userInfo";
    fn create<'a>(_ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async { Ok(UserInfo::default()) })
    }
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
