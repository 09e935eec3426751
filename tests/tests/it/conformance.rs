//! Wire conformance: one corpus of framework-level requests sent to a Backstage backend from
//! npm (`tests/interop/wire.js`) and to a Rust backend serving a plugin of the same shape, with
//! the same config; status, error bodies and the headers a client sees must match, except for
//! the departures `docs/decisions.md` lists.
//!
//! Opt-in like the interop test: runs when `BACKSTAGE_TEST_INTEROP` is set.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::interop::{Node, free_port, installed, write_keys};
use backstage::Backend;
use backstage::prelude::*;
use serde_json::{Value, json};

const STATIC_TOKEN: &str = "wire-static-token-0123456789";

/// The Rust side of the comparison: the routes of `wire.js`, answering the same.
#[backend_plugin(id = "wire")]
pub struct Wire;

#[routes]
impl Wire {
    #[route(get, "/health", auth = "unauthenticated")]
    async fn health(&self) -> Json<Health> {
        Json(Health::ok())
    }

    #[route(get, "/items")]
    async fn items(&self) -> Json<Value> {
        Json(json!([{ "id": 1, "name": "first" }]))
    }

    #[route(post, "/items")]
    async fn create(&self, Json(body): Json<Value>) -> Result<(StatusCode, Json<Value>)> {
        match body.get("name").and_then(Value::as_str).map(str::trim) {
            Some(name) if !name.is_empty() => {
                Ok((StatusCode::CREATED, Json(json!({ "id": 2, "name": name }))))
            }
            _ => Err(Error::input("name must not be empty")),
        }
    }

    #[route(get, "/items/{id}")]
    async fn item(&self, Path(id): Path<String>) -> Result<Json<Value>> {
        Err(Error::not_found(format!("no item {id}")))
    }

    #[route(get, "/big", auth = "unauthenticated")]
    async fn big(&self) -> Json<Value> {
        let items: Vec<Value> = (0..100)
            .map(|i| json!({ "id": i, "name": format!("item {i}") }))
            .collect();
        Json(json!({ "items": items }))
    }
}

/// One request of the corpus.
struct Probe {
    name: &'static str,
    method: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    body: Option<Vec<u8>>,
}

fn probe(name: &'static str, method: &'static str, path: &str) -> Probe {
    Probe {
        name,
        method,
        path: path.to_owned(),
        headers: Vec::new(),
        body: None,
    }
}

impl Probe {
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }

    fn token(self) -> Self {
        self.header("authorization", format!("Bearer {STATIC_TOKEN}"))
    }

    fn json(self, body: &str) -> Self {
        self.body("application/json", body.as_bytes().to_vec())
    }

    fn json_bytes(self, body: Vec<u8>) -> Self {
        self.body("application/json", body)
    }

    fn body_only(mut self, body: &[u8]) -> Self {
        self.body = Some(body.to_vec());
        self
    }

    fn body(self, content_type: &str, body: Vec<u8>) -> Self {
        let mut probe = self.header("content-type", content_type);
        probe.body = Some(body);
        probe
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(data).unwrap();
    encoder.finish().unwrap()
}

/// The weak ETag Express gives `{"status":"ok"}` (`etag` 1.8, computed by Node).
const HEALTH_ETAG: &str = r#"W/"f-VaSQ4oDUiZblZNAEkkN+sX+q3Sg""#;

/// The corpus, in the order it is sent.
fn corpus() -> Vec<Probe> {
    [
        health_and_path_probes(),
        credential_probes(),
        body_probes(),
        compression_probes(),
        cors_and_auth_endpoint_probes(),
    ]
    .into_iter()
    .flatten()
    .collect()
}

/// The health probes, and paths around an open route.
fn health_and_path_probes() -> Vec<Probe> {
    vec![
        probe("liveness", "GET", "/.backstage/health/v1/liveness"),
        probe("readiness", "GET", "/.backstage/health/v1/readiness"),
        probe("liveness, HEAD", "HEAD", "/.backstage/health/v1/liveness"),
        probe("liveness, POST", "POST", "/.backstage/health/v1/liveness"),
        probe("unknown health probe", "GET", "/.backstage/health/v1/other"),
        probe(
            "liveness, fresh copy",
            "GET",
            "/.backstage/health/v1/liveness",
        )
        .header("if-none-match", HEALTH_ETAG),
        probe("plugin health", "GET", "/api/wire/health"),
        probe("plugin health, trailing slash", "GET", "/api/wire/health/"),
        probe("plugin health, HEAD", "HEAD", "/api/wire/health"),
        probe("plugin health, fresh copy", "GET", "/api/wire/health")
            .header("if-none-match", HEALTH_ETAG),
        probe("plugin health, any copy", "GET", "/api/wire/health").header("if-none-match", "*"),
        probe("plugin health, stale copy", "GET", "/api/wire/health")
            .header("if-none-match", r#"W/"f-other""#),
        probe("plugin health, reload", "GET", "/api/wire/health")
            .header("if-none-match", HEALTH_ETAG)
            .header("cache-control", "no-cache"),
        probe("plugin health, mixed case", "GET", "/api/wire/Health"),
        probe(
            "an open GET route, POST, anonymous",
            "POST",
            "/api/wire/health",
        ),
        probe(
            "below an open route, anonymous",
            "GET",
            "/api/wire/health/more",
        ),
        probe("plugin health, double slash", "GET", "/api/wire//health"),
        probe("plugin root", "GET", "/api/wire"),
        probe("plugin root, slash and query", "GET", "/api/wire/?a=1"),
    ]
}

/// Credentials of every shape, and routes that are not there.
fn credential_probes() -> Vec<Probe> {
    vec![
        probe("protected without credentials", "GET", "/api/wire/items"),
        probe("protected with a static token", "GET", "/api/wire/items").token(),
        probe("protected, query string", "GET", "/api/wire/items?limit=5&offset=1"),
        probe("bearer garbage", "GET", "/api/wire/items").header("authorization", "Bearer not-a-token"),
        probe("basic scheme", "GET", "/api/wire/items").header("authorization", "Basic dXNlcjpwYXNz"),
        probe("bearer without token", "GET", "/api/wire/items").header("authorization", "Bearer"),
        probe("bearer, a space and no token", "GET", "/api/wire/items")
            .header("authorization", "Bearer "),
        probe("lower-case scheme", "GET", "/api/wire/items")
            .header("authorization", format!("bearer {STATIC_TOKEN}")),
        probe("two spaces before the token", "GET", "/api/wire/items")
            .header("authorization", format!("Bearer  {STATIC_TOKEN}")),
        probe("a token with a typo", "GET", "/api/wire/items")
            .header("authorization", format!("Bearer {STATIC_TOKEN}x")),
        probe("two Authorization headers", "GET", "/api/wire/items")
            .header("authorization", "Bearer not-a-token")
            .token(),
        probe("an unsigned JWT", "GET", "/api/wire/items").header(
            "authorization",
            "Bearer eyJhbGciOiJub25lIiwidHlwIjoidm5kLmJhY2tzdGFnZS51c2VyIn0.eyJzdWIiOiJ1c2VyOmRlZmF1bHQvbWFsbG9yeSJ9.",
        ),
        probe("a service token header from another issuer", "GET", "/api/wire/items").header(
            "authorization",
            "Bearer eyJhbGciOiJFUzI1NiIsImtpZCI6Im5vLXN1Y2gta2V5In0.eyJzdWIiOiJwbHVnaW46b3RoZXIiLCJhdWQiOiJ3aXJlIiwiZXhwIjo0MTAyNDQ0ODAwfQ.c2ln",
        ),
        probe("a forged JWT", "GET", "/api/wire/items").header(
            "authorization",
            "Bearer eyJhbGciOiJFUzI1NiIsInR5cCI6InZuZC5iYWNrc3RhZ2UudXNlciJ9.eyJzdWIiOiJ1c2VyOmRlZmF1bHQvbWFsbG9yeSJ9.c2ln",
        ),
        probe("not found inside the plugin, anonymous", "GET", "/api/wire/nothing"),
        probe("not found inside the plugin", "GET", "/api/wire/nothing").token(),
        probe("unknown method on a route", "PUT", "/api/wire/items").token(),
        probe("a route's own 404", "GET", "/api/wire/items/7").token(),
        probe("encoded path", "GET", "/api/wire/items/a%20b").token(),
        probe("dot segments", "GET", "/api/wire/../wire/health"),
        probe("unknown plugin", "GET", "/api/nothing/at/all"),
        probe("outside /api", "GET", "/nothing"),
    ]
}

/// Request bodies: JSON, malformed, encoded, too large.
fn body_probes() -> Vec<Probe> {
    vec![
        probe("create", "POST", "/api/wire/items")
            .token()
            .json(r#"{"name":"Ada"}"#),
        probe("create, invalid input", "POST", "/api/wire/items")
            .token()
            .json(r#"{"name":""}"#),
        probe("create, malformed JSON", "POST", "/api/wire/items")
            .token()
            .json("{not json"),
        probe(
            "create, JSON that is not an object",
            "POST",
            "/api/wire/items",
        )
        .token()
        .json("5"),
        probe("create, empty body", "POST", "/api/wire/items")
            .token()
            .json(""),
        probe("create, wrong content type", "POST", "/api/wire/items")
            .token()
            .body("text/plain", br#"{"name":"Ada"}"#.to_vec()),
        probe("create, no content type", "POST", "/api/wire/items")
            .token()
            .body_only(br#"{"name":"Ada"}"#),
        probe("create, gzip body", "POST", "/api/wire/items")
            .token()
            .header("content-encoding", "gzip")
            .json_bytes(gzip(br#"{"name":"Ada"}"#)),
        probe("create, brotli body", "POST", "/api/wire/items")
            .token()
            .header("content-encoding", "br")
            .json(r#"{"name":"Ada"}"#),
        probe("create, latin1 body", "POST", "/api/wire/items")
            .token()
            .body(
                "application/json; charset=latin1",
                br#"{"name":"Ada"}"#.to_vec(),
            ),
        probe("create, anonymous with a body", "POST", "/api/wire/items").json(r#"{"name":"Ada"}"#),
        probe("create, too large", "POST", "/api/wire/items")
            .token()
            .json(&format!(r#"{{"name":"{}"}}"#, "x".repeat(2 * 1024 * 1024))),
    ]
}

/// Compressed answers, as the client asks for them.
fn compression_probes() -> Vec<Probe> {
    vec![
        probe("big response, gzip", "GET", "/api/wire/big").header("accept-encoding", "gzip"),
        probe("big response, deflate", "GET", "/api/wire/big").header("accept-encoding", "deflate"),
        probe("big response, br", "GET", "/api/wire/big").header("accept-encoding", "br"),
        probe("big response, client's preference", "GET", "/api/wire/big")
            .header("accept-encoding", "gzip;q=0.5, deflate"),
        probe("big response, several equal", "GET", "/api/wire/big")
            .header("accept-encoding", "gzip, deflate, br"),
        probe("big response, unknown encoding", "GET", "/api/wire/big")
            .header("accept-encoding", "zz"),
        probe("big response, identity", "GET", "/api/wire/big"),
        probe("big response, HEAD", "HEAD", "/api/wire/big").header("accept-encoding", "gzip"),
        probe("small response, gzip", "GET", "/api/wire/health").header("accept-encoding", "gzip"),
    ]
}

/// CORS, simple and preflight, and the auth endpoints every plugin serves.
fn cors_and_auth_endpoint_probes() -> Vec<Probe> {
    let allowed = "http://allowed.example";
    vec![
        probe("CORS simple, allowed origin", "GET", "/api/wire/health").header("origin", allowed),
        probe("CORS simple, other origin", "GET", "/api/wire/health")
            .header("origin", "http://evil.example"),
        probe(
            "CORS simple, allowed origin, error",
            "GET",
            "/api/wire/items",
        )
        .header("origin", allowed),
        probe(
            "CORS simple, allowed origin, other case",
            "GET",
            "/api/wire/health",
        )
        .header("origin", "HTTP://ALLOWED.EXAMPLE"),
        probe(
            "CORS preflight, allowed origin",
            "OPTIONS",
            "/api/wire/items",
        )
        .header("origin", allowed)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,authorization",
        ),
        probe("CORS preflight, other origin", "OPTIONS", "/api/wire/items")
            .header("origin", "http://evil.example")
            .header("access-control-request-method", "POST"),
        probe("OPTIONS without origin", "OPTIONS", "/api/wire/items"),
        probe(
            "CORS preflight, allowed origin, unknown path",
            "OPTIONS",
            "/api/nothing",
        )
        .header("origin", allowed)
        .header("access-control-request-method", "GET"),
        probe(
            "CORS preflight, allowed origin, no requested headers",
            "OPTIONS",
            "/api/wire/items",
        )
        .header("origin", allowed)
        .header("access-control-request-method", "GET"),
        probe("JWKS", "GET", "/api/wire/.backstage/auth/v1/jwks.json"),
        probe(
            "cookie without credentials",
            "GET",
            "/api/wire/.backstage/auth/v1/cookie",
        ),
        probe(
            "cookie with a service token",
            "GET",
            "/api/wire/.backstage/auth/v1/cookie",
        )
        .token(),
    ]
}

/// The probes we answer differently on purpose, and why (`docs/decisions.md`, "Wire
/// conformance"). Each must still differ: a departure that goes away is taken off the list.
const DEPARTURES: &[(&str, &str)] = &[
    (
        "plugin health, mixed case",
        "paths are case-sensitive, as axum routes them",
    ),
    (
        "an open GET route, POST, anonymous",
        "a route's auth policy is exact per method",
    ),
    (
        "below an open route, anonymous",
        "a route's auth policy is exact per path",
    ),
];

/// What is compared of an answer.
#[derive(Debug, PartialEq)]
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    /// A JSON error body, whole.
    error: Option<Value>,
    /// Any other body, as text (empty when none).
    body: String,
}

/// Headers whose values are compared (others vary per run, as dates do, or by transport, as
/// `content-length` of compressed bodies does).
const COMPARED: &[&str] = &[
    "content-type",
    "etag",
    "last-modified",
    "content-encoding",
    "vary",
    "allow",
    "access-control-allow-origin",
    "access-control-allow-credentials",
    "access-control-allow-methods",
    "access-control-allow-headers",
    "access-control-expose-headers",
    "access-control-max-age",
    "cache-control",
    "content-security-policy",
    "cross-origin-opener-policy",
    "cross-origin-resource-policy",
    "origin-agent-cluster",
    "referrer-policy",
    "strict-transport-security",
    "x-content-type-options",
    "x-dns-prefetch-control",
    "x-download-options",
    "x-frame-options",
    "x-permitted-cross-domain-policies",
    "x-xss-protection",
    "x-powered-by",
    "www-authenticate",
    "connection",
    "keep-alive",
];

impl Answer {
    /// One line per part that differs, Backstage's value first.
    fn differences(&self, ours: &Answer) -> Vec<String> {
        let mut lines = Vec::new();
        let mut differ = |part: &str, theirs: String, mine: String| {
            if theirs != mine {
                lines.push(format!("  {part}: backstage {theirs} / ours {mine}"));
            }
        };
        differ("status", self.status.to_string(), ours.status.to_string());
        let names: std::collections::BTreeSet<&String> =
            self.headers.keys().chain(ours.headers.keys()).collect();
        for name in names {
            differ(
                &format!("header {name}"),
                format!("{:?}", self.headers.get(name)),
                format!("{:?}", ours.headers.get(name)),
            );
        }
        let error = |e: &Option<Value>| e.as_ref().map_or("none".to_owned(), Value::to_string);
        differ("error", error(&self.error), error(&ours.error));
        differ(
            "body",
            format!("{:?}", self.body),
            format!("{:?}", ours.body),
        );
        lines
    }
}

async fn answer(client: &reqwest::Client, base: &str, probe: &Probe) -> Answer {
    let mut request = client.request(
        probe.method.parse().unwrap(),
        format!("{base}{}", probe.path),
    );
    for (name, value) in &probe.headers {
        request = request.header(*name, value);
    }
    if let Some(body) = &probe.body {
        request = request.body(body.clone());
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let mut headers: BTreeMap<String, String> = response
        .headers()
        .iter()
        .filter(|(name, _)| COMPARED.contains(&name.as_str()))
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap_or("?").to_owned()))
        .collect();
    let encoding = headers_of(&response, "content-encoding");
    let raw = response.bytes().await.unwrap_or_default();
    let bytes = decoded(encoding.as_deref(), &raw);
    let parsed: Option<Value> = serde_json::from_slice(&bytes).ok();
    let mut error = parsed.filter(|body| body.get("error").is_some());
    if let Some(body) = &mut error {
        let fields = &mut body["error"];
        if fields["name"] == "SyntaxError" {
            // JavaScript's parser writes its own messages; the rest of the body is compared, and
            // the ETag, a hash of the whole body, cannot be.
            fields["message"] = "<JavaScript's parser message>".into();
            headers.remove("etag");
        }
        if let Some(fields) = fields.as_object_mut() {
            // How much of an over-long body was read when the limit was hit: chunking decides.
            fields.remove("received");
        }
    }
    let body = if error.is_some() {
        String::new()
    } else if bytes.len() > 200 {
        format!("<{} bytes>", bytes.len())
    } else {
        String::from_utf8_lossy(&bytes).into_owned()
    };
    Answer {
        status,
        headers,
        error,
        body,
    }
}

fn headers_of(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// The body as sent before compression (compressed bytes differ between zlib builds).
fn decoded(encoding: Option<&str>, raw: &[u8]) -> Vec<u8> {
    use std::io::Read;
    let mut out = Vec::new();
    let read = match encoding {
        Some("gzip") => flate2::read::GzDecoder::new(raw).read_to_end(&mut out),
        Some("deflate") => flate2::read::ZlibDecoder::new(raw).read_to_end(&mut out),
        Some("br") => brotli_decompressor::Decompressor::new(raw, 4096).read_to_end(&mut out),
        _ => return raw.to_vec(),
    };
    read.unwrap_or_else(|e| panic!("a {encoding:?} body that does not decode: {e}"));
    out
}

/// The config both backends read. Backstage keeps plugin keys in a database by default, and
/// its SQLite driver is a native module this harness does not build: static keys instead.
fn config(port: u16, keys: &(std::path::PathBuf, std::path::PathBuf)) -> Value {
    let (private, public) = keys;
    json!({
        "backend": {
            "baseUrl": format!("http://127.0.0.1:{port}"),
            "listen": {"host": "127.0.0.1", "port": port},
            "database": {"client": "better-sqlite3", "connection": ":memory:"},
            "cors": {
                "origin": "http://allowed.example",
                "methods": ["GET", "HEAD", "PATCH", "POST", "PUT", "DELETE"],
                "credentials": true,
            },
            "auth": {
                "externalAccess": [
                    {"type": "static", "options": {"token": STATIC_TOKEN, "subject": "wire-tests"}}],
                "pluginKeyStore": {"type": "static", "static": {"keys": [
                    {"publicKeyFile": public, "privateKeyFile": private, "keyId": "wire-key"}]}},
            },
        },
    })
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn framework_answers_match_backstages() {
    let Some(dir) = installed().await else { return };
    let keys = write_keys(&dir, "wire");
    let node_port = free_port();
    let _node = Node::start(
        &dir,
        "wire.js",
        &config(node_port, &keys),
        "/.backstage/health/v1/readiness",
    )
    .await;
    let rust_port = free_port();
    let rust = Backend::builder()
        .plugin::<Wire>()
        .config_value(config(rust_port, &keys))
        .start()
        .await
        .unwrap();
    let node = format!("http://127.0.0.1:{node_port}");
    let ours = format!("http://127.0.0.1:{}", rust.local_addr().port());
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let mut differences = Vec::new();
    let mut mended = Vec::new();
    let probes = corpus();
    for probe in &probes {
        let theirs = answer(&client, &node, probe).await;
        let mine = answer(&client, &ours, probe).await;
        let found = theirs.differences(&mine);
        let departure = DEPARTURES.iter().find(|(name, _)| *name == probe.name);
        match (departure, found.is_empty()) {
            (None, true) | (Some(_), false) => {}
            (None, false) => differences.push(format!(
                "{} ({} {}):\n{}",
                probe.name,
                probe.method,
                probe.path,
                found.join("\n")
            )),
            (Some((name, why)), true) => mended.push(format!("{name} ({why})")),
        }
    }
    rust.stop().await.unwrap();
    assert!(
        differences.is_empty(),
        "{} of {} answers differ:\n{}",
        differences.len(),
        probes.len(),
        differences.join("\n")
    );
    assert!(
        mended.is_empty(),
        "these departures are gone; take them out of DEPARTURES and docs/decisions.md: {}",
        mended.join(", ")
    );
}
