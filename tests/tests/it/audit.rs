//! The auditor: events recorded by code and by `#[route(..., audit = ...)]`, read back in
//! tests, and logged as JSON lines that read as those of Backstage's auditor from npm.

use std::time::Duration;

use backstage::auditor::{AuditRequest, Auditor, Severity};
use backstage::prelude::*;
use backstage::testing::{TestBackend, json, mock};
use serde_json::Value;

#[backend_plugin(id = "ledger")]
pub struct Ledger {
    #[inject]
    auditor: Auditor,
}

#[routes]
impl Ledger {
    #[route(post, "/entries", audit = "entry-create", severity = "high")]
    async fn create(&self, Json(entry): Json<Value>) -> Result<StatusCode> {
        if entry.get("amount").is_none() {
            return Err(Error::input("an entry has an amount"));
        }
        Ok(StatusCode::CREATED)
    }

    #[route(get, "/entries/{id}", audit = "entry-read")]
    async fn read(&self, Path(id): Path<u32>) -> Result<String> {
        Ok(format!("entry {id}"))
    }

    #[route(delete, "/entries/{id}")]
    async fn delete(&self, Path(id): Path<u32>, request: AuditRequest) -> Result<StatusCode> {
        let event = self.auditor.create_event(
            "entry-delete",
            Severity::Critical,
            &request,
            json!({"id": id}),
        );
        if id == 0 {
            let error = Error::conflict("entry 0 is locked");
            event.fail(&error, json!({"locked": true}));
            return Err(error);
        }
        event.success(json!({"deleted": 1}));
        Ok(StatusCode::NO_CONTENT)
    }
}

async fn start() -> TestBackend {
    TestBackend::builder()
        .plugin::<Ledger>()
        .start()
        .await
        .unwrap()
}

#[backstage::test]
async fn an_audited_route_records_its_caller_and_outcome() {
    let backend = start().await;
    let res = backend
        .post("/api/ledger/entries?draft=1")
        .credentials(mock::user("user:default/ada"))
        .json(&json!({"amount": 5}))
        .send()
        .await;
    assert_eq!(res.status(), 201);
    let events = backend.audit_log().events();
    let statuses: Vec<&str> = events.iter().map(|e| e.status.as_str()).collect();
    assert_eq!(statuses, ["initiated", "succeeded"]);
    let done = &events[1];
    assert_eq!(
        (done.plugin.as_str(), done.event_id.as_str(), done.severity),
        ("ledger", "entry-create", Severity::High)
    );
    assert_eq!(done.actor_id.as_deref(), Some("user:default/ada"));
    assert_eq!(
        done.request,
        Some(("POST".into(), "/api/ledger/entries?draft=1".into()))
    );
    assert_eq!(done.error, None);
}

#[backstage::test]
async fn an_audited_route_that_fails_records_the_error_even_from_its_parameters() {
    let backend = start().await;
    let res = backend
        .post("/api/ledger/entries")
        .credentials(mock::service("billing"))
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(res.status(), 400);
    // A path parameter that does not parse is refused before the handler runs: still failed.
    let res = backend
        .get("/api/ledger/entries/abc")
        .credentials(mock::service("billing"))
        .send()
        .await;
    assert_eq!(res.status(), 400);
    let events = backend.audit_log().events();
    let failed: Vec<_> = events.iter().filter(|e| e.status == "failed").collect();
    assert_eq!(failed.len(), 2, "{events:?}");
    assert_eq!(failed[0].actor_id.as_deref(), Some("billing"));
    assert_eq!(
        failed[0].error,
        Some(("InputError".into(), "an entry has an amount".into()))
    );
    assert_eq!(failed[1].event_id, "entry-read");
    assert_eq!(
        failed[1].error.as_ref().map(|e| e.0.as_str()),
        Some("InputError")
    );
}

#[backstage::test]
async fn a_refused_caller_is_not_audited() {
    let backend = start().await;
    let res = backend.get("/api/ledger/entries/1").send().await;
    assert_eq!(res.status(), 401);
    assert!(backend.audit_log().events().is_empty());
}

#[backstage::test]
async fn events_made_in_code_merge_their_meta() {
    let backend = start().await;
    let ada = || mock::user("user:default/ada");
    let res = backend
        .delete("/api/ledger/entries/3")
        .credentials(ada())
        .send()
        .await;
    assert_eq!(res.status(), 204);
    let res = backend
        .delete("/api/ledger/entries/0")
        .credentials(ada())
        .send()
        .await;
    assert_eq!(res.status(), 409);
    let events = backend.audit_log().events();
    assert_eq!(events.len(), 4, "{events:?}");
    assert_eq!(Value::Object(events[0].meta.clone()), json!({"id": 3}));
    assert_eq!(
        Value::Object(events[1].meta.clone()),
        json!({"id": 3, "deleted": 1})
    );
    assert_eq!(events[3].status, "failed");
    assert_eq!(
        Value::Object(events[3].meta.clone()),
        json!({"id": 0, "locked": true})
    );
    assert_eq!(
        events[3].error,
        Some(("ConflictError".into(), "entry 0 is locked".into()))
    );
}

#[backstage::test]
async fn a_bad_severity_mapping_stops_the_start_naming_the_key() {
    let error = TestBackend::builder()
        .plugin::<Ledger>()
        .config(
            json!({"backend": {"auditor": {"severityLogLevelMappings": {"medium": "verbose"}}}}),
        )
        .start()
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("'backend.auditor.severityLogLevelMappings.medium' was given an invalid value: 'verbose'"),
        "{error}"
    );
}

/// The same requests to Backstage's auditor (`tests/interop/audit.js`) and ours, both logging
/// JSON lines as in production: the audit lines are the same, but for what only one runtime
/// has (a JavaScript `stack`, our `timestamp`).
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_lines_read_as_backstages() {
    use crate::interop::{Node, free_port, installed, node_backend};
    let Some(dir) = installed().await else { return };
    let token = "audit-static-token-0123456789";
    let external = json!([{"type": "static", "options": {"token": token, "subject": "ci-bot"}}]);
    let low_at_info = json!({"severityLogLevelMappings": {"low": "info"}});

    let node_port = free_port();
    let node = Node::start(
        &dir,
        "audit.js",
        &json!({"backend": node_backend(&dir, "audit", node_port, &external,
            json!({"auditor": low_at_info.clone()}))}),
        "/.backstage/health/v1/readiness",
    )
    .await;
    let typescript = exercise(node_port, token).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let node_log = std::fs::read_to_string(dir.join("audit.log")).unwrap();
    drop(node);
    let typescript_lines = audit_lines(node_log.lines());

    let rust_dir = std::env::temp_dir().join(format!("backstage-audit-{}", std::process::id()));
    let rust_port = free_port();
    let config = json!({"backend": {
        "listen": {"host": "127.0.0.1", "port": rust_port},
        "auth": {"externalAccess": external},
        "auditor": low_at_info,
    }});
    let (mut child, rx) = crate::reliability::spawn_slow(
        &rust_dir,
        &config.to_string(),
        &[("NODE_ENV", "production")],
    );
    crate::reliability::wait_for(&rx, "Listening on");
    let rust = exercise(rust_port, token).await;
    let lines = crate::reliability::wait_for(&rx, "GET /api/audited/listing HTTP");
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(rust, typescript, "the answers differ");
    let rust_lines = audit_lines(lines.iter().map(String::as_str));
    assert_eq!(rust_lines.len(), 8, "{lines:#?}");
    assert_eq!(rust_lines, typescript_lines);
}

/// Sends the audited requests; their statuses.
async fn exercise(port: u16, token: &str) -> Vec<u16> {
    let client = reqwest::Client::new();
    let url = |path: &str| format!("http://127.0.0.1:{port}/api/audited{path}");
    let mut statuses = Vec::new();
    for request in [
        client
            .get(url("/things/5"))
            .header("user-agent", "tester/1"),
        client.delete(url("/things/9?x=1")),
        client.post(url("/sweep")),
        client.get(url("/listing")),
    ] {
        let request = request.bearer_auth(token).header("user-agent", "tester/1");
        statuses.push(request.send().await.unwrap().status().as_u16());
    }
    statuses
}

/// The audit lines among `lines`, without what only one runtime writes.
fn audit_lines<'a>(lines: impl Iterator<Item = &'a str>) -> Vec<Value> {
    lines
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line["isAuditEvent"] == true)
        .map(|mut line| {
            let members = line.as_object_mut().unwrap();
            members.remove("stack");
            members.remove("timestamp");
            line
        })
        .collect()
}
