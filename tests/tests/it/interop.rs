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

/// The static token both backends accept, as `backend.auth.externalAccess`.
fn external_access() -> Value {
    json!([{"type": "static", "options": {"token": STATIC_TOKEN, "subject": "interop"}}])
}

/// The Rust backend serving `rusty`, with the TypeScript plugin `tsplug` on `node_port`.
async fn rusty_backend(node_port: u16) -> Backend {
    let mut config = loopback_config();
    config["backend"]["auth"] = json!({ "externalAccess": external_access() });
    config["discovery"] = json!({"endpoints": [{
        "target": format!("http://127.0.0.1:{node_port}/api/{{{{pluginId}}}}"), "plugins": ["tsplug"]}]});
    Backend::builder()
        .plugin::<Rusty>()
        .config_value(config)
        .start()
        .await
        .unwrap()
}

/// The TypeScript backend (`tests/interop/backend.js`) on `node_port`, with the Rust plugin
/// `rusty` on `rust_port`.
async fn typescript_backend(dir: &Path, node_port: u16, rust_port: u16) -> Node {
    let node_config = json!({
        "backend": node_backend(dir, "ts", node_port, &external_access(), json!({})),
        "discovery": {"endpoints": [{
            "target": format!("http://127.0.0.1:{rust_port}/api/{{{{pluginId}}}}"), "plugins": ["rusty"]}]},
    });
    let ready = "/api/tsplug/.backstage/auth/v1/jwks.json";
    Node::start(dir, "backend.js", &node_config, ready).await
}

/// GET `url`, with `token` as the bearer token if there is one: the status and the body.
async fn fetch(url: &str, token: Option<&str>) -> (u16, String) {
    let mut request = client().get(url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let (status, _, body) = read(request.send().await.unwrap()).await;
    (status, body)
}

/// GET `url` without credentials answers 200 and `expected`.
async fn assert_answers(url: &str, expected: Value) {
    let (status, body) = fetch(url, None).await;
    assert_eq!(status, 200, "{url}: {body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap(), expected);
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_and_typescript_backends_accept_each_others_tokens() {
    let Some(dir) = installed().await else { return };
    let node_port = free_port();
    let rust = rusty_backend(node_port).await;
    let _node = typescript_backend(&dir, node_port, rust.local_addr().port()).await;
    let node = |path: &str| format!("http://127.0.0.1:{node_port}{path}");
    let service = |subject: &str| json!({"type": "service", "subject": subject});

    // The TypeScript plugin calls ours with its plugin token: accepted, as plugin:tsplug.
    let call_rust = node("/api/tsplug/call-rust");
    let tsplug = json!({"status": 200, "body": service("plugin:tsplug")});
    assert_answers(&call_rust, tsplug).await;
    // Ours calls the TypeScript plugin with ours: accepted, as plugin:rusty.
    let rusty = json!({"status": 200, "body": service("plugin:rusty")});
    assert_answers(&rust.url("/api/rusty/call-ts"), rusty).await;
    // The same call through the typed client that describing tsplug's routes in Rust gives.
    let typed = rust.url("/api/rusty/call-ts-typed");
    assert_answers(&typed, service("plugin:rusty")).await;

    // One static token works on both.
    for url in [node("/api/tsplug/whoami"), rust.url("/api/rusty/whoami")] {
        let (status, body) = fetch(&url, Some(STATIC_TOKEN)).await;
        assert_eq!(status, 200, "{url}: {body}");
        assert!(body.contains(r#""subject":"interop""#), "{url}: {body}");
        // And a wrong one is refused by both.
        let (status, _) = fetch(&url, Some("wrong-token-123")).await;
        assert_eq!(status, 401, "{url}");
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

/// Backstage's cache client (`tests/interop/cache.js`, run once per call) and ours, on one
/// Redis, in a plugin namespace of the test's own.
struct SharedCache {
    dir: PathBuf,
    url: String,
    plugin: String,
    /// Ours.
    cache: backstage::Cache,
}

impl SharedCache {
    /// The shared cache of test `name`, or `None` (reported) without interop or Redis.
    async fn open(name: &str) -> Option<SharedCache> {
        let dir = installed().await?;
        let Ok(url) = std::env::var(backstage::testing::REDIS_ENV) else {
            eprintln!("skipped: {} is not set", backstage::testing::REDIS_ENV);
            return None;
        };
        let plugin = format!("interop-{}-{name}", std::process::id());
        let config = backstage::RootConfig::from_value(
            json!({ "backend": { "cache": { "store": "redis", "connection": url } } }),
        );
        let cache = backstage::cache::CacheManager::from_config(&config)
            .unwrap()
            .for_plugin(&plugin);
        Some(SharedCache {
            dir,
            url,
            plugin,
            cache,
        })
    }

    /// Backstage's client, `cache.js <url> <plugin> <args>`: its stdout, trimmed.
    async fn node(&self, args: &[&str]) -> String {
        let dir = self.dir.clone();
        let args: Vec<String> = [self.url.as_str(), self.plugin.as_str()]
            .iter()
            .chain(args)
            .map(|arg| (*arg).to_owned())
            .collect();
        tokio::task::spawn_blocking(move || {
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            node_cache(&dir, &args)
        })
        .await
        .unwrap()
    }

    /// What Backstage's client reads at `key`, as JSON (`null` when absent).
    async fn node_get(&self, key: &str) -> Value {
        serde_json::from_str(&self.node(&["get", key]).await).unwrap()
    }

    /// Backstage's client stores `value` (JSON) at `key`, for `ttl` milliseconds if given.
    async fn node_set(&self, key: &str, value: &str, ttl: Option<&str>) {
        let args: Vec<&str> = ["set", key, value].into_iter().chain(ttl).collect();
        assert_eq!(self.node(&args).await, "ok");
    }

    /// Deletes `keys` through ours.
    async fn clean(&self, keys: &[&str]) {
        for key in keys {
            self.cache.delete(key).await.unwrap();
        }
    }
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_plugins_read_what_rust_plugins_cache_in_redis() {
    let Some(shared) = SharedCache::open("rust-writes").await else {
        return;
    };
    let long_key = "k".repeat(300); // hashed, not base64-encoded, by both
    let cache = &shared.cache;
    let entry = json!({"n": 1, "s": "é"});
    let minute = Duration::from_secs(60);
    cache
        .set_with_ttl("from:rust", &entry, minute)
        .await
        .unwrap();
    cache.set(&long_key, &json!([1, 2, 3])).await.unwrap();
    assert_eq!(shared.node_get("from:rust").await, entry);
    assert_eq!(shared.node_get(&long_key).await, json!([1, 2, 3]));
    shared.clean(&["from:rust", &long_key]).await;
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_plugins_read_what_typescript_plugins_cache_in_redis_until_it_expires() {
    let Some(shared) = SharedCache::open("node-writes").await else {
        return;
    };
    // With a time to live, and without.
    shared
        .node_set("from:node", r#"{"ok":true}"#, Some("60000"))
        .await;
    shared.node_set("forever", r#""yes""#, None).await;
    shared.node_set("brief", "1", Some("50")).await;
    let cache = &shared.cache;
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
    shared.clean(&["from:node", "forever"]).await;
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_plugins_delete_what_typescript_plugins_cache_in_redis() {
    let Some(shared) = SharedCache::open("rust-deletes").await else {
        return;
    };
    shared.node_set("forever", r#""yes""#, None).await;
    shared.cache.delete("forever").await.unwrap();
    assert_eq!(shared.node_get("forever").await, Value::Null);
}
