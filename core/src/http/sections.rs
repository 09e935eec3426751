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

/// `backend.lifecycle`, as Backstage's keys spell it, read once.
#[derive(Default, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct LifecycleSection {
    pub(super) server_shutdown_delay: Option<HumanDuration>,
    pub(super) shutdown_grace_period: Option<HumanDuration>,
    pub(crate) startup_request_pause_timeout: Option<HumanDuration>,
}
