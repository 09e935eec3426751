//! The `actions` service: listing and invoking the actions of the deployment's plugins, Rust or
//! TypeScript, as Backstage's `actionsService` does.

use std::sync::Arc;

use axum::http::Method;
use serde::Deserialize;
use serde::Serialize;
use serde_json::Value;

use super::attributes::ActionAttributes;
use super::filter::Visibility;
use super::registry::{Action, Failure};
use crate::auth::{Credentials, PluginClient, PrincipalType};
use crate::error::{Error, Result};
use crate::logging::Logger;
use crate::plugin::{BoxFuture, PluginScoped, Service, ServiceContext};

/// An action as its plugin lists it.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ActionDescription {
    /// `<pluginId>:<name>`.
    pub id: String,
    /// The name, unique within the plugin.
    pub name: String,
    /// A short title.
    pub title: String,
    /// What it does.
    pub description: String,
    /// The plugin that offers it.
    pub plugin_id: String,
    /// How it behaves.
    pub attributes: ActionAttributes,
    /// The JSON Schemas of its input and output.
    pub schema: ActionSchemas,
}

/// The JSON Schemas of an action's input and output.
#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[non_exhaustive]
pub struct ActionSchemas {
    /// What it takes.
    pub input: Value,
    /// What it answers.
    pub output: Value,
}

/// The `actions` service: the actions of the plugins `backend.actions.pluginSources` names,
/// listed and invoked on behalf of a caller (a plugin token on behalf of the user, when the
/// credentials are a user's).
///
/// ```no_run
/// use backstage::actions::Actions;
/// use backstage::prelude::*;
///
/// #[backend_plugin(id = "assistant")]
/// pub struct Assistant {
///     #[inject]
///     actions: Actions,
/// }
///
/// #[routes]
/// impl Assistant {
///     #[route(post, "/ask")]
///     async fn ask(&self, creds: Credentials) -> Result<Json<serde_json::Value>> {
///         let listed = self.actions.list(&creds).await?;
///         let first = listed.first().ok_or_else(|| Error::not_found("no actions"))?;
///         let output = self.actions.invoke(&first.id, serde_json::json!({}), &creds).await?;
///         Ok(Json(output))
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct Actions {
    source: Source,
    visibility: Arc<Visibility>,
}

/// Where the actions come from.
#[derive(Clone)]
enum Source {
    /// The plugins of the deployment, over HTTP.
    Plugins {
        client: PluginClient,
        logger: Logger,
    },
    /// Actions held in memory, as plugin `plugin_id`'s: [`crate::testing::mock::actions`].
    Memory {
        plugin_id: Arc<str>,
        actions: Arc<Vec<Action>>,
    },
}

impl std::fmt::Debug for Actions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Actions").finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
struct Listing {
    actions: Vec<ActionDescription>,
}

impl Actions {
    /// Every action of the plugins in `backend.actions.pluginSources` that the filter lets
    /// through. A plugin that cannot be read is logged and left out, as Backstage does.
    pub async fn list<P: PrincipalType>(
        &self,
        credentials: &Credentials<P>,
    ) -> Result<Vec<ActionDescription>> {
        let (client, logger) = match &self.source {
            Source::Plugins { client, logger } => (client, logger),
            Source::Memory { plugin_id, actions } => {
                return Ok(actions
                    .iter()
                    .map(|action| ActionDescription::of(plugin_id, action))
                    .collect());
            }
        };
        let lists = self.visibility.sources().iter().map(|source| async move {
            match Self::list_of(client, source, credentials).await {
                Ok(actions) => actions,
                Err(e) => {
                    logger.warn(format!("Failed to fetch actions from {source}: {e}"));
                    Vec::new()
                }
            }
        });
        let actions = futures_util::future::join_all(lists).await;
        Ok(actions
            .into_iter()
            .flatten()
            .filter(|action| self.visibility.allows(&action.id, &action.attributes))
            .collect())
    }

    async fn list_of<P: PrincipalType>(
        client: &PluginClient,
        plugin_id: &str,
        credentials: &Credentials<P>,
    ) -> Result<Vec<ActionDescription>> {
        let response = client
            .request(
                Method::GET,
                plugin_id,
                "/.backstage/actions/v1/actions",
                credentials,
            )
            .await?
            .send()
            .await
            .map_err(|e| {
                Error::service_unavailable(format!("calling plugin '{plugin_id}' failed: {e}"))
            })?;
        let listing: Listing = read(response).await?;
        Ok(listing.actions)
    }

    /// Invokes action `id` (`<pluginId>:<name>`) with `input`, and returns its output.
    pub async fn invoke<P: PrincipalType>(
        &self,
        id: &str,
        input: impl Serialize,
        credentials: &Credentials<P>,
    ) -> Result<Value> {
        let Some((plugin_id, name)) = id.split_once(':') else {
            return Err(Error::input(format!("Invalid action id: {id}")));
        };
        let input = serde_json::to_value(input)
            .map_err(|e| Error::input(format!("the input of action {id} is not JSON: {e}")))?;
        let client = match &self.source {
            Source::Plugins { client, .. } => client,
            Source::Memory {
                plugin_id: own,
                actions,
            } => {
                let action = actions
                    .iter()
                    .find(|action| **own == *plugin_id && action.name() == name)
                    .ok_or_else(|| Error::not_found(format!("Action \"{id}\" not found")))?;
                return action
                    .invoke(input, credentials.erase())
                    .await
                    .map_err(|failure| match failure {
                        Failure::Input(why) => Error::input(format!(
                            "Invalid input to action \"{id}\"; caused by Error: {why}"
                        )),
                        Failure::Failed(error) => error,
                    });
            }
        };
        let path = format!(
            "/.backstage/actions/v1/actions/{}/invoke",
            url::form_urlencoded::byte_serialize(id.as_bytes()).collect::<String>()
        );
        let response = client
            .request(Method::POST, plugin_id, &path, credentials)
            .await?
            .json(&input)
            .send()
            .await
            .map_err(|e| {
                Error::service_unavailable(format!("calling plugin '{plugin_id}' failed: {e}"))
            })?;
        #[derive(Deserialize)]
        struct Invoked {
            #[serde(default)]
            output: Value,
        }
        let invoked: Invoked = read(response).await?;
        Ok(invoked.output)
    }
}

impl Actions {
    /// An `actions` service that offers `actions` as plugin `plugin_id`'s, in memory.
    pub(crate) fn in_memory(plugin_id: &str, actions: Vec<Action>) -> Actions {
        Actions {
            source: Source::Memory {
                plugin_id: plugin_id.into(),
                actions: Arc::new(actions),
            },
            visibility: Arc::new(Visibility::everything()),
        }
    }
}

impl ActionDescription {
    /// How plugin `plugin_id` lists `action`.
    pub(crate) fn of(plugin_id: &str, action: &Action) -> ActionDescription {
        let (input, output) = action.schemas();
        ActionDescription {
            id: format!("{plugin_id}:{}", action.name()),
            name: action.name().to_owned(),
            title: action.title().to_owned(),
            description: action.description().to_owned(),
            plugin_id: plugin_id.to_owned(),
            attributes: action.attributes(),
            schema: ActionSchemas {
                input: input.clone(),
                output: output.clone(),
            },
        }
    }
}

/// The body of a successful answer as `T`, or the callee's error as an [`Error`] of its kind.
async fn read<T: serde::de::DeserializeOwned>(response: reqwest::Response) -> Result<T> {
    if !response.status().is_success() {
        return Err(Error::from_response(response).await);
    }
    let url = response.url().to_string();
    response.json().await.map_err(|e| {
        Error::internal(format!(
            "{url} answered something that is not the expected JSON: {e}"
        ))
    })
}

impl Service for Actions {
    type Scope = PluginScoped;
    const ID: &'static str = "core.actions";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(PluginClient, Logger);
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            Ok(Actions {
                source: Source::Plugins {
                    client: ctx.get::<PluginClient>().await?,
                    logger: ctx.get::<Logger>().await?,
                },
                visibility: Arc::new(Visibility::from_config(ctx.config())?),
            })
        })
    }
}
