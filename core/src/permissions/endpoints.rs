//! The endpoints Backstage's permission backend and RBAC tools call on each plugin that uses
//! the permissions registry: the metadata, and applying conditions to the plugin's resources.

use axum::Router;
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::{Value, json};

use super::registry::{PermissionsRegistry, criteria};
use crate::auth::{Credentials, Principal};
use crate::error::{Error, Result};
use crate::http::Json;
use crate::plugin::AuthPolicyKind;

const METADATA: &str = "/.well-known/backstage/permissions/metadata";
const APPLY_CONDITIONS: &str = "/.well-known/backstage/permissions/apply-conditions";

/// What the router serves, for the route table: method, path below the plugin, policy.
pub(crate) const ENDPOINTS: &[(&str, &str, AuthPolicyKind)] = &[
    ("GET", METADATA, AuthPolicyKind::Default),
    ("POST", APPLY_CONDITIONS, AuthPolicyKind::Default),
];

/// The plugin's permission endpoints (behind its auth policies: the caller mounts them
/// guarded).
pub(crate) fn router(registry: PermissionsRegistry) -> Router {
    let metadata = registry.clone();
    Router::new()
        .route(
            METADATA,
            axum::routing::get(move || std::future::ready(Json(metadata.metadata()))),
        )
        .route(
            APPLY_CONDITIONS,
            axum::routing::post(move |credentials: Credentials, Json(body): Json<Value>| {
                let registry = registry.clone();
                async move {
                    match apply_conditions(&registry, &credentials, body).await {
                        Ok(answer) => Json(answer).into_response(),
                        Err(error) => error.into_response(),
                    }
                }
            }),
        )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    items: Vec<Item>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
    id: String,
    resource_ref: Refs,
    resource_type: String,
    conditions: Value,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Refs {
    One(String),
    Many(Vec<String>),
}

async fn apply_conditions(
    registry: &PermissionsRegistry,
    credentials: &Credentials,
    body: Value,
) -> Result<Value> {
    // Only the permission backend applies conditions: services, or users acting through one.
    match credentials.any() {
        Principal::Service(_) => {}
        Principal::User(_) if credentials.actor().is_some() => {}
        Principal::User(_) => return Err(Error::not_allowed("")),
        Principal::None => return Err(Error::authentication("Missing credentials")),
    }
    let request: Request = serde_json::from_value(body)
        .map_err(|e| Error::input(format!("apply-conditions request: {e}")))?;
    let unknown: Vec<&str> = request
        .items
        .iter()
        .filter(|item| registry.resources(&item.resource_type).is_none())
        .map(|item| item.resource_type.as_str())
        .collect();
    if !unknown.is_empty() {
        return Err(Error::input(format!(
            "Unexpected resource types: {}.",
            unknown.join(", ")
        )));
    }
    // Each resource type's resources are loaded once, for all its items.
    let mut results: Vec<Vec<bool>> = vec![Vec::new(); request.items.len()];
    let mut types: Vec<&str> = request
        .items
        .iter()
        .map(|i| i.resource_type.as_str())
        .collect();
    types.sort_unstable();
    types.dedup();
    for resource_type in types {
        let mut indices = Vec::new();
        let mut asks = Vec::new();
        for (i, item) in request.items.iter().enumerate() {
            if item.resource_type != resource_type {
                continue;
            }
            let refs = match &item.resource_ref {
                Refs::One(r) => vec![r.clone()],
                Refs::Many(refs) if refs.is_empty() => {
                    return Err(Error::input("resourceRef: at least one ref is needed"));
                }
                Refs::Many(refs) => refs.clone(),
            };
            indices.push(i);
            asks.push((refs, criteria(&item.conditions)?));
        }
        let resources = registry
            .resources(resource_type)
            .ok_or_else(|| Error::input(format!("Unexpected resource types: {resource_type}.")))?;
        for (i, decided) in indices.into_iter().zip(resources.decide(asks).await?) {
            results[i] = decided;
        }
    }
    let word = |allowed: &bool| if *allowed { "ALLOW" } else { "DENY" };
    let answers: Vec<Value> = request
        .items
        .iter()
        .zip(&results)
        .map(|(item, decided)| {
            let result = match (&item.resource_ref, decided.as_slice()) {
                (Refs::One(_), [one]) => json!(word(one)),
                _ => json!(decided.iter().map(word).collect::<Vec<_>>()),
            };
            json!({ "id": item.id, "result": result })
        })
        .collect();
    Ok(json!({ "items": answers }))
}
