//! Credentials: who a request is made for (a user, a service, or no one), as Backstage's
//! `BackstageCredentials` carries it, and the extractor that hands them to route handlers.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::SystemTime;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use serde::Deserialize;

use crate::error::{Error, Result};

/// A user principal: the signed-in user a request is made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UserPrincipal {
    /// The user's entity ref, `user:default/alice`.
    pub user_entity_ref: String,
    /// The ownership entity refs the user's token carries (`ent` claim), if it carries them.
    pub ownership_entity_refs: Option<Vec<String>>,
}

/// A service principal: another backend or plugin calling this one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServicePrincipal {
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
    User(UserPrincipal),
    /// A service.
    Service(ServicePrincipal),
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

/// A principal type a route may ask for: [`Principal`] (any), [`UserPrincipal`] or
/// [`ServicePrincipal`].
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

impl PrincipalType for UserPrincipal {
    fn select(principal: &Principal) -> Option<&Self> {
        match principal {
            Principal::User(user) => Some(user),
            _ => None,
        }
    }
    const ALLOWS_NONE: bool = false;
}

impl PrincipalType for ServicePrincipal {
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
/// As a route parameter it is an extractor: `Credentials<UserPrincipal>` answers 403
/// `This endpoint does not allow 'service' credentials` to a service, as Backstage does.
///
/// ```
/// use backstage::{Credentials, Principal, UserPrincipal};
///
/// let creds = Credentials::<Principal>::user("user:default/alice");
/// let user: Credentials<UserPrincipal> = creds.narrow().unwrap();
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
    /// [`Auth::plugin_request_token`](crate::auth::Auth::plugin_request_token) forwards for a user, and [`UserInfo`](crate::auth::UserInfo) reads.
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
        Self::new(Principal::User(UserPrincipal {
            user_entity_ref: user_entity_ref.into(),
            ownership_entity_refs: None,
        }))
    }

    /// Service credentials for `subject`.
    pub fn service(subject: impl Into<String>) -> Self {
        Self::new(Principal::Service(ServicePrincipal {
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

    /// These credentials as principal type `Q`, which they are known to be.
    pub(crate) fn typed<Q: PrincipalType>(self) -> Credentials<Q> {
        Credentials {
            inner: self.inner,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn narrowing_gives_backstage_errors() {
        let service = Credentials::service("ci-bot");
        let err = service.narrow::<UserPrincipal>().unwrap_err();
        assert_eq!(err.status().as_u16(), 403);
        assert_eq!(
            err.message(),
            "This endpoint does not allow 'service' credentials"
        );
        let err = Credentials::none()
            .narrow::<ServicePrincipal>()
            .unwrap_err();
        assert_eq!(err.message(), "Missing credentials");
        assert_eq!(
            Credentials::user("user:default/a")
                .narrow::<UserPrincipal>()
                .unwrap()
                .principal()
                .user_entity_ref,
            "user:default/a"
        );
    }
}
