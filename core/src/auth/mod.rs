//! Credentials and the `auth`, `httpAuth` and `userInfo` services.
//!
//! Every request that reaches a plugin route has passed the route's auth policy (see
//! [`crate::http`]); a handler asks for the caller with a [`Credentials`] parameter:
//! `Credentials` accepts any principal, `Credentials<UserPrincipal>` only users (403 for services),
//! `Credentials<ServicePrincipal>` only services.
//!
//! Tokens are verified as Backstage's `auth` service verifies them (see `tokens` for the
//! rules): plugin tokens (`typ: vnd.backstage.plugin`, ES256, checked against the calling
//! plugin's JWKS), user tokens from the auth backend (`typ: vnd.backstage.user`, checked against
//! `<auth>/.well-known/jwks.json`), limited user tokens (the `backstage-auth` cookie, only where
//! the route's policy is `user-cookie`), and external access from `backend.auth.externalAccess`
//! (`static`, `legacy` and `jwks`). Every rejection is a 401 `AuthenticationError` worded as
//! Backstage words it; access restrictions answer 403.

mod auth_service;
mod client;
pub(crate) mod cookie;
mod external;
pub(crate) mod jwks;
pub(crate) mod jws;
pub(crate) mod keys;
pub(crate) mod tokens;

mod credentials;
pub(crate) mod endpoints;
mod http_auth;
#[doc(hidden)]
pub mod routes_client;
mod user_info;

pub use auth_service::{Auth, AuthenticateOptions, Authenticator, PluginRequestToken};
pub use client::PluginClient;
pub use cookie::UserCookie;
pub(crate) use credentials::RequestAuth;
pub use credentials::{
    AccessRestrictions, Credentials, Principal, PrincipalType, ServicePrincipal, UserPrincipal,
};
pub use external::StaticTokens;
pub use http_auth::{HttpAuth, USER_COOKIE};
pub use user_info::{BackstageUserInfo, UserInfo};

crate::plugin::register!(Auth, HttpAuth, UserInfo, PluginClient);
