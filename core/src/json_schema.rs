//! JSON Schemas of Rust types, in the dialect Backstage's zod schemas are converted to.

use schemars::JsonSchema;
use serde_json::Value;

/// `T`'s JSON Schema, draft 7, without the root `title` (the Rust type's name, which zod's
/// schemas do not carry and which helps no reader).
pub(crate) fn draft07<T: JsonSchema>() -> Value {
    let generator = schemars::generate::SchemaSettings::draft07().into_generator();
    let mut schema =
        serde_json::to_value(generator.into_root_schema_for::<T>()).unwrap_or(Value::Null);
    if let Some(root) = schema.as_object_mut() {
        root.remove("title");
    }
    schema
}
