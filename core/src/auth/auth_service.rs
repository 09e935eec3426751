//! The `auth` service: verifies tokens, issues the tokens a plugin calls other plugins with,
//! and lists the plugin's public keys; [`Authenticator`] is what it delegates to.

use std::fmt;
use std::sync::Arc;
use std::time::SystemTime;

use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service as ServiceTrait, ServiceContext};

use super::{Credentials, PrincipalType, ServicePrincipal, UserPrincipal, external, keys, tokens};

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

/// A plugin request token, as [`Auth::plugin_request_token`](crate::auth::Auth::plugin_request_token) returns it.
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
    /// use backstage::{Auth, Credentials, ServicePrincipal, StaticTokens, UserPrincipal};
    /// let auth = Auth::new(StaticTokens::default());
    /// assert!(auth.is_principal::<UserPrincipal>(&Credentials::user("user:default/a")));
    /// assert!(!auth.is_principal::<ServicePrincipal>(&Credentials::user("user:default/a")));
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
    pub fn own_service_credentials(&self) -> Credentials<ServicePrincipal> {
        let subject = match self.plugin_id {
            Some(id) => format!("plugin:{id}"),
            None => "plugin:root".to_owned(),
        };
        Credentials::service(subject).typed()
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
        credentials: &Credentials<UserPrincipal>,
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
