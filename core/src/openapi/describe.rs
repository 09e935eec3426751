//! What a handler's parameter and return types say about its operation, chosen by type at
//! compile time (autoref specialization): the most specific description that applies wins.
//! The code `#[routes]` generates calls `(&&&&Probe::<T>::new()).describe(op)` for each
//! parameter and `.respond(op)` for the return type, with these traits in scope. A method
//! taking `&self` of an impl for `&&&Probe<T>` has the receiver `&&&&Probe<T>`, so it is found
//! first; the impls for `&&Probe<T>` and `&Probe<T>` are found one and two derefs later.

use std::marker::PhantomData;

use axum::extract::{Path, Query};
use axum::http::StatusCode;
use schemars::JsonSchema;
use serde_json::json;

use crate::http::Json;
use crate::plugin::Operation;

/// A handler's parameter or return type, to be described.
pub struct Probe<T: ?Sized>(PhantomData<T>);

impl<T: ?Sized> Probe<T> {
    /// The probe of `T`.
    pub const fn new() -> Self {
        Probe(PhantomData)
    }
}

impl<T: ?Sized> Default for Probe<T> {
    fn default() -> Self {
        Probe::new()
    }
}

/// Parameters whose types have JSON Schemas.
pub trait DescribeTyped {
    /// Adds what the parameter reads to `op`.
    fn describe(&self, op: &mut Operation<'_>);
}

/// Extractors whose types have no JSON Schema: shown open, and noted.
pub trait DescribeOpen {
    /// Adds what the parameter reads to `op`.
    fn describe(&self, op: &mut Operation<'_>);
}

/// Anything else (credentials, headers, services): nothing to describe.
pub trait DescribeOther {
    /// Adds nothing.
    fn describe(&self, op: &mut Operation<'_>);
}

impl<T: JsonSchema> DescribeTyped for &&&Probe<Path<T>> {
    fn describe(&self, op: &mut Operation<'_>) {
        let schema = op.schema::<T>();
        op.path_parameters(schema);
    }
}

impl<T: JsonSchema> DescribeTyped for &&&Probe<Query<T>> {
    fn describe(&self, op: &mut Operation<'_>) {
        let schema = op.schema::<T>();
        op.query_parameters(schema);
    }
}

impl<T: JsonSchema> DescribeTyped for &&&Probe<Json<T>> {
    fn describe(&self, op: &mut Operation<'_>) {
        let schema = op.schema::<T>();
        op.json_body(schema);
    }
}

impl<T: JsonSchema> DescribeTyped for &&&Probe<axum::Json<T>> {
    fn describe(&self, op: &mut Operation<'_>) {
        let schema = op.schema::<T>();
        op.json_body(schema);
    }
}

impl<T> DescribeOpen for &&Probe<Path<T>> {
    fn describe(&self, op: &mut Operation<'_>) {
        op.note_open(std::any::type_name::<T>());
        op.untyped_path_parameters();
    }
}

impl<T> DescribeOpen for &&Probe<Query<T>> {
    fn describe(&self, op: &mut Operation<'_>) {
        op.note_open(std::any::type_name::<T>());
        op.reads_input = true;
    }
}

impl<T> DescribeOpen for &&Probe<Json<T>> {
    fn describe(&self, op: &mut Operation<'_>) {
        op.note_open(std::any::type_name::<T>());
        op.json_body(json!({}));
    }
}

impl<T> DescribeOpen for &&Probe<axum::Json<T>> {
    fn describe(&self, op: &mut Operation<'_>) {
        op.note_open(std::any::type_name::<T>());
        op.json_body(json!({}));
    }
}

impl<T: ?Sized> DescribeOther for &Probe<T> {
    fn describe(&self, _op: &mut Operation<'_>) {}
}

/// Answers whose types say what they send.
pub trait RespondTyped {
    /// Adds the success response to `op`.
    fn respond(&self, op: &mut Operation<'_>);
}

/// JSON answers whose types have no JSON Schema: shown open, and noted.
pub trait RespondOpen {
    /// Adds the success response to `op`.
    fn respond(&self, op: &mut Operation<'_>);
}

/// Any other answer: a success whose status and body the handler chooses.
pub trait RespondOther {
    /// Adds the success response to `op`.
    fn respond(&self, op: &mut Operation<'_>);
}

impl<T: JsonSchema> RespondTyped for &&&Probe<Json<T>> {
    fn respond(&self, op: &mut Operation<'_>) {
        let schema = op.schema::<T>();
        op.response("200", "OK", Some(("application/json", schema)));
    }
}

impl<T: JsonSchema> RespondTyped for &&&Probe<axum::Json<T>> {
    fn respond(&self, op: &mut Operation<'_>) {
        let schema = op.schema::<T>();
        op.response("200", "OK", Some(("application/json", schema)));
    }
}

impl<T: JsonSchema> RespondTyped for &&&Probe<(StatusCode, Json<T>)> {
    fn respond(&self, op: &mut Operation<'_>) {
        let schema = op.schema::<T>();
        op.response(
            "2XX",
            "Success, with the status the handler chooses (201 Created, say)",
            Some(("application/json", schema)),
        );
    }
}

impl RespondTyped for &&&Probe<StatusCode> {
    fn respond(&self, op: &mut Operation<'_>) {
        op.response(
            "2XX",
            "Success, with the status the handler chooses (204 No Content, say)",
            None,
        );
    }
}

impl RespondTyped for &&&Probe<String> {
    fn respond(&self, op: &mut Operation<'_>) {
        op.response("200", "OK", Some(("text/plain", json!({"type": "string"}))));
    }
}

impl RespondTyped for &&&Probe<&'static str> {
    fn respond(&self, op: &mut Operation<'_>) {
        op.response("200", "OK", Some(("text/plain", json!({"type": "string"}))));
    }
}

impl RespondTyped for &&&Probe<()> {
    fn respond(&self, op: &mut Operation<'_>) {
        op.response("200", "OK, with no body", None);
    }
}

impl<T> RespondOpen for &&Probe<Json<T>> {
    fn respond(&self, op: &mut Operation<'_>) {
        op.note_open(std::any::type_name::<T>());
        op.response("200", "OK", Some(("application/json", json!({}))));
    }
}

impl<T> RespondOpen for &&Probe<axum::Json<T>> {
    fn respond(&self, op: &mut Operation<'_>) {
        op.note_open(std::any::type_name::<T>());
        op.response("200", "OK", Some(("application/json", json!({}))));
    }
}

impl<T> RespondOpen for &&Probe<(StatusCode, Json<T>)> {
    fn respond(&self, op: &mut Operation<'_>) {
        op.note_open(std::any::type_name::<T>());
        op.response(
            "2XX",
            "Success, with the status the handler chooses",
            Some(("application/json", json!({}))),
        );
    }
}

impl<T: ?Sized> RespondOther for &Probe<T> {
    fn respond(&self, op: &mut Operation<'_>) {
        op.response("2XX", "Success, as the handler answers", None);
    }
}

impl Probe<()> {
    /// An answer whose type cannot be named (`impl IntoResponse`): a success the handler
    /// chooses.
    pub fn respond_other(&self, op: &mut Operation<'_>) {
        op.response("2XX", "Success, as the handler answers", None);
    }
}
