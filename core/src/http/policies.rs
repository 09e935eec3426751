//! What the root HTTP layer applies to every request, read from `backend.*` once: security and
//! health headers, body size and request time limits (`backend.server.*`), the start-up pause
//! (`backend.lifecycle.startupRequestPauseTimeout`), rate limits and CORS (`backend.cors`).

use std::time::Duration;

use axum::http::header::{HeaderName, HeaderValue};

use super::cors::Cors;
use super::rate_limit::RateLimits;
use super::sections::{LifecycleSection, ServerSection};
use super::security_headers::{header_list, security_headers};
use crate::config::RootConfig;
use crate::error::Result;

/// The settings of the root HTTP layer.
pub(crate) struct HttpPolicies {
    /// Backstage's security headers, then (where connections are reused) `Connection:
    /// keep-alive` and `Keep-Alive`: the map every answer not made from the JSON template
    /// starts from (room left for the answer's own headers).
    pub(crate) security_headers: http::HeaderMap,
    /// What JSON answers start with: the security headers and `res.json`'s.
    pub(crate) answers: std::sync::Arc<crate::answer::AnswerHeaders>,
    pub(crate) health_headers: Vec<(HeaderName, HeaderValue)>,
    /// Requests with a larger body get 413.
    pub(crate) body_limit: usize,
    /// Requests that take longer get 503 (`backend.server.requestTimeout`, default 60 s).
    pub(crate) request_timeout: Option<Duration>,
    /// How long a request to a plugin waits for start-up to finish before 503.
    pub(crate) startup_pause: Duration,
    pub(crate) rate_limits: RateLimits,
    /// `backend.cors`; `None` when absent.
    pub(crate) cors: Option<Cors>,
}

/// How long a request may take by default before it is answered 503: requests waiting on a
/// database or a service that stopped answering do not pile up for ever. `0` turns it off.
pub(crate) const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The default body limit: 1 MiB (Express's `json()` allows 100 kB; plugins upload more).
pub(crate) const DEFAULT_BODY_LIMIT: usize = 1024 * 1024;

impl HttpPolicies {
    pub(crate) fn new(
        server: &ServerSection,
        lifecycle: &LifecycleSection,
        config: &RootConfig,
    ) -> Result<Self> {
        let security = {
            let list = security_headers(config)?;
            let mut map = http::HeaderMap::with_capacity(list.len() + 8);
            map.extend(list);
            map
        };
        let kept_open = server.kept_open_headers();
        let answers = crate::answer::AnswerHeaders::new(&security, &kept_open);
        let mut security = security;
        security.extend(kept_open);
        Ok(HttpPolicies {
            answers: std::sync::Arc::new(answers),
            security_headers: security,
            health_headers: header_list(config, "backend.health.headers")?,
            body_limit: server
                .max_request_body_size
                .map_or(DEFAULT_BODY_LIMIT, |size| size.0),
            request_timeout: match server.request_timeout.map(Duration::from) {
                None => Some(DEFAULT_REQUEST_TIMEOUT),
                Some(limit) if limit.is_zero() => None,
                Some(limit) => Some(limit),
            },
            startup_pause: lifecycle
                .startup_request_pause_timeout
                .map_or(Duration::from_secs(5), Duration::from),
            rate_limits: RateLimits::from_config(config)?,
            cors: Cors::from_config(config)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_time_out_after_a_minute_unless_configured() {
        let timeout = |server: serde_json::Value| {
            let config = RootConfig::from_value(json!({}));
            let server: ServerSection = serde_json::from_value(server).unwrap();
            HttpPolicies::new(&server, &LifecycleSection::default(), &config)
                .unwrap()
                .request_timeout
        };
        assert_eq!(timeout(json!({})), Some(Duration::from_secs(60)));
        assert_eq!(
            timeout(json!({ "requestTimeout": "5s" })),
            Some(Duration::from_secs(5))
        );
        assert_eq!(timeout(json!({ "requestTimeout": 0 })), None);
    }
}
