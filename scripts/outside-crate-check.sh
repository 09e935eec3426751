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

[dev-dependencies]
tokio = { version = "1", features = ["rt-multi-thread", "macros"] }
serde_json = "1"
reqwest = { version = "0.12", default-features = false, features = ["json"] }
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
    async fn secret(&self, Path(id): Path<u32>, _creds: Credentials) -> Result<String> {
        Err(Error::not_found(format!("no secret {id}")))
    }
}
RUST
cat > "$dir/tests/discovered.rs" <<'RUST'
use outside_plugin as _;

#[tokio::test]
async fn the_plugin_is_discovered_and_served() {
    let config = serde_json::json!({ "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } });
    let backend = backstage::Backend::builder().all_linked().config_value(config).start().await.unwrap();
    assert_eq!(backend.plugins(), ["outside"]);
    let body = reqwest::get(backend.url("/api/outside/count")).await.unwrap().text().await.unwrap();
    assert_eq!(body, r#"{"count":1}"#);
    let response = reqwest::get(backend.url("/api/outside/secret/3")).await.unwrap();
    assert_eq!(response.status(), 401);
    backend.stop().await.unwrap();
}
RUST
cd "$dir"
cargo test --quiet
