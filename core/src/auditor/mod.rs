//! The `auditor` service: a trail of who did what, written as Backstage's auditor writes it.
//!
//! An audit event is logged through the plugin's logger with `isAuditEvent: true`, the
//! message `<pluginId>.<eventId>`, and Backstage's fields (`eventId`, `severityLevel`, `actor`,
//! `request`, `meta`, `status`), at the level `backend.auditor.severityLogLevelMappings` maps
//! its severity to (`low` is `debug`; `medium`, `high` and `critical` are `info`). In production
//! (JSON lines) an audit line reads as a TypeScript plugin's, so an operator's audit pipeline
//! takes both.
//!
//! [`Auditor::create_event`] logs `initiated`; the event's [`AuditEvent::success`] and
//! [`AuditEvent::fail`] log the outcome. A route records both without code with
//! `#[route(..., audit = "<eventId>")]` (and `severity = "medium"`, say): it succeeds when it
//! answers below 400.
//!
//! ```
//! use backstage::prelude::*;
//! use backstage::auditor::{AuditRequest, Auditor, Severity};
//!
//! #[backend_plugin(id = "vault")]
//! pub struct Vault {
//!     #[inject]
//!     auditor: Auditor,
//! }
//!
//! #[routes]
//! impl Vault {
//!     #[route(delete, "/secrets/{id}")]
//!     async fn delete(&self, Path(id): Path<u32>, request: AuditRequest) -> Result<StatusCode> {
//!         let meta = serde_json::json!({ "id": id });
//!         let event = self.auditor.create_event("secret-delete", Severity::High, &request, meta);
//!         if id == 0 {
//!             let error = Error::not_found("no secret 0");
//!             event.fail(&error, ());
//!             return Err(error);
//!         }
//!         event.success(());
//!         Ok(StatusCode::NO_CONTENT)
//!     }
//!
//!     #[route(get, "/secrets", audit = "secret-list", severity = "medium")]
//!     async fn list(&self) -> Json<Vec<u32>> {
//!         Json(vec![1, 2])
//!     }
//! }
//! # fn main() {}
//! ```

mod event;
mod origin;
mod service;

pub use event::AuditEvent;
pub use origin::{AuditOrigin, AuditRequest};
pub use service::{AuditLog, AuditRecord, Auditor, Severity};

crate::plugin::register!(Auditor);
