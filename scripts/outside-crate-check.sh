#!/usr/bin/env bash
# Builds and tests a fresh plugin crate outside this workspace that depends on `backstage` by
# path, as a new user's crate would: the macros must work there with nothing else in scope.
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
mkdir -p "$dir/src" "$dir/tests"
cat > "$dir/Cargo.toml" <<TOML
[package]
name = "outside-plugin"
version = "0.1.0"
edition = "2024"

[dependencies]
backstage = { path = "$repo/core" }
serde = { version = "1", features = ["derive"] }
TOML
# The same dependency versions as the workspace, so the warm build cache is reused.
cp "$repo/Cargo.lock" "$dir/Cargo.lock"
cat > "$dir/src/lib.rs" <<'RUST'
use backstage::prelude::*;
use serde::Serialize;

#[derive(Serialize)]
pub struct Count {
    pub count: u64,
}

#[backend_plugin(id = "outside")]
pub struct Outside {
    #[inject]
    logger: Logger,
    hits: std::sync::atomic::AtomicU64,
}

#[routes]
impl Outside {
    #[route(get, "/count", auth = "unauthenticated")]
    async fn count(&self) -> Json<Count> {
        self.logger.info("counted");
        let count = self.hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        Json(Count { count })
    }

    #[route(get, "/secret/{id}")]
    async fn secret(&self, Path(id): Path<u32>, creds: Credentials<UserPrincipal>) -> Result<String> {
        Err(Error::not_found(format!("no secret {id} for {}", creds.principal().user_entity_ref)))
    }
}

// The README's scheduler, cache and permissions example, as written there.
pub mod warm {
    use std::time::Duration;
    use backstage::prelude::*;

    #[backend_plugin(id = "carmen")]
    pub struct Carmen {
        #[inject] scheduler: Scheduler,
        #[inject] cache: Cache,
        #[inject] permissions: Permissions,
    }

    #[routes]
    impl Carmen {
        #[init]
        async fn init(&self) -> Result<()> {
            let cache = self.cache.clone();
            let every_10_min = TaskSchedule::every(Duration::from_secs(600)).timeout(Duration::from_secs(60));
            self.scheduler.schedule_task("warm-up", every_10_min, move || {
                let cache = cache.clone();
                async move { cache.set_with_ttl("motd", &"hello", Duration::from_secs(900)).await }
            }).await
        }

        #[route(delete, "/items/{id}")]
        async fn delete(&self, Path(id): Path<i64>, creds: Credentials) -> Result<StatusCode> {
            let delete = Permission::basic("carmen.item.delete").action("delete");
            if !self.permissions.is_allowed(&delete, None, &creds).await? {
                return Err(Error::not_allowed("you may not delete items"));
            }
            let _ = id;
            Ok(StatusCode::NO_CONTENT)
        }
    }
}
RUST
cat > "$dir/tests/platform.rs" <<'RUST'
// The scheduler, cache and permission doubles from outside the workspace.
use backstage::testing::{mock, TestBackend};
use outside_plugin::warm::Carmen;

#[backstage::test]
async fn tasks_run_on_demand_and_permissions_are_mocked() {
    let scheduler = mock::scheduler();
    let backend = TestBackend::builder()
        .plugin::<Carmen>()
        .service(scheduler.clone())
        .service(mock::permissions_deny_all())
        .start()
        .await
        .unwrap();
    scheduler.trigger_task("warm-up").await.unwrap();
    let res = backend.delete("/api/carmen/items/1").credentials(mock::user("user:default/ada")).send().await;
    assert_eq!(res.status(), 403);
    assert_eq!(res.error().1, "you may not delete items");
    backend.stop().await.unwrap();

    let backend = TestBackend::builder().plugin::<Carmen>().start().await.unwrap();
    let res = backend.delete("/api/carmen/items/1").credentials(mock::user("user:default/ada")).send().await;
    assert_eq!(res.status(), 204, "permissions are allowed unless enabled");
    backend.stop().await.unwrap();
}
RUST
cat > "$dir/tests/discovered.rs" <<'RUST'
// Only `backstage` is needed to test a plugin: the harness, mock credentials and the runtime.
use backstage::testing::{json, mock, TestBackend};
use outside_plugin::Outside;

#[backstage::test]
async fn the_plugin_serves_through_the_harness() {
    let backend = TestBackend::builder().plugin::<Outside>().start().await.unwrap();
    assert_eq!(backend.get("/api/outside/count").send().await.text(), r#"{"count":1}"#);
    assert_eq!(backend.get("/api/outside/secret/3").send().await.status(), 401);
    let res = backend.get("/api/outside/secret/3").credentials(mock::user("user:default/ada")).send().await;
    assert_eq!(res.status(), 404);
    assert_eq!(res.error().1, "no secret 3 for user:default/ada");
    let _ = json!({});
}

#[backstage::test]
async fn linking_the_crate_is_what_installs_the_plugin() {
    let config = backstage::RootConfig::from_value(json!({ "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } }));
    let backend = backstage::Backend::builder().all_linked().config(config).start().await.unwrap();
    assert_eq!(backend.plugins(), ["carmen", "outside"]);
    backend.stop().await.unwrap();
}
RUST
cat > "$dir/tests/tls.rs" <<'RUST'
// Outbound HTTPS from `backstage` alone: a plugin calls a plugin served over TLS, trusting the
// certificate through the system's roots (SSL_CERT_FILE names it, as an operator's CA bundle).
use backstage::prelude::*;
use backstage::testing::{json, mock, TestBackend};

const CERT: &str = include_str!(concat!(env!("BACKSTAGE_REPO"), "/tests/fixtures/test-cert.pem"));
const KEY: &str = include_str!(concat!(env!("BACKSTAGE_REPO"), "/tests/fixtures/test-key.pem"));

#[backend_plugin(id = "callee")]
pub struct Callee {}

#[routes]
impl Callee {
    #[route(get, "/ping", auth = "unauthenticated")]
    async fn ping(&self) -> &'static str {
        "pong over https"
    }
}

#[backend_plugin(id = "caller")]
pub struct Caller {
    #[inject]
    client: PluginClient,
}

#[routes]
impl Caller {
    #[route(get, "/relay")]
    async fn relay(&self, creds: Credentials) -> Result<String> {
        let response = self.client.get("callee", "/ping", &creds).await?;
        Ok(response.text().await.map_err(|e| Error::internal(e.to_string()))?)
    }
}

#[backstage::test]
async fn plugins_reach_plugins_over_https_with_the_systems_roots() {
    let callee = TestBackend::builder()
        .plugin::<Callee>()
        .config(json!({ "backend": { "https": { "certificate": { "cert": CERT, "key": KEY } } } }))
        .start()
        .await
        .unwrap();
    let port = callee.backend().local_addr().port();
    let target = format!("https://localhost:{port}/api/{{{{pluginId}}}}");
    let caller = TestBackend::builder()
        .plugin::<Caller>()
        .config(json!({ "discovery": { "endpoints": [{ "target": target, "plugins": ["callee"] }] } }))
        .start()
        .await
        .unwrap();
    let res = caller.get("/api/caller/relay").credentials(mock::user("user:default/ada")).send().await;
    assert_eq!((res.status().as_u16(), res.text()), (200, "pong over https".to_owned()));
}
RUST
cd "$dir"
BACKSTAGE_REPO="$repo" SSL_CERT_FILE="$repo/tests/fixtures/test-cert.pem" cargo test --quiet

# A program that turns on both allocators stops at compile time with a message that says to
# choose one (checked, not built: the message is all that matters).
if both="$(cargo check --quiet --features backstage/jemalloc,backstage/mimalloc 2>&1)"; then
  echo "outside-crate-check: the features jemalloc and mimalloc together compiled" >&2
  exit 1
fi
if ! grep -q "each choose the program's allocator: turn on one of them" <<<"$both"; then
  echo "outside-crate-check: the features jemalloc and mimalloc together failed otherwise:" >&2
  echo "$both" >&2
  exit 1
fi
echo "both allocators: refused with the compile error that names the choice"
