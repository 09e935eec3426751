//! One operation of a plugin's API as its OpenAPI document describes it ([`crate::openapi`]),
//! filled in by the code `#[routes]` generates for each route from the handler's types.

use schemars::JsonSchema;
use schemars::generate::SchemaGenerator;
use serde_json::{Map, Value, json};

/// One route's operation while it is being described: its parameters, body and responses.
/// The code `#[routes]` generates fills it from the handler's parameter and return types.
pub struct Operation<'g> {
    pub(crate) path: &'static str,
    pub(crate) parameters: Vec<Value>,
    pub(crate) body: Option<Value>,
    pub(crate) responses: Map<String, Value>,
    /// Types without a JSON Schema, named for the note about them.
    pub(crate) open: Vec<&'static str>,
    /// Whether the route reads input that can be refused with 400.
    pub(crate) reads_input: bool,
    generator: &'g mut SchemaGenerator,
}

impl std::fmt::Debug for Operation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operation")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl<'g> Operation<'g> {
    pub(crate) fn new(path: &'static str, generator: &'g mut SchemaGenerator) -> Self {
        Operation {
            path,
            parameters: Vec::new(),
            body: None,
            responses: Map::new(),
            open: Vec::new(),
            reads_input: false,
            generator,
        }
    }

    /// `T`'s schema: a reference into the document's components for named types.
    pub(crate) fn schema<T: JsonSchema + ?Sized>(&mut self) -> Value {
        self.generator.subschema_for::<T>().to_value()
    }

    /// The names of the path's `{parameters}`, in order.
    fn template_names(&self) -> Vec<&'static str> {
        self.path
            .split('/')
            .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
            .map(|name| name.trim_start_matches('*'))
            .collect()
    }

    /// The path parameters of a `Path<T>` with `T`'s schema: a struct's fields by name, a
    /// tuple's items in order, or one value for the one parameter.
    pub(crate) fn path_parameters(&mut self, schema: Value) {
        self.reads_input = true;
        let names = self.template_names();
        let resolved = self.resolve(&schema);
        let by_name = resolved.get("properties").and_then(Value::as_object);
        let by_position = resolved
            .get("prefixItems")
            .or_else(|| resolved.get("items"))
            .and_then(Value::as_array);
        for (i, name) in names.iter().enumerate() {
            let schema = match (by_name, by_position) {
                (Some(properties), _) => properties.get(*name).cloned(),
                (None, Some(items)) => items.get(i).cloned(),
                (None, None) if names.len() == 1 => Some(schema.clone()),
                _ => None,
            };
            self.parameter(
                "path",
                name,
                true,
                schema.unwrap_or_else(|| json!({"type": "string"})),
            );
        }
    }

    /// Path parameters as strings, for a `Path<T>` whose `T` has no schema.
    pub(crate) fn untyped_path_parameters(&mut self) {
        self.reads_input = true;
        self.untyped_path_parameters_missing();
    }

    /// The path's `{parameters}` no type described, as strings.
    pub(crate) fn untyped_path_parameters_missing(&mut self) {
        for name in self.template_names() {
            self.parameter("path", name, true, json!({"type": "string"}));
        }
    }

    /// The query parameters of a `Query<T>`: the fields of `T`'s schema.
    pub(crate) fn query_parameters(&mut self, schema: Value) {
        self.reads_input = true;
        let resolved = self.resolve(&schema);
        let required: Vec<&str> = resolved
            .get("required")
            .and_then(Value::as_array)
            .map(|names| names.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let properties = resolved
            .get("properties")
            .and_then(Value::as_object)
            .cloned()
            .unwrap_or_default();
        for (name, schema) in properties {
            let required = required.contains(&name.as_str());
            self.parameter("query", &name, required, schema);
        }
    }

    fn parameter(&mut self, location: &str, name: &str, required: bool, schema: Value) {
        if self
            .parameters
            .iter()
            .any(|p| p["name"] == name && p["in"] == location)
        {
            return;
        }
        let mut parameter =
            json!({ "name": name, "in": location, "required": required, "schema": schema });
        if let Some(description) = parameter["schema"]
            .as_object_mut()
            .and_then(|s| s.remove("description"))
        {
            parameter["description"] = description;
        }
        self.parameters.push(parameter);
    }

    /// A JSON request body of `schema`.
    pub(crate) fn json_body(&mut self, schema: Value) {
        self.reads_input = true;
        self.body = Some(json!({
            "required": true,
            "content": { "application/json": { "schema": schema } },
        }));
    }

    /// A response with `status` (`200`, `2XX`), described, with a body of `media` and `schema`.
    pub(crate) fn response(
        &mut self,
        status: &str,
        description: &str,
        body: Option<(&str, Value)>,
    ) {
        let mut response = json!({ "description": description });
        if let Some((media, schema)) = body {
            response["content"] = json!({ media: { "schema": schema } });
        }
        self.responses.insert(status.to_owned(), response);
    }

    /// Notes that `name` has no JSON Schema: the document shows an open schema for it.
    pub(crate) fn note_open(&mut self, name: &'static str) {
        self.open.push(name);
    }

    /// A schema with a `$ref` into the components followed, for reading its fields.
    fn resolve(&self, schema: &Value) -> Value {
        let Some(reference) = schema.get("$ref").and_then(Value::as_str) else {
            return schema.clone();
        };
        let name = reference.rsplit('/').next().unwrap_or_default();
        self.generator
            .definitions()
            .get(name)
            .cloned()
            .unwrap_or_else(|| schema.clone())
    }
}
