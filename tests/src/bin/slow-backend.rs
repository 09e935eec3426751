//! A backend with slow and failing routes, for the reliability tests, and a plugin that
//! records audit events, for the auditor's.

use std::time::Duration;

use backstage::auditor::{AuditOrigin, AuditRequest, Severity};
use backstage::prelude::*;

/// Routes that take their time, panic, or flood the log.
#[backend_plugin(id = "slow")]
pub struct Slow {
    #[inject]
    logger: Logger,
}

#[routes]
impl Slow {
    #[route(get, "/sleep/{ms}", auth = "unauthenticated")]
    async fn sleep(&self, Path(ms): Path<u64>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }

    #[route(post, "/echo", auth = "unauthenticated")]
    async fn echo(&self, Json(body): Json<serde_json::Value>) -> String {
        body.to_string().len().to_string()
    }

    /// A JSON answer large enough to be compressed.
    #[route(get, "/big", auth = "unauthenticated")]
    async fn big(&self) -> Json<Vec<&'static str>> {
        Json(vec!["same"; 500])
    }

    /// Logs `n` lines at info as fast as it can, for the log writer's drop count.
    #[route(get, "/log/{n}", auth = "unauthenticated")]
    async fn flood(&self, Path(n): Path<u32>) -> String {
        for i in 0..n {
            self.logger.info(format_args!("flood line {i}"));
        }
        n.to_string()
    }

    /// Logs a line inside a span, as a handler instrumented with `tracing` does.
    #[route(get, "/spanned", auth = "unauthenticated")]
    async fn spanned(&self) -> &'static str {
        let span = tracing::info_span!("lookup", item = 7);
        let _inside = span.enter();
        self.logger.info("found it");
        "found"
    }

    #[route(get, "/panic", auth = "unauthenticated")]
    async fn panic(&self) -> &'static str {
        panic!("this route always panics")
    }
}

/// Records audit events as `tests/interop/audit.js` does, for the auditor's interop test.
#[backend_plugin(id = "audited")]
pub struct Audited {
    #[inject]
    auditor: Auditor,
}

#[routes]
impl Audited {
    #[route(get, "/things/{id}")]
    async fn read(&self, Path(id): Path<String>, request: AuditRequest) -> Json<serde_json::Value> {
        let meta = serde_json::json!({ "id": id });
        let event = self
            .auditor
            .create_event("thing-read", Severity::Medium, &request, meta);
        event.success(serde_json::json!({ "found": true }));
        Json(serde_json::json!({ "id": id }))
    }

    #[route(delete, "/things/{id}")]
    async fn delete(&self, Path(id): Path<String>, request: AuditRequest) -> Result<StatusCode> {
        let event = self
            .auditor
            .create_event("thing-delete", Severity::High, &request, ());
        let error = Error::not_found(format!("no thing {id}"));
        event.fail(&error, ());
        Err(error)
    }

    #[route(post, "/sweep", auth = "unauthenticated")]
    async fn sweep(&self) -> Json<serde_json::Value> {
        self.auditor
            .create_event("sweep", Severity::Low, AuditOrigin::Plugin, ())
            .success(());
        Json(serde_json::json!({ "swept": true }))
    }

    #[route(get, "/listing", audit = "thing-list", severity = "medium")]
    async fn listing(&self) -> Json<Vec<u32>> {
        Json(vec![1, 2])
    }
}

fn main() {
    backstage::start()
}
