//! A plugin's OpenAPI 3.1 document, assembled from its routes.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::plugin::{AuthPolicyKind, Operation, RouteInfo};

/// Builds the document of plugin `plugin_id` from its `routes`, with paths below `prefix` (``
/// for the plugin's own paths, `/api/<pluginId>` as served). Types without a JSON Schema are
/// returned by name: the document shows an open schema for each.
pub(crate) fn build(plugin_id: &str, prefix: &str, routes: &[RouteInfo]) -> (Value, Vec<String>) {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|s| s.definitions_path = "#/components/schemas/".into())
        .into_generator();
    let mut paths = Map::new();
    let mut open = Vec::new();
    for route in routes {
        let mut op = Operation::new(route.path, &mut generator);
        (route.describe)(&mut op);
        // Path parameters the types did not name are strings.
        op.untyped_path_parameters_missing();
        open.extend(
            op.open
                .iter()
                .map(|t| format!("{} {}: {t}", route.method, route.path)),
        );
        let operation = operation(plugin_id, route, op);
        let path = format!("{prefix}{}", route.path);
        let entry = paths
            .entry(if path.is_empty() {
                "/".to_owned()
            } else {
                path
            })
            .or_insert_with(|| json!({}));
        entry[route.method.to_ascii_lowercase()] = operation;
    }
    let mut schemas = generator.take_definitions(true);
    schemas.insert("Error".to_owned(), error_schema());
    let document = json!({
        "openapi": "3.1.0",
        "info": {
            "title": plugin_id,
            "version": "1",
            "description": format!("The API of the `{plugin_id}` backend plugin, generated from its routes."),
        },
        "servers": [{ "url": "/" }],
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "JWT": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT" },
                "BackstageCookie": { "type": "apiKey", "in": "cookie", "name": "backstage-auth" },
            },
        },
    });
    (document, open)
}

fn operation(plugin_id: &str, route: &RouteInfo, mut op: Operation<'_>) -> Value {
    let error = |description: &str| {
        json!({
            "description": description,
            "content": { "application/json": { "schema": { "$ref": "#/components/schemas/Error" } } },
        })
    };
    if op.reads_input {
        op.responses.insert(
            "400".to_owned(),
            error("The request's input is not valid (InputError)"),
        );
    }
    let security = match route.auth {
        AuthPolicyKind::Unauthenticated => json!([]),
        AuthPolicyKind::Default => json!([{ "JWT": [] }]),
        AuthPolicyKind::UserCookie => json!([{ "JWT": [] }, { "BackstageCookie": [] }]),
    };
    if route.auth != AuthPolicyKind::Unauthenticated {
        op.responses.insert(
            "401".to_owned(),
            error("Credentials are missing or not valid (AuthenticationError)"),
        );
    }
    if route.narrowed {
        op.responses.insert(
            "403".to_owned(),
            error("The caller's kind of credentials is not allowed (NotAllowedError)"),
        );
    }
    if route.fallible {
        op.responses.insert(
            "default".to_owned(),
            error("An error, in Backstage's error body"),
        );
    }
    let mut operation = json!({
        "operationId": route.handler,
        "tags": [plugin_id],
        "security": security,
        "responses": op.responses,
    });
    if !route.summary.is_empty() {
        operation["summary"] = json!(route.summary);
    }
    if !route.description.is_empty() {
        operation["description"] = json!(route.description);
    }
    if !op.parameters.is_empty() {
        operation["parameters"] = Value::Array(std::mem::take(&mut op.parameters));
    }
    if let Some(body) = op.body.take() {
        operation["requestBody"] = body;
    }
    operation
}

/// Backstage's error body.
fn error_schema() -> Value {
    json!({
        "type": "object",
        "required": ["error", "request", "response"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["name", "message"],
                "properties": {
                    "name": { "type": "string", "examples": ["NotFoundError"] },
                    "message": { "type": "string" },
                },
            },
            "request": {
                "type": "object",
                "properties": { "method": { "type": "string" }, "url": { "type": "string" } },
            },
            "response": {
                "type": "object",
                "required": ["statusCode"],
                "properties": { "statusCode": { "type": "integer" } },
            },
        },
    })
}
