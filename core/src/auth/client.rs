//! Calling another plugin with a plugin token.

use axum::http::Method;

use super::{Auth, Credentials, PrincipalType};
use crate::discovery::Discovery;
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service as ServiceTrait, ServiceContext};

/// The `pluginClient` service: HTTP calls to other plugins, found through discovery and
/// authenticated with this plugin's plugin token, on behalf of the current user when the
/// credentials given are a user's (the callee then sees that user).
///
/// ```no_run
/// use backstage::prelude::*;
/// use backstage::PluginClient;
///
/// #[backend_plugin(id = "reports")]
/// pub struct Reports {
///     #[inject]
///     client: PluginClient,
/// }
///
/// #[routes]
/// impl Reports {
///     #[route(get, "/entities")]
///     async fn entities(&self, creds: Credentials) -> Result<Json<serde_json::Value>> {
///         let response = self.client.get("catalog", "/entities", &creds).await?;
///         let body = response.json().await.map_err(|e| Error::internal(e.to_string()))?;
///         Ok(Json(body))
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Clone, Debug)]
pub struct PluginClient {
    auth: Auth,
    discovery: Discovery,
    http: reqwest::Client,
}

impl PluginClient {
    /// A request to plugin `target_plugin_id` at `path` (below its base URL), with the plugin
    /// token for `on_behalf_of` already set. Add a body or headers, then `send()` it.
    pub async fn request<P: PrincipalType>(
        &self,
        method: Method,
        target_plugin_id: &str,
        path: &str,
        on_behalf_of: &Credentials<P>,
    ) -> Result<reqwest::RequestBuilder> {
        let token = self
            .auth
            .plugin_request_token(on_behalf_of, target_plugin_id)
            .await?;
        let url = format!(
            "{}/{}",
            self.discovery.base_url(target_plugin_id),
            path.trim_start_matches('/')
        );
        let request = self.http.request(method, url);
        Ok(if token.token.is_empty() {
            request
        } else {
            request.bearer_auth(token.token)
        })
    }

    /// `GET` `path` of plugin `target_plugin_id`.
    pub async fn get<P: PrincipalType>(
        &self,
        target_plugin_id: &str,
        path: &str,
        on_behalf_of: &Credentials<P>,
    ) -> Result<reqwest::Response> {
        let request = self
            .request(Method::GET, target_plugin_id, path, on_behalf_of)
            .await?;
        request.send().await.map_err(|e| {
            Error::internal(format!("calling plugin '{target_plugin_id}' failed: {e}"))
        })
    }
}

impl ServiceTrait for PluginClient {
    type Scope = PluginScoped;
    const ID: &'static str = "core.pluginClient";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::auth::Auth, crate::discovery::Discovery);
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let shared = ctx.get::<super::tokens::SharedAuth>().await?;
            Ok(PluginClient {
                auth: ctx.get::<Auth>().await?,
                discovery: shared.0.discovery.clone(),
                http: shared.0.http.clone(),
            })
        })
    }
}
