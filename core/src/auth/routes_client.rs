//! What the typed clients `#[routes]` generates (`CarmenClient`) are made of: a path filled
//! in, a query and a body written, the answer read, and the callee's errors as [`Error`]s.
//!
//! Each value is written or read through a probe (autoref specialization), so a client is
//! generated for every plugin, whatever its types: a type that cannot be written (not
//! `Serialize`) or read (not `Deserialize`) makes only the call that needs it fail, with an
//! error that says what to derive.

use std::marker::PhantomData;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::error::{Error, Result};

/// A value of type `T` for a generated client: a path, a query, a body or an answer.
pub struct ClientProbe<T: ?Sized>(PhantomData<fn() -> *const T>);

impl<T: ?Sized> ClientProbe<T> {
    /// The probe of `T`.
    pub const fn new() -> Self {
        ClientProbe(PhantomData)
    }
}

impl<T: ?Sized> Default for ClientProbe<T> {
    fn default() -> Self {
        ClientProbe::new()
    }
}

/// Values that serde writes.
pub trait WriteTyped<T> {
    /// The path's `{names}` filled with `value` (one value, a tuple in order, or a struct's
    /// fields by name), each percent-encoded.
    fn path(&self, template: &str, value: &T) -> Result<String>;
    /// `request` with `value` as its query string.
    fn query(&self, request: reqwest::RequestBuilder, value: &T)
    -> Result<reqwest::RequestBuilder>;
    /// `request` with `value` as its JSON body.
    fn body(&self, request: reqwest::RequestBuilder, value: &T) -> Result<reqwest::RequestBuilder>;
}

/// Values serde cannot write: the call fails, naming the type.
pub trait WriteOther<T> {
    /// Fails: `T` is not `Serialize`.
    fn path(&self, template: &str, value: &T) -> Result<String>;
    /// Fails: `T` is not `Serialize`.
    fn query(&self, request: reqwest::RequestBuilder, value: &T)
    -> Result<reqwest::RequestBuilder>;
    /// Fails: `T` is not `Serialize`.
    fn body(&self, request: reqwest::RequestBuilder, value: &T) -> Result<reqwest::RequestBuilder>;
}

fn not_serialize<T: ?Sized>() -> Error {
    Error::internal(format!(
        "{} cannot be sent by the generated client: derive serde::Serialize for it",
        std::any::type_name::<T>()
    ))
}

impl<T: Serialize> WriteTyped<T> for &&ClientProbe<T> {
    fn path(&self, template: &str, value: &T) -> Result<String> {
        let value = serde_json::to_value(value).map_err(|e| Error::input(e.to_string()))?;
        fill(template, &value)
    }

    fn query(
        &self,
        request: reqwest::RequestBuilder,
        value: &T,
    ) -> Result<reqwest::RequestBuilder> {
        Ok(request.query(value))
    }

    fn body(&self, request: reqwest::RequestBuilder, value: &T) -> Result<reqwest::RequestBuilder> {
        Ok(request.json(value))
    }
}

impl<T> WriteOther<T> for &ClientProbe<T> {
    fn path(&self, _template: &str, _value: &T) -> Result<String> {
        Err(not_serialize::<T>())
    }

    fn query(
        &self,
        _request: reqwest::RequestBuilder,
        _value: &T,
    ) -> Result<reqwest::RequestBuilder> {
        Err(not_serialize::<T>())
    }

    fn body(
        &self,
        _request: reqwest::RequestBuilder,
        _value: &T,
    ) -> Result<reqwest::RequestBuilder> {
        Err(not_serialize::<T>())
    }
}

/// `template`'s `{names}` filled from `value`.
fn fill(template: &str, value: &Value) -> Result<String> {
    let names: Vec<&str> = template
        .split('/')
        .filter_map(|segment| segment.strip_prefix('{')?.strip_suffix('}'))
        .collect();
    let text = |value: &Value| match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(Error::input(format!("{other} cannot be a path segment"))),
    };
    let values: Vec<String> = match value {
        Value::Array(items) => items.iter().map(text).collect::<Result<_>>()?,
        Value::Object(fields) => names
            .iter()
            .map(|name| {
                fields
                    .get(*name)
                    .ok_or_else(|| Error::input(format!("no value for {{{name}}}")))
                    .and_then(text)
            })
            .collect::<Result<_>>()?,
        single => vec![text(single)?],
    };
    if values.len() != names.len() {
        return Err(Error::input(format!(
            "{template} takes {} values, not {}",
            names.len(),
            values.len()
        )));
    }
    let mut values = values.into_iter();
    let path = template
        .split('/')
        .map(|segment| {
            if segment.starts_with('{') && segment.ends_with('}') {
                let value = values.next().unwrap_or_default();
                percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC)
                    .to_string()
            } else {
                segment.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("/");
    Ok(path)
}

/// Answers that serde reads.
pub trait ReadTyped<T> {
    /// The answer's JSON body as `T`.
    fn read(&self, response: reqwest::Response) -> impl Future<Output = Result<T>> + Send;
}

/// Answers serde cannot read: the call fails, naming the type.
pub trait ReadOther<T> {
    /// Fails: `T` is not `Deserialize`.
    fn read(&self, response: reqwest::Response) -> impl Future<Output = Result<T>> + Send;
}

impl<T: DeserializeOwned + Send> ReadTyped<T> for &&ClientProbe<T> {
    async fn read(&self, response: reqwest::Response) -> Result<T> {
        let url = response.url().to_string();
        let bytes = response
            .bytes()
            .await
            .map_err(|e| Error::service_unavailable(format!("reading {url} failed: {e}")))?;
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::internal(format!(
                "{url} answered something that is not a {}: {e}",
                std::any::type_name::<T>()
            ))
        })
    }
}

impl<T: Send> ReadOther<T> for &ClientProbe<T> {
    async fn read(&self, _response: reqwest::Response) -> Result<T> {
        Err(Error::internal(format!(
            "{} cannot be read by the generated client: derive serde::Deserialize for it",
            std::any::type_name::<T>()
        )))
    }
}

/// Sends `request`: the answer when it succeeded, otherwise the callee's error as an
/// [`Error`] of its kind (Backstage's error body read), or 503 when the callee cannot be
/// reached.
pub async fn send(request: reqwest::RequestBuilder) -> Result<reqwest::Response> {
    let response = request
        .send()
        .await
        .map_err(|e| Error::service_unavailable(format!("the call failed: {e}")))?;
    if response.status().is_success() {
        Ok(response)
    } else {
        Err(Error::from_response(response).await)
    }
}

/// The answer's body as text.
pub async fn text(response: reqwest::Response) -> Result<String> {
    response
        .text()
        .await
        .map_err(|e| Error::service_unavailable(format!("reading the answer failed: {e}")))
}

/// The answer's body as bytes.
pub async fn bytes(response: reqwest::Response) -> Result<axum::body::Bytes> {
    response
        .bytes()
        .await
        .map_err(|e| Error::service_unavailable(format!("reading the answer failed: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_are_filled_by_position_or_name_and_encoded() {
        assert_eq!(fill("/items/{id}", &json!(7)).unwrap(), "/items/7");
        assert_eq!(
            fill("/b/{id}/p/{page}", &json!([1, "a b/c"])).unwrap(),
            "/b/1/p/a%20b%2Fc"
        );
        assert_eq!(
            fill("/b/{id}/p/{page}", &json!({"page": "x", "id": 2})).unwrap(),
            "/b/2/p/x"
        );
        assert!(fill("/b/{id}/p/{page}", &json!(1)).is_err());
    }
}
