//! The endpoints Backstage's actions registry serves in each plugin that offers actions: the
//! list, and invocation in its two forms (v1: the body is the input; v2: `{input, secrets}`).

use axum::Router;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};

use super::attributes::ActionAttributes;
use super::registry::{Action, ActionsRegistry, Failure};
use crate::auth::{Credentials, Principal, ServicePrincipal};
use crate::error::{Error, ErrorKind};
use crate::http::Json;
use crate::plugin::AuthPolicyKind;

/// What the router serves, for the route table: method, path below the plugin, policy.
pub(crate) const ENDPOINTS: &[(&str, &str, AuthPolicyKind)] = &[
    (
        "GET",
        "/.backstage/actions/v1/actions",
        AuthPolicyKind::Default,
    ),
    (
        "GET",
        "/.backstage/actions/v1/status",
        AuthPolicyKind::Default,
    ),
    (
        "POST",
        "/.backstage/actions/v1/actions/{id}/invoke",
        AuthPolicyKind::Default,
    ),
    (
        "POST",
        "/.backstage/actions/v2/actions/{id}/invoke",
        AuthPolicyKind::Default,
    ),
];

/// The plugin's actions endpoints (behind its auth policies: the caller mounts them guarded).
pub(crate) fn router(registry: ActionsRegistry) -> Router {
    let list = registry.clone();
    let status = registry.clone();
    let v1 = registry.clone();
    let v2 = registry;
    Router::new()
        .route(
            "/.backstage/actions/v1/actions",
            axum::routing::get(move || std::future::ready(listing(&list))),
        )
        // Whether the plugin has actions; for services only, as Backstage's.
        .route(
            "/.backstage/actions/v1/status",
            axum::routing::get(move |_: Credentials<ServicePrincipal>| {
                let has_actions = !status.is_empty();
                std::future::ready(Json(json!({ "hasActions": has_actions })))
            }),
        )
        .route(
            "/.backstage/actions/v1/actions/{id}/invoke",
            axum::routing::post(
                move |Path(id): Path<String>, credentials: Credentials, Json(body): Json<Value>| {
                    let registry = v1.clone();
                    async move { invoke(&registry, &id, credentials, body, None).await }
                },
            ),
        )
        .route(
            "/.backstage/actions/v2/actions/{id}/invoke",
            axum::routing::post(
                move |Path(id): Path<String>, credentials: Credentials, Json(body): Json<Value>| {
                    let registry = v2.clone();
                    async move {
                        let mut body = body;
                        let input = body
                            .get_mut("input")
                            .map(Value::take)
                            .unwrap_or(Value::Null);
                        let secrets = body.get_mut("secrets").map(Value::take);
                        invoke(&registry, &id, credentials, input, secrets).await
                    }
                },
            ),
        )
}

/// An action as the list describes it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Listed<'a> {
    id: &'a str,
    name: &'a str,
    title: &'a str,
    description: &'a str,
    plugin_id: &'a str,
    attributes: ActionAttributes,
    schema: Schemas<'a>,
}

#[derive(Serialize)]
struct Schemas<'a> {
    input: &'a Value,
    output: &'a Value,
}

fn listing(registry: &ActionsRegistry) -> Response {
    let visible = registry.visible();
    let actions: Vec<Listed<'_>> = visible
        .iter()
        .map(|(id, action)| describe(registry.plugin_id(), id, action))
        .collect();
    Json(json!({ "actions": actions })).into_response()
}

fn describe<'a>(plugin_id: &'a str, id: &'a str, action: &'a Action) -> Listed<'a> {
    let (input, output) = action.schemas();
    Listed {
        id,
        name: action.name(),
        title: action.title(),
        description: action.description(),
        plugin_id,
        attributes: action.attributes(),
        schema: Schemas { input, output },
    }
}

async fn invoke(
    registry: &ActionsRegistry,
    id: &str,
    credentials: Credentials,
    input: Value,
    secrets: Option<Value>,
) -> Response {
    if matches!(credentials.any(), Principal::None) {
        return Error::not_allowed(
            "Actions must be invoked by an authenticated principal, not an anonymous request",
        )
        .into_response();
    }
    let Some(action) = registry.find(id) else {
        return Error::not_found(format!("Action \"{id}\" not found")).into_response();
    };
    if secrets.is_some_and(|s| !s.is_null()) {
        return Error::input(format!("Action \"{id}\" does not accept secrets")).into_response();
    }
    match action.invoke(input, credentials).await {
        Ok(output) => Json(json!({ "output": output })).into_response(),
        // As Backstage's InputError with a cause: the cause in the message and beside it.
        Err(Failure::Input(why)) => Error::new(
            ErrorKind::Input,
            format!("Invalid input to action \"{id}\"; caused by Error: {why}"),
        )
        .with_fields(vec![("cause", json!({ "name": "Error", "message": why }))])
        .into_response(),
        Err(Failure::Failed(error)) => error.into_response(),
    }
}
