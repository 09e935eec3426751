//! Interop with Backstage itself: a TypeScript backend from npm (`tests/interop/backend.js`,
//! `@backstage/backend-defaults`) and a Rust backend call each other's plugins with plugin
//! tokens, and both accept the same static external token; Backstage's cache client and ours
//! read each other's entries in one Redis.
//!
//! Opt-in: runs when `BACKSTAGE_TEST_INTEROP` is set (`.ci/run` sets it where `node` and `npm`
//! exist) and reports that it skipped otherwise. npm installs into
//! `$HOME/.cache/backstage-rs/interop` (or `BACKSTAGE_INTEROP_DIR`), never into the repository.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;
use backstage::prelude::*;
use backstage::{Backend, PluginClient};
use base64::Engine;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

const STATIC_TOKEN: &str = "interop-static-token";

/// The Rust side.
#[backend_plugin(id = "rusty")]
pub struct Rusty {
    #[inject]
    client: PluginClient,
    #[inject]
    auth: Auth,
}

#[routes]
impl Rusty {
    #[route(get, "/whoami")]
    async fn whoami(&self, creds: Credentials) -> Json<Value> {
        Json(principal_json(&creds))
    }

    /// Calls the TypeScript plugin through the typed client of its Rust description.
    #[route(get, "/call-ts-typed", auth = "unauthenticated")]
    async fn call_ts_typed(&self) -> Result<Json<Value>> {
        let own = self.auth.own_service_credentials();
        Ok(Json(TsPlugClient::new(&self.client).whoami(&own).await?))
    }

    #[route(get, "/call-ts", auth = "unauthenticated")]
    async fn call_ts(&self) -> Result<Json<Value>> {
        let own = self.auth.own_service_credentials();
        let response = self.client.get("tsplug", "/whoami", &own).await?;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok(Json(json!({ "status": status, "body": body })))
    }
}

/// The TypeScript plugin `tsplug` of `tests/interop/backend.js`, described in Rust: never
/// served, it gives the Rust side a typed client of it (`TsPlugClient`).
#[backend_plugin(id = "tsplug")]
pub struct TsPlug;

#[routes]
impl TsPlug {
    #[route(get, "/whoami")]
    async fn whoami(&self, credentials: Credentials) -> Json<Value> {
        Json(principal_json(&credentials))
    }
}

/// A Backstage backend from npm, run with `node <script> --config <file>` in the harness's
/// folder; killed (and its config file removed) when the test ends, however it ends.
pub(crate) struct Node {
    child: Child,
    config_file: PathBuf,
}

impl Node {
    /// Starts `script` with `config` (JSON is YAML: Backstage's loader reads it as is), logging
    /// to `<script>.log`, and waits until `ready` (a path) answers 200.
    pub(crate) async fn start(dir: &Path, script: &str, config: &Value, ready: &str) -> Node {
        let stem = script.trim_end_matches(".js");
        let port = config["backend"]["listen"]["port"]
            .as_u64()
            .expect("a port");
        let config_file = dir.join(format!("{stem}-{port}.yaml"));
        std::fs::write(&config_file, config.to_string()).unwrap();
        let log_file = dir.join(format!("{stem}.log"));
        let log = std::fs::File::create(&log_file).unwrap();
        let child = Command::new("node")
            .arg(script)
            .arg("--config")
            .arg(&config_file)
            .current_dir(dir)
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("node starts");
        let node = Node { child, config_file };
        let url = format!("http://127.0.0.1:{port}{ready}");
        let deadline = Instant::now() + Duration::from_secs(90);
        while !client()
            .get(&url)
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            assert!(
                Instant::now() < deadline,
                "the TypeScript backend did not start; see {}",
                log_file.display()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        node
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.config_file);
    }
}

pub(crate) fn work_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("BACKSTAGE_INTEROP_DIR") {
        return PathBuf::from(dir);
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| std::env::temp_dir().display().to_string());
    PathBuf::from(home).join(".cache/backstage-rs/interop")
}

/// Copies the TypeScript backend next to its dependencies and installs them when the
/// package list changed.
fn install(dir: &Path) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop");
    std::fs::create_dir_all(dir).unwrap();
    let package = std::fs::read_to_string(source.join("package.json")).unwrap();
    // Tests of this file may install at once: one npm at a time.
    static INSTALLING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALLING.lock().unwrap_or_else(|p| p.into_inner());
    for script in [
        "audit.js",
        "backend.js",
        "cache.js",
        "mcp.js",
        "openapi.js",
        "permission.js",
        "wire.js",
    ] {
        // Rewritten only when changed: another test's Node may be reading it right now.
        let text = std::fs::read(source.join(script)).unwrap();
        if std::fs::read(dir.join(script)).ok().as_ref() != Some(&text) {
            std::fs::write(dir.join(script), text).unwrap();
        }
    }
    let installed = dir.join("node_modules/.backstage-rs-package.json");
    if std::fs::read_to_string(&installed).ok().as_deref() == Some(package.as_str()) {
        return;
    }
    std::fs::write(dir.join("package.json"), &package).unwrap();
    let status = Command::new("npm")
        .args(["install", "--no-audit", "--no-fund", "--loglevel=error"])
        .current_dir(dir)
        .stdout(Stdio::null())
        .status()
        .expect("npm runs");
    assert!(status.success(), "npm install failed in {}", dir.display());
    std::fs::write(&installed, &package).unwrap();
}

/// The TypeScript side's folder with its npm packages installed, or `None` (reported) when
/// `BACKSTAGE_TEST_INTEROP` is not set.
pub(crate) async fn installed() -> Option<PathBuf> {
    if std::env::var_os("BACKSTAGE_TEST_INTEROP").is_none() {
        eprintln!("skipped: BACKSTAGE_TEST_INTEROP is not set (needs node and npm)");
        return None;
    }
    let dir = work_dir();
    tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || install(&dir)
    })
    .await
    .unwrap();
    Some(dir)
}

/// A P-256 key pair as PEM files `<name>-private.pem` and `<name>-public.pem`, for the
/// TypeScript backend's static key store (one name per test: tests run at once).
/// The `backend` section of a TypeScript backend's config on `port`: its base URL, SQLite in
/// memory, the static tokens `external`, and a fresh plugin key named `<name>-key` (so that no
/// database holds keys), with `extra` members merged in.
pub(crate) fn node_backend(
    dir: &Path,
    name: &str,
    port: u16,
    external: &Value,
    extra: Value,
) -> Value {
    let (private, public) = write_keys(dir, name);
    let mut backend = json!({
        "baseUrl": format!("http://127.0.0.1:{port}"),
        "listen": {"host": "127.0.0.1", "port": port},
        "database": {"client": "better-sqlite3", "connection": ":memory:"},
        "auth": {
            "externalAccess": external,
            "pluginKeyStore": {"type": "static", "static": {"keys": [
                {"publicKeyFile": public, "privateKeyFile": private, "keyId": format!("{name}-key")}]}},
        },
    });
    if let (Some(members), Value::Object(extra)) = (backend.as_object_mut(), extra) {
        members.extend(extra);
    }
    backend
}

pub(crate) fn write_keys(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    let pem = |label: &str, der: &[u8]| {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<String> = body
            .as_bytes()
            .chunks(64)
            .map(|c| String::from_utf8_lossy(c).into_owned())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    let (private, public) = (
        dir.join(format!("{name}-private.pem")),
        dir.join(format!("{name}-public.pem")),
    );
    std::fs::write(&private, pem("PRIVATE KEY", pkcs8.as_ref())).unwrap();
    std::fs::write(&public, pem("PUBLIC KEY", &spki)).unwrap();
    (private, public)
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_typescript_backends_accept_each_others_tokens() {
    let Some(dir) = installed().await else { return };
    let node_port = free_port();

    let mut config = loopback_config();
    config["backend"]["auth"] = json!({"externalAccess": [
        {"type": "static", "options": {"token": STATIC_TOKEN, "subject": "interop"}}]});
    config["discovery"] = json!({"endpoints": [{
        "target": format!("http://127.0.0.1:{node_port}/api/{{{{pluginId}}}}"), "plugins": ["tsplug"]}]});
    let rust = Backend::builder()
        .plugin::<Rusty>()
        .config_value(config)
        .start()
        .await
        .unwrap();
    let rust_port = rust.local_addr().port();

    let external =
        json!([{"type": "static", "options": {"token": STATIC_TOKEN, "subject": "interop"}}]);
    let node_config = json!({
        "backend": node_backend(&dir, "ts", node_port, &external, json!({})),
        "discovery": {"endpoints": [{
            "target": format!("http://127.0.0.1:{rust_port}/api/{{{{pluginId}}}}"), "plugins": ["rusty"]}]},
    });
    let _node = Node::start(
        &dir,
        "backend.js",
        &node_config,
        "/api/tsplug/.backstage/auth/v1/jwks.json",
    )
    .await;
    let node = |path: &str| format!("http://127.0.0.1:{node_port}{path}");

    // The TypeScript plugin calls ours with its plugin token: accepted, as plugin:tsplug.
    let (status, body) = {
        let r = client()
            .get(node("/api/tsplug/call-rust"))
            .send()
            .await
            .unwrap();
        let (s, _, b) = read(r).await;
        (s, b)
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": 200, "body": {"type": "service", "subject": "plugin:tsplug"}})
    );

    // Ours calls the TypeScript plugin with ours: accepted, as plugin:rusty.
    let response = client()
        .get(rust.url("/api/rusty/call-ts"))
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": 200, "body": {"type": "service", "subject": "plugin:rusty"}})
    );

    // The same call through the typed client that describing tsplug's routes in Rust gives.
    let response = client()
        .get(rust.url("/api/rusty/call-ts-typed"))
        .send()
        .await
        .unwrap();
    let (status, _, body) = read(response).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"type": "service", "subject": "plugin:rusty"})
    );

    // One static token works on both.
    for url in [node("/api/tsplug/whoami"), rust.url("/api/rusty/whoami")] {
        let response = client()
            .get(&url)
            .bearer_auth(STATIC_TOKEN)
            .send()
            .await
            .unwrap();
        let (status, _, body) = read(response).await;
        assert_eq!(status, 200, "{url}: {body}");
        assert!(body.contains(r#""subject":"interop""#), "{url}: {body}");
        // And a wrong one is refused by both.
        let response = client()
            .get(&url)
            .bearer_auth("wrong-token-123")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{url}");
    }
    rust.stop().await.unwrap();
}

/// Runs Backstage's cache client (`tests/interop/cache.js`) once; its stdout, trimmed.
fn node_cache(dir: &Path, args: &[&str]) -> String {
    let output = Command::new("node")
        .arg("cache.js")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("node runs");
    assert!(
        output.status.success(),
        "cache.js {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_and_rust_plugins_share_cache_entries_in_redis() {
    let Some(dir) = installed().await else { return };
    let Ok(url) = std::env::var(backstage::testing::REDIS_ENV) else {
        eprintln!("skipped: {} is not set", backstage::testing::REDIS_ENV);
        return;
    };
    let plugin = format!("interop-{}", std::process::id());
    let config = backstage::RootConfig::from_value(
        json!({ "backend": { "cache": { "store": "redis", "connection": url } } }),
    );
    let cache = backstage::cache::CacheManager::from_config(&config)
        .unwrap()
        .for_plugin(&plugin);
    let node = |args: Vec<String>| {
        let dir = dir.clone();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            node_cache(&dir, &args)
        })
    };
    let long_key = "k".repeat(300); // hashed, not base64-encoded, by both

    // Rust writes, Backstage reads.
    cache
        .set_with_ttl(
            "from:rust",
            &json!({"n": 1, "s": "é"}),
            Duration::from_secs(60),
        )
        .await
        .unwrap();
    cache.set(&long_key, &json!([1, 2, 3])).await.unwrap();
    let read = node(vec![
        url.clone(),
        plugin.clone(),
        "get".into(),
        "from:rust".into(),
    ])
    .await
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&read).unwrap(),
        json!({"n": 1, "s": "é"})
    );
    let read = node(vec![
        url.clone(),
        plugin.clone(),
        "get".into(),
        long_key.clone(),
    ])
    .await
    .unwrap();
    assert_eq!(
        serde_json::from_str::<Value>(&read).unwrap(),
        json!([1, 2, 3])
    );

    // Backstage writes, Rust reads; with a time to live, and without.
    let set = |key: &str, value: &str, ttl: Option<&str>| {
        let mut args = vec![
            url.clone(),
            plugin.clone(),
            "set".into(),
            key.to_owned(),
            value.to_owned(),
        ];
        args.extend(ttl.map(str::to_owned));
        node(args)
    };
    assert_eq!(
        set("from:node", r#"{"ok":true}"#, Some("60000"))
            .await
            .unwrap(),
        "ok"
    );
    assert_eq!(set("forever", r#""yes""#, None).await.unwrap(), "ok");
    assert_eq!(set("brief", "1", Some("50")).await.unwrap(), "ok");
    assert_eq!(
        cache.get::<Value>("from:node").await.unwrap(),
        Some(json!({"ok": true}))
    );
    assert_eq!(
        cache.get::<String>("forever").await.unwrap().as_deref(),
        Some("yes")
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(
        cache.get::<i64>("brief").await.unwrap(),
        None,
        "expired on both sides"
    );

    // Rust deletes what Backstage wrote.
    cache.delete("forever").await.unwrap();
    let read = node(vec![
        url.clone(),
        plugin.clone(),
        "get".into(),
        "forever".into(),
    ])
    .await
    .unwrap();
    assert_eq!(read, "null");
    for key in ["from:rust", "from:node", long_key.as_str()] {
        cache.delete(key).await.unwrap();
    }
}
