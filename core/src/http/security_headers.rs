//! Backstage's default security headers (helmet as Backstage configures it), the
//! Content-Security-Policy with `backend.csp` applied, and header lists from config
//! (`backend.health.headers`).

use std::collections::HashMap;

use axum::http::header::{HeaderName, HeaderValue};
use serde_json::Value;

use crate::config::RootConfig;
use crate::error::{Error, Result};

pub(crate) fn header_list(
    config: &RootConfig,
    key: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let map: HashMap<String, String> = config.get_optional(key)?.unwrap_or_default();
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    for (name, value) in map {
        let header = HeaderName::from_bytes(name.as_bytes()).map_err(|_| {
            Error::input(format!("{key}.{name}: '{name}' is not a valid header name"))
        })?;
        let value = HeaderValue::from_str(&value).map_err(|_| {
            Error::input(format!(
                "{key}.{name}: the value is not a valid header value"
            ))
        })?;
        headers.push((header, value));
    }
    headers.sort_by(|a, b| a.0.as_str().cmp(b.0.as_str()));
    Ok(headers)
}

/// Backstage's default CSP directives, in helmet's order.
const CSP_DEFAULTS: &[(&str, &[&str])] = &[
    ("default-src", &["'self'"]),
    ("base-uri", &["'self'"]),
    ("font-src", &["'self'", "https:", "data:"]),
    ("frame-ancestors", &["'self'"]),
    ("img-src", &["'self'", "data:"]),
    ("object-src", &["'none'"]),
    ("script-src", &["'self'", "'unsafe-eval'"]),
    ("script-src-attr", &["'none'"]),
    ("style-src", &["'self'", "https:", "'unsafe-inline'"]),
    ("upgrade-insecure-requests", &[]),
];

/// The `Content-Security-Policy` value: Backstage's defaults with `backend.csp` applied (a
/// directive replaced by a list, removed by `false`; camelCase names become kebab-case).
pub(crate) fn content_security_policy(config: &RootConfig) -> Result<String> {
    let mut directives: Vec<(String, Vec<String>)> = CSP_DEFAULTS
        .iter()
        .map(|(name, values)| {
            (
                (*name).to_owned(),
                values.iter().map(|v| (*v).to_owned()).collect(),
            )
        })
        .collect();
    let overrides: serde_json::Map<String, Value> =
        config.get_optional("backend.csp")?.unwrap_or_default();
    for (name, value) in overrides {
        let name = kebab(&name);
        match value {
            Value::Bool(false) => directives.retain(|(n, _)| *n != name),
            Value::Array(items) => {
                let values = items
                    .into_iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(s),
                        _ => Err(Error::input(format!(
                            "backend.csp.{name} must be a list of strings or false"
                        ))),
                    })
                    .collect::<Result<Vec<_>>>()?;
                match directives.iter_mut().find(|(n, _)| *n == name) {
                    Some(existing) => existing.1 = values,
                    None => directives.push((name, values)),
                }
            }
            _ => {
                return Err(Error::input(format!(
                    "backend.csp.{name} must be a list of strings or false"
                )));
            }
        }
    }
    Ok(directives
        .iter()
        .map(|(name, values)| {
            if values.is_empty() {
                name.clone()
            } else {
                format!("{name} {}", values.join(" "))
            }
        })
        .collect::<Vec<_>>()
        .join(";"))
}

fn kebab(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            out.push('-');
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// Backstage's default security headers (helmet 6 as Backstage configures it), with the CSP
/// from `backend.csp`.
pub(crate) fn security_headers(config: &RootConfig) -> Result<Vec<(HeaderName, HeaderValue)>> {
    let csp = content_security_policy(config)?;
    let mut headers = vec![(
        HeaderName::from_static("content-security-policy"),
        HeaderValue::from_str(&csp)
            .map_err(|_| Error::input("backend.csp makes an invalid header value"))?,
    )];
    for (name, value) in [
        ("referrer-policy", "no-referrer"),
        (
            "strict-transport-security",
            "max-age=15552000; includeSubDomains",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-dns-prefetch-control", "off"),
        ("x-download-options", "noopen"),
        ("x-frame-options", "SAMEORIGIN"),
        ("x-permitted-cross-domain-policies", "none"),
        ("x-xss-protection", "0"),
    ] {
        headers.push((
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        ));
    }
    Ok(headers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn csp_overrides_replace_and_remove() {
        let config = RootConfig::from_value(json!({ "backend": { "csp": {
            "connect-src": ["'self'", "http:", "https:"],
            "upgradeInsecureRequests": false,
            "img-src": ["'self'", "https://img.example.com"],
        } } }));
        let csp = content_security_policy(&config).unwrap();
        assert!(
            csp.contains("img-src 'self' https://img.example.com;"),
            "{csp}"
        );
        assert!(!csp.contains("upgrade-insecure-requests"), "{csp}");
        assert!(csp.ends_with(";connect-src 'self' http: https:"), "{csp}");
        assert_eq!(
            content_security_policy(&RootConfig::empty()).unwrap(),
            "default-src 'self';base-uri 'self';font-src 'self' https: data:;frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self' 'unsafe-eval';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests"
        );
    }
}
