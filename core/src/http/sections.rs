//! The configuration sections of the HTTP server, typed and read once at start-up: what the
//! server (`serve`) and the per-request policies (`policies`) are built from.

use crate::config::HumanDuration;

/// `backend.server`, as Backstage's keys spell it, read once.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct ServerSection {
    pub(super) headers_timeout: Option<HumanDuration>,
    pub(super) keep_alive_timeout: Option<HumanDuration>,
    pub(crate) request_timeout: Option<HumanDuration>,
    pub(super) max_connections: Option<usize>,
    pub(super) keep_alive: Option<bool>,
    pub(super) max_header_size: Option<usize>,
    pub(crate) max_request_body_size: Option<crate::config::Size>,
}

impl ServerSection {
    /// `backend.server.keepAlive` (default true): whether HTTP/1.1 connections are reused.
    pub(super) fn keep_alive(&self) -> bool {
        self.keep_alive.unwrap_or(true)
    }

    /// `backend.server.keepAliveTimeout`: how long a reused connection may wait for its next
    /// request (Node's default: 5 s).
    pub(super) fn keep_alive_timeout(&self) -> std::time::Duration {
        self.keep_alive_timeout
            .map_or(std::time::Duration::from_secs(5), Into::into)
    }

    /// What an answer on a connection that stays open says of it, as Node's server says it:
    /// `Connection: keep-alive` and `Keep-Alive: timeout=<whole seconds>` (none when the
    /// timeout is zero); nothing when connections are not reused.
    pub(super) fn kept_open_headers(&self) -> Vec<(http::HeaderName, http::HeaderValue)> {
        if !self.keep_alive() {
            return Vec::new();
        }
        let mut headers = vec![(
            http::header::CONNECTION,
            http::HeaderValue::from_static("keep-alive"),
        )];
        let timeout = self.keep_alive_timeout();
        let value = format!("timeout={}", timeout.as_secs());
        if !timeout.is_zero()
            && let Ok(value) = http::HeaderValue::from_str(&value)
        {
            headers.push((super::connection::KEEP_ALIVE.clone(), value));
        }
        headers
    }
}

/// `backend.lifecycle`, as Backstage's keys spell it, read once.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LifecycleSection {
    pub(super) server_shutdown_delay: Option<HumanDuration>,
    pub(super) shutdown_grace_period: Option<HumanDuration>,
    pub(crate) startup_request_pause_timeout: Option<HumanDuration>,
}
