//! CORS as Backstage configures the `cors` middleware, from `backend.cors`.

use std::time::Duration;

use axum::http::Method;
use axum::http::header::HeaderName;
use serde_json::Value;

use crate::config::RootConfig;
use crate::error::{Error, Result};

/// `backend.cors`, as a tower-http layer; `None` when absent (no CORS headers, as Backstage).
pub(crate) fn cors(config: &RootConfig) -> Result<Option<tower_http::cors::CorsLayer>> {
    use tower_http::cors::{AllowHeaders, AllowMethods, AllowOrigin, CorsLayer, ExposeHeaders};
    if !config.has("backend.cors") {
        return Ok(None);
    }
    let list = |key: &str| -> Result<Option<Vec<String>>> {
        match config.get_optional::<Value>(&format!("backend.cors.{key}"))? {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(
                s.split(',')
                    .map(|p| p.trim().to_owned())
                    .filter(|p| !p.is_empty())
                    .collect(),
            )),
            Some(value) => serde_json::from_value(value).map(Some).map_err(|_| {
                Error::input(format!(
                    "backend.cors.{key} must be a string or a list of strings"
                ))
            }),
        }
    };
    let mut layer = CorsLayer::new();
    let origins = list("origin")?.unwrap_or_default();
    let mut builder = globset::GlobSetBuilder::new();
    for origin in &origins {
        let glob = globset::GlobBuilder::new(origin)
            .literal_separator(false)
            .build()
            .map_err(|e| {
                Error::input(format!(
                    "backend.cors.origin: '{origin}' is not a valid pattern: {e}"
                ))
            })?;
        builder.add(glob);
    }
    let globs = builder
        .build()
        .map_err(|e| Error::input(format!("backend.cors.origin: {e}")))?;
    layer = layer.allow_origin(AllowOrigin::predicate(move |origin, _| {
        origin.to_str().is_ok_and(|origin| globs.is_match(origin))
    }));
    let methods = list("methods")?.unwrap_or_else(|| {
        ["GET", "HEAD", "PUT", "PATCH", "POST", "DELETE"]
            .iter()
            .map(|m| (*m).to_owned())
            .collect()
    });
    let methods = methods
        .iter()
        .map(|m| {
            Method::from_bytes(m.trim().to_ascii_uppercase().as_bytes()).map_err(|_| {
                Error::input(format!("backend.cors.methods: '{m}' is not an HTTP method"))
            })
        })
        .collect::<Result<Vec<_>>>()?;
    layer = layer.allow_methods(AllowMethods::list(methods));
    let names = |key: &str| -> Result<Option<Vec<HeaderName>>> {
        list(key)?
            .map(|names| {
                names
                    .iter()
                    .map(|n| {
                        HeaderName::from_bytes(n.as_bytes()).map_err(|_| {
                            Error::input(format!("backend.cors.{key}: '{n}' is not a header name"))
                        })
                    })
                    .collect::<Result<Vec<_>>>()
            })
            .transpose()
    };
    layer = match names("allowedHeaders")? {
        Some(headers) => layer.allow_headers(AllowHeaders::list(headers)),
        None => layer.allow_headers(AllowHeaders::mirror_request()),
    };
    if let Some(headers) = names("exposedHeaders")? {
        layer = layer.expose_headers(ExposeHeaders::list(headers));
    }
    if config
        .get_optional::<bool>("backend.cors.credentials")?
        .unwrap_or(false)
    {
        layer = layer.allow_credentials(true);
    }
    if let Some(max_age) = config.get_optional::<u64>("backend.cors.maxAge")? {
        layer = layer.max_age(Duration::from_secs(max_age));
    }
    Ok(Some(layer))
}
