//! What the root HTTP layer applies to every request, read from `backend.*` once: security and
//! health headers, body size and request time limits (`backend.server.*`), the start-up pause
//! (`backend.lifecycle.startupRequestPauseTimeout`) and rate limits.

use std::time::Duration;

use axum::http::header::{HeaderName, HeaderValue};
use serde_json::Value;

use super::rate_limit::RateLimits;
use super::security_headers::{header_list, security_headers};
use crate::config::{RootConfig, duration};
use crate::error::{Error, Result};

/// The settings of the root HTTP layer.
pub(crate) struct HttpPolicies {
    pub(crate) security_headers: Vec<(HeaderName, HeaderValue)>,
    pub(crate) health_headers: Vec<(HeaderName, HeaderValue)>,
    /// Requests with a larger body get 413.
    pub(crate) body_limit: usize,
    /// Requests that take longer get 503 (`backend.server.requestTimeout`, default 60 s).
    pub(crate) request_timeout: Option<Duration>,
    /// How long a request to a plugin waits for start-up to finish before 503.
    pub(crate) startup_pause: Duration,
    pub(crate) rate_limits: RateLimits,
}

/// How long a request may take by default before it is answered 503: requests waiting on a
/// database or a service that stopped answering do not pile up for ever. `0` turns it off.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The default body limit: 1 MiB (Express's `json()` allows 100 kB; plugins upload more).
pub(crate) const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

impl HttpPolicies {
    pub(crate) fn from_config(config: &RootConfig) -> Result<Self> {
        let body_limit = match config.get_optional::<Value>("backend.server.maxRequestBodySize")? {
            None => DEFAULT_BODY_LIMIT,
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|n| n as usize)
                .ok_or_else(|| Error::input("backend.server.maxRequestBodySize must be a number of bytes or a size like \"10mb\""))?,
            Some(Value::String(text)) => parse_size(&text).ok_or_else(|| {
                Error::input(format!("backend.server.maxRequestBodySize: '{text}' is not a size; write bytes (1048576) or \"1mb\", \"512kb\""))
            })?,
            Some(_) => return Err(Error::input("backend.server.maxRequestBodySize must be a number of bytes or a size like \"10mb\"")),
        };
        Ok(HttpPolicies {
            security_headers: security_headers(config)?,
            health_headers: header_list(config, "backend.health.headers")?,
            body_limit,
            request_timeout: match duration(config, "backend.server.requestTimeout")? {
                None => Some(DEFAULT_REQUEST_TIMEOUT),
                Some(limit) if limit.is_zero() => None,
                Some(limit) => Some(limit),
            },
            startup_pause: duration(config, "backend.lifecycle.startupRequestPauseTimeout")?
                .unwrap_or(Duration::from_secs(5)),
            rate_limits: RateLimits::from_config(config)?,
        })
    }
}

/// `"10mb"`, `"512kb"`, `"100b"`, `"2048"`.
fn parse_size(text: &str) -> Option<usize> {
    let text = text.trim().to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number.parse().ok()?;
    let factor = match unit.trim() {
        "" | "b" => 1.0,
        "kb" | "k" => 1024.0,
        "mb" | "m" => 1024.0 * 1024.0,
        "gb" | "g" => 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    Some((number * factor) as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_time_out_after_a_minute_unless_configured() {
        let timeout = |server: serde_json::Value| {
            let config = RootConfig::from_value(json!({ "backend": { "server": server } }));
            HttpPolicies::from_config(&config).unwrap().request_timeout
        };
        assert_eq!(timeout(json!({})), Some(Duration::from_secs(60)));
        assert_eq!(
            timeout(json!({ "requestTimeout": "5s" })),
            Some(Duration::from_secs(5))
        );
        assert_eq!(timeout(json!({ "requestTimeout": 0 })), None);
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("10mb"), Some(10 * 1024 * 1024));
        assert_eq!(parse_size("512KB"), Some(512 * 1024));
        assert_eq!(parse_size("100"), Some(100));
        assert_eq!(parse_size("lots"), None);
    }
}
