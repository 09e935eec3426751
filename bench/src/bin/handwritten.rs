//! The benchmark's baseline: carmen's benchmarked routes written by hand in axum, with no
//! framework code. It does the same work the framework does for them: Backstage's security
//! headers, the static-token check (constant time), ES256 plugin tokens verified with the
//! caller's JWKS (fetched once, cached), the same SQLite queries (reads on the calling thread
//! with rusqlite as the framework reads them, writes through sqlx), the same JSON as Express's
//! `res.json` sends it (`charset=utf-8`, weak ETag), `Vary: Accept-Encoding` and tower-http's
//! compression, the same Backstage error bodies, and the same empty 404 for an unknown route.
//!
//! Environment: `PORT`, `STATIC_TOKEN`, `JWKS_URL` (the calling plugin's key set), and
//! `FEATURES`: which of the framework's per-request features it does by hand, a comma-separated
//! list of `headers` (the security headers), `express-json` (`charset=utf-8` and the weak ETag)
//! and `compression` (`Vary` and the compression layer); all three when unset. `FEATURES=none`
//! makes it the benchmark's limit: the same routes, token checks and SQL, and nothing else.
//! `wire` (alone) is the limit whose `/health` answers with every header line Backstage's answer
//! carries (the security headers, Express's type and ETag, `Vary`, `Connection`, `Keep-Alive`),
//! copied from a map made at start-up: the least a server can do to put Backstage's answer on
//! the wire, so the benchmark can tell those bytes' cost from the framework's.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Request, State};
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, ETAG, VARY};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use subtle::ConstantTimeEq;
use tokio::sync::OnceCell;

/// The per-request features this server does by hand (see the crate docs).
#[derive(Clone, Copy)]
struct Features {
    headers: bool,
    express_json: bool,
    compression: bool,
    wire: bool,
}

impl Features {
    fn from_env() -> Result<Self, String> {
        let list =
            std::env::var("FEATURES").unwrap_or_else(|_| "headers,express-json,compression".into());
        let mut features = Features {
            headers: false,
            express_json: false,
            compression: false,
            wire: false,
        };
        for name in list
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty() && *n != "none")
        {
            match name {
                "headers" => features.headers = true,
                "express-json" => features.express_json = true,
                "compression" => features.compression = true,
                "wire" => features.wire = true,
                other => return Err(format!("FEATURES: unknown feature '{other}'")),
            }
        }
        Ok(features)
    }
}

/// Read once at start-up; a handler only reads the flag.
static FEATURES: std::sync::OnceLock<Features> = std::sync::OnceLock::new();

fn express_json() -> bool {
    FEATURES.get().is_some_and(|f| f.express_json)
}

struct AppState {
    pool: SqlitePool,
    /// Connections for reads on the calling thread, to the pool's database.
    reads: std::sync::Mutex<Vec<rusqlite::Connection>>,
    token: String,
    jwks_url: String,
    key: OnceCell<Vec<u8>>,
    http: reqwest::Client,
}

#[derive(Serialize)]
struct Item {
    id: i64,
    name: String,
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

const HEADERS: [(&str, &str); 9] = [
    (
        "content-security-policy",
        "default-src 'self';base-uri 'self';font-src 'self' https: data:;frame-ancestors 'self';img-src 'self' data:;object-src 'none';script-src 'self' 'unsafe-eval';script-src-attr 'none';style-src 'self' https: 'unsafe-inline';upgrade-insecure-requests",
    ),
    ("referrer-policy", "no-referrer"),
    (
        "strict-transport-security",
        "max-age=15552000; includeSubDomains",
    ),
    ("x-content-type-options", "nosniff"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-frame-options", "SAMEORIGIN"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

/// `value` as Express's `res.json` sends it: `charset=utf-8` and a weak ETag (plain JSON when
/// the feature is off).
fn json<T: Serialize>(status: StatusCode, value: &T) -> Response {
    if !express_json() {
        return (status, Json(value)).into_response();
    }
    let Ok(bytes) = serde_json::to_vec(value) else {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    };
    // The same SHA-1 as the framework's (the CPU's SHA instructions where it has them).
    let digest = <sha1::Sha1 as sha1::Digest>::digest(&bytes);
    let hash = base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_slice());
    let etag = format!("W/\"{:x}-{}\"", bytes.len(), &hash[..27]);
    let mut response = (status, bytes).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    if let Ok(etag) = HeaderValue::from_str(&etag) {
        headers.insert(ETAG, etag);
    }
    response
}

fn error(status: StatusCode, name: &str, message: &str, method: &str, uri: &Uri) -> Response {
    let body = json!({
        "error": {"name": name, "message": message},
        "request": {"method": method, "url": uri.to_string()},
        "response": {"statusCode": status.as_u16()},
    });
    json(status, &body)
}

fn unauthorized(uri: &Uri, method: &str) -> Response {
    error(
        StatusCode::UNAUTHORIZED,
        "AuthenticationError",
        "Illegal token",
        method,
        uri,
    )
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    value
        .strip_prefix("Bearer ")
        .or_else(|| value.strip_prefix("bearer "))
}

impl AppState {
    /// Static token or plugin token; `false` for anything else.
    async fn authorized(&self, headers: &HeaderMap) -> bool {
        let Some(token) = bearer(headers) else {
            return false;
        };
        if bool::from(token.as_bytes().ct_eq(self.token.as_bytes())) {
            return true;
        }
        self.plugin_token(token).await
    }

    async fn plugin_token(&self, token: &str) -> bool {
        #[derive(Deserialize)]
        struct Header {
            typ: Option<String>,
            alg: String,
        }
        #[derive(Deserialize)]
        struct Claims {
            sub: String,
            aud: String,
            exp: u64,
        }
        let Some((input, signature)) = token.rsplit_once('.') else {
            return false;
        };
        let Some((header, claims)) = input.split_once('.') else {
            return false;
        };
        let decode = |part: &str| URL_SAFE_NO_PAD.decode(part).ok();
        let (Some(header), Some(claims), Some(signature)) =
            (decode(header), decode(claims), decode(signature))
        else {
            return false;
        };
        let Ok(header) = serde_json::from_slice::<Header>(&header) else {
            return false;
        };
        if header.typ.as_deref() != Some("vnd.backstage.plugin") || header.alg != "ES256" {
            return false;
        }
        let Ok(claims) = serde_json::from_slice::<Claims>(&claims) else {
            return false;
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        if claims.aud != "carmen" || claims.exp <= now || claims.sub.is_empty() {
            return false;
        }
        let key = self
            .key
            .get_or_try_init(|| async {
                let set: serde_json::Value = self
                    .http
                    .get(&self.jwks_url)
                    .send()
                    .await
                    .map_err(|_| ())?
                    .json()
                    .await
                    .map_err(|_| ())?;
                let key = &set["keys"][0];
                let coordinate = |name: &str| {
                    key[name]
                        .as_str()
                        .and_then(|v| URL_SAFE_NO_PAD.decode(v).ok())
                        .ok_or(())
                };
                let mut point = vec![4];
                point.extend(coordinate("x")?);
                point.extend(coordinate("y")?);
                Ok::<_, ()>(point)
            })
            .await;
        let Ok(key) = key else {
            return false;
        };
        ring::signature::UnparsedPublicKey::new(&ring::signature::ECDSA_P256_SHA256_FIXED, key)
            .verify(input.as_bytes(), &signature)
            .is_ok()
    }
}

impl AppState {
    /// The rows of `sql` with `id` bound (when given), read on this thread.
    fn read(&self, sql: &str, id: Option<i64>) -> rusqlite::Result<Vec<Item>> {
        let kept = self.reads.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let connection = match kept {
            Some(connection) => connection,
            None => rusqlite::Connection::open_with_flags(
                DATABASE,
                rusqlite::OpenFlags::SQLITE_OPEN_URI
                    | rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE
                    | rusqlite::OpenFlags::SQLITE_OPEN_MEMORY
                    | rusqlite::OpenFlags::SQLITE_OPEN_SHARED_CACHE
                    | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?,
        };
        let rows = {
            let mut statement = connection.prepare_cached(sql)?;
            let to_item = |row: &rusqlite::Row<'_>| {
                Ok(Item {
                    id: row.get(0)?,
                    name: row.get(1)?,
                })
            };
            match id {
                Some(id) => statement.query_map([id], to_item)?.collect(),
                None => statement.query_map([], to_item)?.collect(),
            }
        };
        self.reads
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(connection);
        rows
    }
}

/// The named in-memory database that sqlx's pool and the read connections share.
const DATABASE: &str = "file:handwritten";

async fn health() -> Response {
    if let Some(headers) = WIRE_HEALTH.get() {
        let mut response = Response::new(axum::body::Body::from(HEALTH_BODY));
        *response.headers_mut() = headers.clone();
        return response;
    }
    json(StatusCode::OK, &json!({"status": "ok"}))
}

const HEALTH_BODY: &str = r#"{"status":"ok"}"#;

/// `/health`'s answer headers as Backstage sends them, made once (feature `wire`).
static WIRE_HEALTH: std::sync::OnceLock<HeaderMap> = std::sync::OnceLock::new();

fn wire_health() -> HeaderMap {
    let digest = <sha1::Sha1 as sha1::Digest>::digest(HEALTH_BODY.as_bytes());
    let hash = base64::engine::general_purpose::STANDARD_NO_PAD.encode(digest.as_slice());
    let etag = format!("W/\"{:x}-{}\"", HEALTH_BODY.len(), &hash[..27]);
    let mut headers = HeaderMap::new();
    for (name, value) in HEADERS {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    let mut put = |name: HeaderName, value: &str| {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    };
    put(CONTENT_TYPE, "application/json; charset=utf-8");
    put(CONTENT_LENGTH, &HEALTH_BODY.len().to_string());
    put(ETAG, &etag);
    put(VARY, "Accept-Encoding");
    put(CONNECTION, "keep-alive");
    put(HeaderName::from_static("keep-alive"), "timeout=5");
    headers
}

async fn items(State(state): State<Arc<AppState>>, request: Request) -> Response {
    if !state.authorized(request.headers()).await {
        return unauthorized(request.uri(), "GET");
    }
    match state.read("SELECT id, name FROM items ORDER BY id", None) {
        Ok(rows) => json(StatusCode::OK, &rows),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn create_item(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    uri: Uri,
    Json(new): Json<NewItem>,
) -> Response {
    if !state.authorized(&headers).await {
        return unauthorized(&uri, "POST");
    }
    let name = new.name.trim();
    if name.is_empty() || name.chars().count() > 255 {
        return error(
            StatusCode::BAD_REQUEST,
            "InputError",
            "name must be 1 to 255 characters",
            "POST",
            &uri,
        );
    }
    let row = sqlx::query("INSERT INTO items (name) VALUES (?) RETURNING id, name")
        .bind(name)
        .fetch_one(&state.pool)
        .await;
    match row {
        Ok(row) => json(
            StatusCode::CREATED,
            &Item {
                id: row.get(0),
                name: row.get(1),
            },
        ),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn item(
    State(state): State<Arc<AppState>>,
    Path(id): Path<i64>,
    headers: HeaderMap,
    uri: Uri,
) -> Response {
    if !state.authorized(&headers).await {
        return unauthorized(&uri, "GET");
    }
    let row = state
        .read("SELECT id, name FROM items WHERE id = ?", Some(id))
        .map(|rows| rows.into_iter().next());
    match row {
        Ok(Some(item)) => json(StatusCode::OK, &item),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            "NotFoundError",
            &format!("no item with id {id}"),
            "GET",
            &uri,
        ),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

async fn not_found(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let method = request.method().as_str().to_owned();
    if !state.authorized(request.headers()).await {
        return unauthorized(request.uri(), &method);
    }
    StatusCode::NOT_FOUND.into_response()
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port: u16 = std::env::var("PORT")?.parse()?;
    let features = Features::from_env()?;
    FEATURES.get_or_init(|| features);
    if features.wire {
        WIRE_HEALTH.get_or_init(wire_health);
    }
    let options: SqliteConnectOptions =
        "sqlite:file:handwritten?mode=memory&cache=shared".parse()?;
    let pool = SqlitePoolOptions::new()
        .max_connections(10)
        .min_connections(1)
        .idle_timeout(None)
        .max_lifetime(None)
        .connect_with(options)
        .await?;
    sqlx::query(
        "CREATE TABLE items (id INTEGER PRIMARY KEY AUTOINCREMENT, name VARCHAR(255) NOT NULL)",
    )
    .execute(&pool)
    .await?;
    let state = Arc::new(AppState {
        pool,
        reads: std::sync::Mutex::new(Vec::new()),
        token: std::env::var("STATIC_TOKEN")?,
        jwks_url: std::env::var("JWKS_URL")?,
        key: OnceCell::new(),
        http: reqwest::Client::new(),
    });
    let carmen = axum::Router::new()
        .route("/health", get(health))
        .route("/items", get(items).post(create_item))
        .route("/items/{id}", get(item))
        .fallback(not_found)
        .with_state(state);
    let mut app = axum::Router::new()
        .route("/.backstage/health/v1/readiness", get(health))
        .nest("/api/carmen", carmen);
    if features.headers {
        app = app.layer(axum::middleware::map_response(
            |mut response: Response| async move {
                for (name, value) in HEADERS {
                    response.headers_mut().insert(
                        HeaderName::from_static(name),
                        HeaderValue::from_static(value),
                    );
                }
                response
            },
        ));
    }
    if features.compression {
        app = app
            .layer(axum::middleware::map_response(
                |mut response: Response| async move {
                    let json = response
                        .headers()
                        .get(CONTENT_TYPE)
                        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
                    if json {
                        response
                            .headers_mut()
                            .insert(VARY, HeaderValue::from_static("Accept-Encoding"));
                    }
                    response
                },
            ))
            .layer(
                tower_http::compression::CompressionLayer::new()
                    .compress_when(tower_http::compression::predicate::SizeAbove::new(1024)),
            );
    }
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    axum::serve(listener, app).await?;
    Ok(())
}
