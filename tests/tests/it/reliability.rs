//! Lifecycle and reliability: shutdown under load, start-up gate, limits, timeouts, logs,
//! CORS, CSP, health headers, rate limits, HTTPS.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use backstage::prelude::*;
use backstage::testing::{TestBackend, json};

/// Routes for the in-process tests.
#[backend_plugin(id = "rel")]
pub struct Rel;

#[routes]
impl Rel {
    #[route(get, "/sleep/{ms}", auth = "unauthenticated")]
    async fn sleep(&self, Path(ms): Path<u64>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }

    #[route(post, "/echo", auth = "unauthenticated")]
    async fn echo(&self, Json(body): Json<serde_json::Value>) -> String {
        body.to_string().len().to_string()
    }

    #[route(post, "/raw", auth = "unauthenticated")]
    async fn raw(&self, body: axum::body::Bytes) -> String {
        body.len().to_string()
    }

    #[route(post, "/json", auth = "unauthenticated")]
    async fn json_body(&self, Json(body): Json<serde_json::Value>) -> String {
        body.to_string().len().to_string()
    }

    #[route(get, "/fail", auth = "unauthenticated")]
    async fn fail(&self) -> Result<&'static str> {
        Err(Error::input("no"))
    }

    #[route(get, "/big", auth = "unauthenticated")]
    async fn big(&self) -> Json<Vec<String>> {
        Json((0..200).map(|i| format!("item {i}")).collect())
    }

    #[route(get, "/no-transform", auth = "unauthenticated")]
    async fn no_transform(&self) -> impl IntoResponse {
        (
            [(backstage::axum::http::header::CACHE_CONTROL, "no-transform")],
            Json(vec!["same"; 300]),
        )
    }

    #[route(get, "/closing", auth = "unauthenticated")]
    async fn closing(&self) -> impl IntoResponse {
        (
            [(backstage::axum::http::header::CONNECTION, "close")],
            Json("bye"),
        )
    }
}

async fn rel(config: serde_json::Value) -> TestBackend {
    TestBackend::builder()
        .plugin::<Rel>()
        .config(config)
        .start()
        .await
        .unwrap()
}

// Blocking socket I/O below: the server needs threads of its own.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_bodies_get_413_without_being_read() {
    let backend = rel(json!({ "backend": { "server": { "maxRequestBodySize": "1kb" } } })).await;
    let small = json!({ "a": "x".repeat(100) });
    assert_eq!(
        backend
            .post("/api/rel/echo")
            .json(&small)
            .send()
            .await
            .status(),
        200
    );
    let big = json!({ "a": "x".repeat(4000) });
    let res = backend.post("/api/rel/echo").json(&big).send().await;
    assert_eq!(res.status(), 413);
    assert_eq!(
        res.error(),
        (
            "PayloadTooLargeError".to_owned(),
            "request entity too large".to_owned()
        )
    );

    // a huge declared length is refused from the headers alone, nothing read
    let address = backend.backend().local_addr();
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .write_all(b"POST /api/rel/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
}

// Blocking socket I/O below: the server needs threads of its own.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_still_sending_a_body_too_large_reads_the_413() {
    let backend = rel(json!({ "backend": { "server": { "maxRequestBodySize": "1kb" } } })).await;
    let address = backend.backend().local_addr();
    let sent = tokio::task::spawn_blocking(move || {
        let mut stream = TcpStream::connect(address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream
            .write_all(b"POST /api/rel/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 3000\r\n\r\n")
            .unwrap();
        // The body in pieces, as a slow client sends it: the answer is decided by now, and a
        // server that closed the connection makes the later writes fail.
        let mut writes = Vec::new();
        for _ in 0..3 {
            writes.push(stream.write_all(&[b' '; 1000]).map_err(|e| e.kind()));
            std::thread::sleep(Duration::from_millis(150));
        }
        // The body was read to its end: the connection serves the next request, as Node's.
        let refused = answer_on(&mut stream);
        stream
            .write_all(b"GET /api/rel/sleep/1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            .unwrap();
        let mut next = String::new();
        let read = stream.read_to_string(&mut next).map_err(|e| e.kind());
        (writes, refused, read, next)
    });
    let (writes, refused, read, next) = sent.await.unwrap();
    assert_eq!(writes, vec![Ok(()), Ok(()), Ok(())]);
    assert!(refused.starts_with("HTTP/1.1 413"), "{refused}");
    assert!(refused.contains("request entity too large"), "{refused}");
    assert!(
        refused.contains("\r\nconnection: keep-alive\r\n"),
        "{refused}"
    );
    assert!(read.is_ok(), "{read:?}");
    assert!(next.starts_with("HTTP/1.1 200 OK"), "{next}");
}

/// One whole answer read off `stream` (its head and `content-length` bytes of body), leaving
/// the connection open.
fn answer_on(stream: &mut TcpStream) -> String {
    let mut answer = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&answer[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|line| line.strip_prefix("content-length: "))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if answer.len() >= end + 4 + length {
                return String::from_utf8_lossy(&answer).into_owned();
            }
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the whole answer: {answer:?}");
        answer.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `request` as it is (it should ask for `connection: close`) and returns the status line
/// of the answer.
fn status_line(address: std::net::SocketAddr, request: &str) -> String {
    exchange(address, request)
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

/// The whole response to `request`, sent on a connection of its own.
fn exchange(address: std::net::SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let _ = stream.write_all(request.as_bytes());
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
}

/// A chunked body (no length to refuse it by) of `size` bytes to `path`; the status line.
fn post_chunked(address: std::net::SocketAddr, path: &str, size: usize) -> String {
    status_line(
        address,
        &format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\ntransfer-encoding: chunked\r\n\r\n{size:x}\r\n{}\r\n0\r\n\r\n",
            "x".repeat(size)
        ),
    )
}

// Blocking socket I/O below: the server needs threads of its own.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn axums_own_body_extractors_have_the_configured_limit() {
    let backend = rel(json!({ "backend": { "server": { "maxRequestBodySize": "1kb" } } })).await;
    let address = backend.backend().local_addr();
    let small = tokio::task::spawn_blocking(move || post_chunked(address, "/api/rel/raw", 100));
    assert_eq!(small.await.unwrap(), "HTTP/1.1 200 OK");
    // Under axum's own default (2 MB), but over the configured limit.
    let big = tokio::task::spawn_blocking(move || post_chunked(address, "/api/rel/raw", 4000));
    assert_eq!(big.await.unwrap(), "HTTP/1.1 413 Payload Too Large");
    // The framework's `Json` reads with the same limit, and says which in Backstage's body.
    let json_of = |size: usize| {
        let body = format!("[\"{}\"]", "x".repeat(size - 4));
        format!(
            "POST /api/rel/json HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n",
            body.len()
        )
    };
    let (small, big) = (json_of(100), json_of(4000));
    let small = tokio::task::spawn_blocking(move || exchange(address, &small));
    let small = small.await.unwrap();
    assert!(small.starts_with("HTTP/1.1 200 OK"), "{small}");
    assert!(small.ends_with("\r\n\r\n100"), "{small}");
    let big = tokio::task::spawn_blocking(move || exchange(address, &big));
    let big = big.await.unwrap();
    assert!(big.starts_with("HTTP/1.1 413 Payload Too Large"), "{big}");
    assert!(big.contains(r#""limit":1024"#), "{big}");
}

/// The resident memory of process `pid`, in kB.
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[backstage::test]
async fn slow_requests_time_out_with_503() {
    let backend = rel(json!({ "backend": { "server": { "requestTimeout": "300ms" } } })).await;
    assert_eq!(
        backend.get("/api/rel/sleep/10").send().await.text(),
        "slept 10 ms"
    );
    let started = Instant::now();
    let res = backend.get("/api/rel/sleep/3000").send().await;
    assert!(started.elapsed() < Duration::from_millis(2500));
    assert_eq!(res.status(), 503);
    assert_eq!(
        res.error(),
        (
            "ServiceUnavailableError".to_owned(),
            "Request timed out".to_owned()
        )
    );
}

#[test]
fn a_slow_loris_is_cut_off_by_the_header_timeout() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = runtime.block_on(rel(
        json!({ "backend": { "server": { "headersTimeout": "500ms" } } }),
    ));
    let mut stream = TcpStream::connect(backend.backend().local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    stream
        .write_all(b"GET /api/rel/sleep/1 HTTP/1.1\r\nhost: x\r\n")
        .unwrap();
    // ... and never the blank line that ends the headers
    let mut buffer = Vec::new();
    let _ = stream.read_to_end(&mut buffer);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(400) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    let text = String::from_utf8_lossy(&buffer);
    assert!(!text.contains("slept"), "{text}");
    drop(backend);
}

#[test]
fn the_header_timeout_counts_afresh_for_each_request_on_a_connection() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = runtime.block_on(rel(
        json!({ "backend": { "server": { "headersTimeout": "600ms" } } }),
    ));
    let stream = TcpStream::connect(backend.backend().local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    let mut exchange = |pause: Duration| {
        std::thread::sleep(pause);
        writer
            .write_all(b"GET /api/rel/sleep/1 HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        let mut line = String::new();
        let mut length = 0;
        while reader.read_line(&mut line).unwrap() > 2 {
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
            line.clear();
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        status
    };
    // Each request comes 400 ms after the last answer: within the timeout every time, although
    // the connection is older than the timeout by the third.
    for _ in 0..3 {
        let status = exchange(Duration::from_millis(400));
        assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    }
    // Then half a request: the connection closes about 600 ms after the last answer.
    let started = Instant::now();
    writer
        .write_all(b"GET /api/rel/sleep/1 HTTP/1.1\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    drop(backend);
}

// Blocking socket I/O below: the server needs threads of its own.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_connections_queues_extra_connections() {
    let backend = rel(json!({ "backend": { "server": { "maxConnections": 1 } } })).await;
    let address = backend.backend().local_addr();
    // the first connection holds the only slot
    let mut first = TcpStream::connect(address).unwrap();
    first
        .write_all(b"GET /api/rel/sleep/1 HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(first.try_clone().unwrap());
    let mut status = String::new();
    reader.read_line(&mut status).unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_millis(700))
        .build()
        .unwrap();
    let waiting = client.get(backend.url("/api/rel/sleep/1")).send().await;
    assert!(
        waiting.is_err(),
        "the second connection waits while the first is open"
    );
    drop(reader);
    drop(first);
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(
        client
            .get(backend.url("/api/rel/sleep/1"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

// Blocking socket I/O below: the server needs threads of its own.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_say_whether_their_connection_stays_open_as_nodes_server_does() {
    let backend = rel(json!({})).await;
    // A JSON answer (its headers come from a template), an error and a health answer alike.
    for path in [
        "/api/rel/big",
        "/api/rel/sleep/1",
        "/api/rel/nope",
        "/.backstage/health/v1/liveness",
    ] {
        let res = backend.get(path).send().await;
        assert_eq!(res.header("connection"), Some("keep-alive"), "{path}");
        assert_eq!(res.header("keep-alive"), Some("timeout=5"), "{path}");
    }
    let head = |request: &str| answer_head(&backend, request);
    // Last, after `Vary`, where Node's server writes them.
    let json = head("GET /api/rel/big HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(
        json.contains(
            "\r\nvary: Accept-Encoding\r\nconnection: keep-alive\r\nkeep-alive: timeout=5\r\n"
        ),
        "{json}"
    );
    // HTTP/1.0 keeps its connection only where it asks to.
    let kept = head("GET /api/rel/sleep/1 HTTP/1.0\r\nconnection: keep-alive\r\n\r\n");
    assert!(kept.contains("\r\nconnection: keep-alive\r\n"), "{kept}");
    assert!(kept.contains("\r\nkeep-alive: timeout=5\r\n"), "{kept}");
    for request in [
        "GET /api/rel/sleep/1 HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        "GET /api/rel/sleep/1 HTTP/1.1\r\nhost: x\r\nconnection: Keep-Alive, Close\r\n\r\n",
        "GET /api/rel/nope HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
        "GET /api/rel/sleep/1 HTTP/1.0\r\n\r\n",
    ] {
        let head = head(request);
        assert!(head.starts_with("HTTP/1."), "{request:?}: {head}");
        assert!(!head.contains("keep-alive"), "{request:?}: {head}");
    }

    // A handler that closes the connection itself: its answer promises nothing more.
    let closing = head("GET /api/rel/closing HTTP/1.1\r\nhost: x\r\n\r\n");
    assert!(closing.contains("\r\nconnection: close\r\n"), "{closing}");
    assert!(!closing.contains("keep-alive"), "{closing}");

    // The timeout it announces is `keepAliveTimeout`'s, in whole seconds, as Node's.
    let backend = rel(json!({ "backend": { "server": { "keepAliveTimeout": "2500ms" } } })).await;
    let res = backend.get("/api/rel/sleep/1").send().await;
    assert_eq!(res.header("keep-alive"), Some("timeout=2"));

    let backend = rel(json!({ "backend": { "server": { "keepAlive": false } } })).await;
    for path in ["/api/rel/sleep/1", "/api/rel/nope"] {
        let res = backend.get(path).send().await;
        assert_eq!(res.header("connection"), Some("close"), "{path}");
        assert_eq!(res.header("keep-alive"), None, "{path}");
    }
}

/// The status line and headers of the answer to `request`, sent as it is.
fn answer_head(backend: &TestBackend, request: &str) -> String {
    let mut stream = TcpStream::connect(backend.backend().local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let answer = answer_on(&mut stream);
    answer
        .split("\r\n\r\n")
        .next()
        .unwrap_or_default()
        .to_owned()
        + "\r\n"
}

#[backstage::test]
async fn cors_follows_backend_cors() {
    let backend = rel(json!({ "backend": { "cors": {
        "origin": ["https://*.example.com", "http://localhost:3000"],
        "methods": ["GET", "POST"],
        "credentials": true,
        "maxAge": 600,
        "exposedHeaders": ["x-total"],
    } } }))
    .await;
    let preflight = |origin: &str| {
        backend
            .request(backstage::axum::http::Method::OPTIONS, "/api/rel/echo")
            .header("origin", origin)
            .header("access-control-request-method", "POST")
            .header("access-control-request-headers", "content-type")
            .send()
    };
    let res = preflight("https://app.example.com").await;
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
    assert_eq!(res.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(res.header("access-control-max-age"), Some("600"));
    assert_eq!(res.header("access-control-allow-methods"), Some("GET,POST"));
    assert_eq!(
        res.header("access-control-allow-headers"),
        Some("content-type")
    );
    // Answered by CORS, as the `cors` middleware does: 204, Backstage's security headers, and
    // `Vary` naming what the answer depended on.
    assert_eq!(res.status(), 204);
    assert_eq!(res.header("x-frame-options"), Some("SAMEORIGIN"));
    assert_eq!(
        res.header("vary"),
        Some("Origin, Access-Control-Request-Headers")
    );
    assert_eq!(res.text(), "");
    // From another origin, or without one, CORS does not answer: the plugin's auth barrier does.
    let res = preflight("https://evil.example.org").await;
    assert_eq!(res.header("access-control-allow-origin"), None);
    assert_eq!(res.header("access-control-allow-credentials"), None);
    assert_eq!(res.status(), 401);
    let res = backend
        .request(backstage::axum::http::Method::OPTIONS, "/api/rel/echo")
        .send()
        .await;
    assert_eq!(res.status(), 401);
    assert_eq!(res.header("vary"), Some("Accept-Encoding"));
    let res = backend.get("/api/rel/sleep/1").send().await;
    assert_eq!(res.header("access-control-allow-credentials"), None);
    let res = backend
        .get("/api/rel/sleep/1")
        .header("origin", "http://localhost:3000")
        .send()
        .await;
    assert_eq!(
        res.header("access-control-allow-origin"),
        Some("http://localhost:3000")
    );
    assert_eq!(res.header("access-control-expose-headers"), Some("x-total"));
    assert_eq!(res.header("vary"), Some("Origin, Accept-Encoding"));
    // A fresh copy of JSON from an allowed origin: 304, varying by origin only (no type left
    // for `compression` to vary on), as Express answers it.
    let cors_get = |etag: Option<String>| {
        let request = backend
            .get("/api/rel/big")
            .header("origin", "http://localhost:3000");
        match etag {
            Some(etag) => request.header("if-none-match", &etag),
            None => request,
        }
    };
    let first = cors_get(None).send().await;
    assert_eq!(first.header("vary"), Some("Origin, Accept-Encoding"));
    let etag = first.header("etag").expect("an ETag").to_owned();
    let fresh = cors_get(Some(etag)).send().await;
    assert_eq!(fresh.status(), 304);
    assert_eq!(fresh.header("vary"), Some("Origin"));

    let without = rel(json!({})).await;
    let res = without
        .get("/api/rel/sleep/1")
        .header("origin", "http://localhost:3000")
        .send()
        .await;
    assert_eq!(
        res.header("access-control-allow-origin"),
        None,
        "no backend.cors, no CORS headers"
    );
}

/// `body` as sent, before `encoding`.
fn decode(encoding: Option<&str>, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    match encoding {
        Some("gzip") => flate2::read::GzDecoder::new(body).read_to_end(&mut out),
        Some("deflate") => flate2::read::ZlibDecoder::new(body).read_to_end(&mut out),
        Some("br") => brotli_decompressor::Decompressor::new(body, 4096).read_to_end(&mut out),
        _ => return body.to_vec(),
    }
    .unwrap();
    out
}

#[backstage::test]
async fn answers_are_compressed_as_the_client_prefers() {
    let backend = rel(json!({})).await;
    let get = |encoding: &str| {
        let request = backend.get("/api/rel/big");
        if encoding.is_empty() {
            request
        } else {
            request.header("accept-encoding", encoding)
        }
    };
    let plain = get("").send().await;
    assert_eq!(plain.header("content-encoding"), None);
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    let expected = plain.text().into_bytes();
    assert!(expected.len() > 1024);
    for (asked, sent) in [
        ("gzip", "gzip"),
        ("deflate", "deflate"),
        ("br", "br"),
        ("gzip, deflate, br", "br"),
        ("gzip;q=0.5, deflate", "deflate"),
    ] {
        let res = get(asked).send().await;
        assert_eq!(res.header("content-encoding"), Some(sent), "{asked}");
        assert_eq!(res.header("vary"), Some("Accept-Encoding"));
        let raw = res.bytes();
        assert!(
            raw.len() < expected.len() / 2,
            "{asked}: {} bytes",
            raw.len()
        );
        assert_eq!(decode(Some(sent), raw), expected, "{asked}");
    }
    // Below a kilobyte, and on HEAD, nothing is compressed; the answer still varies.
    let small = backend
        .get("/api/rel/fail")
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert_eq!(small.header("content-encoding"), None);
    assert_eq!(small.header("vary"), Some("Accept-Encoding"));
    let head = backend
        .request(backstage::axum::http::Method::HEAD, "/api/rel/big")
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert_eq!(head.header("content-encoding"), None);
    // An unknown path answers without a body or a type: nothing to vary.
    let missing = backend.get("/nothing").send().await;
    assert_eq!(missing.header("vary"), None);
    // Nor does JSON the route says not to transform: sent as it is, without `Vary`.
    let kept = backend
        .get("/api/rel/no-transform")
        .header("accept-encoding", "gzip")
        .send()
        .await;
    assert_eq!(kept.header("content-encoding"), None);
    assert_eq!(kept.header("vary"), None);
    assert_eq!(
        kept.header("content-type"),
        Some("application/json; charset=utf-8")
    );
}

#[backstage::test]
async fn json_answers_carry_etags_and_fresh_copies_get_304() {
    let backend = rel(json!({})).await;
    let first = backend.get("/api/rel/big").send().await;
    assert_eq!(
        first.header("content-type"),
        Some("application/json; charset=utf-8")
    );
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert!(etag.starts_with("W/\""), "{etag}");
    let again = backend
        .get("/api/rel/big")
        .header("if-none-match", &etag)
        .send()
        .await;
    assert_eq!(again.status(), 304);
    assert_eq!(again.text(), "");
    assert_eq!(again.header("content-type"), None);
    // Express's `compression` sees no type on a 304, so it adds no `Vary`.
    assert_eq!(again.header("vary"), None);
    assert_eq!(again.header("x-frame-options"), Some("SAMEORIGIN"));
    let reload = backend
        .get("/api/rel/big")
        .header("if-none-match", &etag)
        .header("cache-control", "no-cache")
        .send()
        .await;
    assert_eq!(reload.status(), 200);
    let other = backend
        .get("/api/rel/big")
        .header("if-none-match", "W/\"1-other\"")
        .send()
        .await;
    assert_eq!(other.status(), 200);
    // Error bodies have ETags too, and are never 304.
    let failed = backend.get("/api/rel/fail").send().await;
    let etag = failed.header("etag").expect("an ETag").to_owned();
    let failed = backend
        .get("/api/rel/fail")
        .header("if-none-match", &etag)
        .send()
        .await;
    assert_eq!(failed.status(), 400);
}

#[backstage::test]
async fn paths_are_routed_as_express_routes_them() {
    let backend = rel(json!({})).await;
    for path in ["/api/rel/sleep/1", "/api/rel/sleep/1/", "/api/rel//sleep/1"] {
        let res = backend.get(path).send().await;
        assert_eq!(
            (res.status().as_u16(), res.text().as_str()),
            (200, "slept 1 ms"),
            "{path}"
        );
    }
    assert_eq!(backend.get("/api/rel/sleep/1//").send().await.status(), 401);
    // Error bodies name the URL as the plugin's router sees it.
    let res = backend.get("/api/rel/fail?why=1").send().await;
    let body: serde_json::Value = res.json();
    assert_eq!(body["request"]["url"], "/fail?why=1");
}

#[backstage::test]
async fn csp_overrides_and_health_headers() {
    let backend = rel(json!({ "backend": {
        "csp": { "connect-src": ["'self'", "https://api.example.com"], "upgrade-insecure-requests": false },
        "health": { "headers": { "x-health-check": "backstage" } },
    } }))
    .await;
    let res = backend.get("/api/rel/sleep/1").send().await;
    let csp = res.header("content-security-policy").unwrap();
    assert!(
        csp.ends_with("connect-src 'self' https://api.example.com"),
        "{csp}"
    );
    assert!(!csp.contains("upgrade-insecure-requests"), "{csp}");
    assert_eq!(res.header("x-health-check"), None);
    for probe in ["liveness", "readiness"] {
        let res = backend
            .get(&format!("/.backstage/health/v1/{probe}"))
            .send()
            .await;
        assert_eq!(res.header("x-health-check"), Some("backstage"), "{probe}");
    }
}

#[backstage::test]
async fn rate_limits_answer_429_in_backstages_body() {
    let backend = rel(json!({ "backend": { "rateLimit": { "incomingRequestLimit": 3, "window": "1m", "ipAllowList": [] } } })).await;
    for _ in 0..3 {
        assert_eq!(backend.get("/api/rel/sleep/1").send().await.status(), 200);
    }
    let res = backend.get("/api/rel/sleep/1").send().await;
    assert_eq!(res.status(), 429);
    assert_eq!(
        res.text(),
        r#"{"error":{"name":"Error","message":"Too many requests, please try again later"},"response":{"statusCode":429}}"#
    );
    assert!(res.header("retry-after").is_some());

    // loopback is on the default allow list
    let backend = rel(json!({ "backend": { "rateLimit": { "incomingRequestLimit": 1 } } })).await;
    for _ in 0..3 {
        assert_eq!(backend.get("/api/rel/sleep/1").send().await.status(), 200);
    }

    // per plugin, and failed requests not counted
    let backend = rel(
        json!({ "backend": { "rateLimit": { "global": false, "plugin": { "rel": {
        "incomingRequestLimit": 2, "ipAllowList": [], "skipFailedRequests": true } } } } }),
    )
    .await;
    for _ in 0..5 {
        assert_eq!(backend.get("/api/rel/fail").send().await.status(), 400);
    }
    assert_eq!(backend.get("/api/rel/sleep/1").send().await.status(), 200);
    assert_eq!(backend.get("/api/rel/sleep/1").send().await.status(), 200);
    assert_eq!(backend.get("/api/rel/sleep/1").send().await.status(), 429);
    assert_eq!(
        backend
            .get("/.backstage/health/v1/liveness")
            .send()
            .await
            .status(),
        200,
        "other paths are not limited"
    );
}

#[backstage::test]
async fn https_with_a_pem_certificate() {
    let cert = include_str!("../../fixtures/test-cert.pem");
    let key = include_str!("../../fixtures/test-key.pem");
    let backend =
        rel(json!({ "backend": { "https": { "certificate": { "cert": cert, "key": key } } } }))
            .await;
    let address = backend.backend().local_addr();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(cert.as_bytes()).unwrap())
        .build()
        .unwrap();
    let res = client
        .get(format!(
            "https://localhost:{}/api/rel/sleep/1",
            address.port()
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.text().await.unwrap(), "slept 1 ms");
    let plain = reqwest::get(format!(
        "http://127.0.0.1:{}/api/rel/sleep/1",
        address.port()
    ))
    .await;
    assert!(
        plain.is_err() || !plain.unwrap().status().is_success(),
        "plain HTTP is not served"
    );

    let err = TestBackend::builder()
        .plugin::<Rel>()
        .config(json!({ "backend": { "https": { "certificate": { "cert": "not a cert", "key": key } } } }))
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("backend.https.certificate.cert"),
        "{err}"
    );
}

// ---- real processes

pub(crate) fn spawn_slow(
    dir: &std::path::Path,
    config: &str,
    env: &[(&str, &str)],
) -> (Child, std::sync::mpsc::Receiver<String>) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("app-config.yaml"), config).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_slow-backend"));
    command
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env_remove("LOG_LEVEL")
        .env_remove("NODE_ENV");
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

pub(crate) fn wait_for(rx: &std::sync::mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let mut lines = Vec::new();
    loop {
        match rx.recv_timeout(Duration::from_secs(20)) {
            Ok(line) => {
                let done = line.contains(needle);
                lines.push(line);
                if done {
                    return lines;
                }
            }
            Err(_) => panic!("no line with {needle:?} in:\n{}", lines.join("\n")),
        }
    }
}

/// A request's status and body, or how it failed.
type Outcome = Result<(u16, String), String>;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The slow backend on `port`, logging its requests, with `serverShutdownDelay` `delay`; once
/// it has started.
fn slow_backend_for_shutdown(
    name: &str,
    port: u16,
    delay: &str,
) -> (Child, std::sync::mpsc::Receiver<String>) {
    let dir = std::env::temp_dir().join(format!("backstage-{name}-{}", std::process::id()));
    let config = format!(
        "backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n  lifecycle:\n    serverShutdownDelay: {delay}\n  logger:\n    level: warn\n"
    );
    let (child, rx) = spawn_slow(&dir, &config, &[("LOG_LEVEL", "info")]);
    wait_for(&rx, "Backend started in");
    (child, rx)
}

/// How a request ended: its status and body, `refused` before any connection, or cut.
async fn outcome(response: reqwest::Result<reqwest::Response>) -> Outcome {
    match response {
        Ok(res) => {
            let status = res.status().as_u16();
            res.text()
                .await
                .map(|body| (status, body))
                .map_err(|e| format!("cut mid-response: {e}"))
        }
        Err(e) if e.is_connect() => Err("refused".to_owned()),
        Err(e) => Err(format!("failed after connecting: {e:?}")),
    }
}

fn is_refused(outcome: &Outcome) -> bool {
    matches!(outcome, Err(e) if e == "refused")
}

/// The outcomes that are neither `body` served with 200 nor refused.
fn lost<'a>(results: &'a [Outcome], body: &str) -> Vec<&'a Outcome> {
    results
        .iter()
        .filter(|r| !matches!(r, Ok((200, b)) if b == body) && !is_refused(r))
        .collect()
}

/// Up to 40 GETs of `url` one after another, until `stop`; records how each ended.
async fn send_until_stopped(
    client: reqwest::Client,
    url: String,
    results: Arc<Mutex<Vec<Outcome>>>,
    stop: Arc<AtomicBool>,
) {
    for _ in 0..40 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let outcome = outcome(client.get(&url).send().await).await;
        results.lock().unwrap().push(outcome);
    }
}

#[backstage::test]
async fn sigterm_under_load_drops_no_accepted_request() {
    let port = free_port();
    let (child, rx) = slow_backend_for_shutdown("sigterm", port, "600ms");
    let base = format!("http://127.0.0.1:{port}");
    // a fresh connection per request: each either is accepted and answered, or refused
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let stop_sending = Arc::new(AtomicBool::new(false));
    let url = format!("{base}/api/slow/sleep/200");
    let workers: Vec<_> = (0..50)
        .map(|_| {
            let (client, url) = (client.clone(), url.clone());
            let (results, stop) = (results.clone(), stop_sending.clone());
            tokio::spawn(send_until_stopped(client, url, results, stop))
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(700)).await;
    crate::process::terminate(&child);
    // during the delay, readiness is 503 and requests are still served
    tokio::time::sleep(Duration::from_millis(150)).await;
    let readiness = client
        .get(format!("{base}/.backstage/health/v1/readiness"))
        .send()
        .await
        .unwrap();
    assert_eq!(readiness.status(), 503);
    assert_eq!(
        readiness.text().await.unwrap(),
        r#"{"message":"Backend is shuttting down","status":"error"}"#
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop_sending.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let results = results.lock().unwrap();
    let served = results
        .iter()
        .filter(|r| matches!(r, Ok((200, body)) if body == "slept 200 ms"))
        .count();
    let refused = results.iter().filter(|r| is_refused(r)).count();
    let bad = lost(&results, "slept 200 ms");
    assert!(
        bad.is_empty(),
        "{} bad outcomes, e.g. {:?}",
        bad.len(),
        bad.iter().take(3).collect::<Vec<_>>()
    );
    assert!(served >= 100, "served {served}");
    assert!(
        refused > 0,
        "some requests came after the server stopped accepting"
    );
    // Every request served has its log line, written off the request path and flushed
    // before the process ended.
    let logged = rx
        .iter()
        .filter(|line| line.contains(r#""GET /api/slow/sleep/200 HTTP/1.1" 200"#))
        .count();
    assert_eq!(logged, served, "request log lines");
}

#[backstage::test]
async fn a_second_signal_exits_at_once_and_writes_the_waiting_log_lines_first() {
    let port = free_port();
    let (child, rx) = slow_backend_for_shutdown("second-signal", port, "10s");
    crate::process::terminate(&child);
    wait_for(&rx, "Shutting down");
    // Requests are still served during the shutdown delay; the lines of the last ones wait
    // for the log writer (which gathers lines for a while) when the second signal comes.
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/api/slow/sleep/0");
    let mut served = 0;
    for _ in 0..20 {
        let res = client.get(&url).send().await.unwrap();
        assert_eq!(res.status(), 200);
        served += 1;
    }
    crate::process::terminate(&child);
    let output = child.wait_with_output().unwrap();
    // At once: not after the 10 s delay and the rest of the shutdown.
    assert_eq!(output.status.code(), Some(130));
    let logged = rx
        .iter()
        .filter(|line| line.contains(r#""GET /api/slow/sleep/0 HTTP/1.1" 200"#))
        .count();
    assert_eq!(logged, served, "request log lines");
}

#[backstage::test]
async fn a_handler_that_always_panics_does_not_hurt_the_others() {
    let dir = std::env::temp_dir().join(format!("backstage-panics-{}", std::process::id()));
    let port = free_port();
    let (mut child, rx) = spawn_slow(
        &dir,
        &format!("backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n"),
        &[("LOG_LEVEL", "error")],
    );
    let _ = rx.recv_timeout(Duration::from_secs(1));
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let mut ready = false;
    for _ in 0..100 {
        if client
            .get(format!("{base}/.backstage/health/v1/readiness"))
            .send()
            .await
            .is_ok_and(|r| r.status() == 200)
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready);
    let mut tasks = Vec::new();
    for i in 0..200 {
        let (client, base) = (client.clone(), base.clone());
        tasks.push(tokio::spawn(async move {
            let path = if i % 2 == 0 {
                "/api/slow/panic"
            } else {
                "/api/slow/sleep/5"
            };
            client
                .get(format!("{base}{path}"))
                .send()
                .await
                .map(|r| r.status().as_u16())
                .unwrap_or(0)
        }));
    }
    let mut statuses = Vec::new();
    for task in tasks {
        statuses.push(task.await.unwrap());
    }
    assert_eq!(statuses.iter().filter(|s| **s == 500).count(), 100);
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 100);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[backstage::test]
async fn json_lines_inside_spans_carry_the_span() {
    let dir = std::env::temp_dir().join(format!("backstage-spans-{}", std::process::id()));
    let port = free_port();
    let config = format!("backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n");
    let (child, rx) = spawn_slow(&dir, &config, &[("NODE_ENV", "production")]);
    wait_for(&rx, "Backend started in");
    let answer = reqwest::get(format!("http://127.0.0.1:{port}/api/slow/spanned"))
        .await
        .unwrap();
    assert_eq!(answer.text().await.unwrap(), "found");
    let lines = wait_for(&rx, "found it");
    let line: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(line["message"], "found it");
    assert_eq!(line["plugin"], "slow");
    assert_eq!(
        line["spans"],
        serde_json::json!([{"item": 7, "name": "lookup"}])
    );
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
}

#[backstage::test]
async fn logs_request_lines_json_in_production_level_and_meta() {
    let dir = std::env::temp_dir().join(format!("backstage-logs-{}", std::process::id()));
    let port = free_port();
    let config = format!(
        "backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n  logger:\n    level: info\n    meta:\n      service: backstage-test\n      region: eu\n"
    );
    let (child, rx) = spawn_slow(&dir, &config, &[("NODE_ENV", "production")]);
    let lines = wait_for(&rx, "Backend started in");
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not JSON: {line}"));
        assert_eq!(value["service"], "backstage-test", "{line}");
        assert_eq!(value["region"], "eu", "{line}");
    }
    let _ = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/api/slow/sleep/1"))
        .header("user-agent", "tester/1")
        .send()
        .await
        .unwrap();
    let lines = wait_for(&rx, "incomingRequest");
    let line = lines.last().unwrap();
    assert!(
        line.contains(r#"\"GET /api/slow/sleep/1 HTTP/1.1\" 200 10 \"-\" \"tester/1\""#),
        "{line}"
    );
    // Its members as backend-defaults' request log gives them: the router's own service (the
    // rest of the meta kept), the level in lower case, the request's fields.
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(value["service"], "rootHttpRouter", "{line}");
    assert_eq!(value["region"], "eu", "{line}");
    assert_eq!(value["level"], "info", "{line}");
    assert_eq!(value["type"], "incomingRequest", "{line}");
    assert_eq!(value["method"], "GET", "{line}");
    assert_eq!(value["url"], "/api/slow/sleep/1", "{line}");
    assert_eq!(value["status"], 200, "{line}");
    assert_eq!(value["httpVersion"], "1.1", "{line}");
    assert_eq!(value["userAgent"], "tester/1", "{line}");
    assert_eq!(value["contentLength"], 10, "{line}");
    assert!(value.get("referrer").is_none(), "{line}");
    let date = value["date"].as_str().unwrap_or_default();
    assert!(
        date.len() == 24 && date.ends_with('Z') && line.contains(&format!("[{date}]")),
        "{line}"
    );
    // A compressed answer's length is not known, as after Backstage's `compression`.
    let res = reqwest::Client::builder()
        .no_gzip()
        .build()
        .unwrap()
        .get(format!("http://127.0.0.1:{port}/api/slow/big"))
        .header("accept-encoding", "gzip")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-encoding"], "gzip");
    let lines = wait_for(&rx, "/api/slow/big");
    let line = lines.last().unwrap();
    let value: serde_json::Value = serde_json::from_str(line).unwrap();
    assert!(
        line.contains(r#"/api/slow/big HTTP/1.1\" 200 0 "#),
        "{line}"
    );
    assert!(value.get("contentLength").is_none(), "{line}");
    // The bytes of error bodies and health answers, which carry no Content-Length header
    // until hyper writes them; and credentials in a query string never reach the log.
    for (path, logged_path) in [
        ("/api/slow/nothing-here", "/api/slow/nothing-here"),
        (
            "/.backstage/health/v1/readiness",
            "/.backstage/health/v1/readiness",
        ),
        (
            "/api/slow/sleep/1?token=s3cr3t-in-url&page=2",
            "/api/slow/sleep/1?token=[REDACTED]&page=2",
        ),
    ] {
        let res = reqwest::Client::new()
            .get(format!("http://127.0.0.1:{port}{path}"))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let length = res.bytes().await.unwrap().len();
        assert!(length > 0, "{path}");
        let lines = wait_for(&rx, "incomingRequest");
        let line = lines.last().unwrap();
        let expected = format!(r#"{logged_path} HTTP/1.1\" {status} {length} "#);
        assert!(line.contains(&expected), "{expected} in {line}");
        assert!(!line.contains("s3cr3t"), "{line}");
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();

    // the level from config, and LOG_LEVEL over it
    let config = format!(
        "backend:\n  listen: {{ host: 127.0.0.1, port: {} }}\n  logger:\n    level: warn\n",
        free_port()
    );
    let (child, rx) = spawn_slow(&dir, &config, &[]);
    std::thread::sleep(Duration::from_millis(800));
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
    let quiet: Vec<String> = rx.try_iter().collect();
    assert!(
        quiet.iter().all(|l| !l.contains("Listening on")),
        "{quiet:?}"
    );
    let (child, rx) = spawn_slow(&dir, &config, &[("LOG_LEVEL", "info")]);
    wait_for(&rx, "Listening on");
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait_with_output();
}

#[backstage::test]
async fn requests_wait_for_start_up_up_to_the_pause_timeout() {
    // carmen-like plugin that takes 600 ms to start; requests sent meanwhile are held
    let port = free_port();
    let config = json!({ "backend": { "listen": { "host": "127.0.0.1", "port": port }, "lifecycle": { "startupRequestPauseTimeout": "5s" } } });
    let starting = tokio::spawn(
        TestBackend::builder()
            .plugin::<SlowStart>()
            .config(config)
            .start(),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let res = reqwest::get(format!("http://127.0.0.1:{port}/api/slow-start/hello"))
        .await
        .unwrap();
    assert_eq!(
        res.status(),
        200,
        "held until the plugin started, then served"
    );
    let _backend = starting.await.unwrap().unwrap();

    let port = free_port();
    let config = json!({ "backend": { "listen": { "host": "127.0.0.1", "port": port }, "lifecycle": { "startupRequestPauseTimeout": "100ms" } } });
    let starting = tokio::spawn(
        TestBackend::builder()
            .plugin::<SlowStart>()
            .config(config)
            .start(),
    );
    tokio::time::sleep(Duration::from_millis(150)).await;
    let res = reqwest::get(format!("http://127.0.0.1:{port}/api/slow-start/hello"))
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(
        res.text()
            .await
            .unwrap()
            .contains("Service has not started up yet")
    );
    let _backend = starting.await.unwrap().unwrap();
}

/// Takes 600 ms to start.
#[backend_plugin(id = "slow-start")]
pub struct SlowStart;

#[routes]
impl SlowStart {
    #[init]
    async fn init(&self) {
        tokio::time::sleep(Duration::from_millis(600)).await;
    }

    #[route(get, "/hello", auth = "unauthenticated")]
    async fn hello(&self) -> &'static str {
        "hello"
    }
}

#[backstage::test]
async fn a_redis_store_shares_rate_limit_counts_between_instances() {
    let Ok(url) = std::env::var("BACKSTAGE_TEST_CACHE_REDIS_CONNECTION_STRING") else {
        let line = "reliability: skipped the Redis rate limit store: BACKSTAGE_TEST_CACHE_REDIS_CONNECTION_STRING is not set\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        return;
    };
    let config = json!({ "backend": { "rateLimit": {
        "global": false,
        "store": { "type": "redis", "connection": url },
        "plugin": { "rel": { "incomingRequestLimit": 3, "window": "5s", "ipAllowList": [] } },
    } } });
    // clear what an earlier run of this test may have left for this address
    let _ = redis_flush(&url).await;
    let first = rel(config.clone()).await;
    let second = rel(config).await;
    assert_eq!(first.get("/api/rel/sleep/1").send().await.status(), 200);
    assert_eq!(second.get("/api/rel/sleep/1").send().await.status(), 200);
    assert_eq!(first.get("/api/rel/sleep/1").send().await.status(), 200);
    let res = second.get("/api/rel/sleep/1").send().await;
    assert_eq!(
        res.status(),
        429,
        "the fourth request across both instances is over the limit"
    );
    let wait: u64 = res.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=5).contains(&wait), "{wait}");

    let broken = json!({ "backend": { "rateLimit": {
        "store": { "type": "redis", "connection": "redis://127.0.0.1:1" }, "passOnStoreError": true,
        "incomingRequestLimit": 1, "ipAllowList": [],
    } } });
    let backend = rel(broken).await;
    assert_eq!(
        backend.get("/api/rel/sleep/1").send().await.status(),
        200,
        "passOnStoreError lets requests through"
    );
    assert_eq!(backend.get("/api/rel/sleep/1").send().await.status(), 200);
}

/// Deletes this test's key (speaking Redis's protocol directly, to need no client here).
async fn redis_flush(url: &str) -> Option<()> {
    let mut stream =
        tokio::net::TcpStream::connect(url.trim_start_matches("redis://").trim_end_matches('/'))
            .await
            .ok()?;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let key = "backstage:rate-limit:plugin:rel:127.0.0.1";
    let command = format!("*2\r\n$3\r\nDEL\r\n${}\r\n{key}\r\n", key.len());
    stream.write_all(command.as_bytes()).await.ok()?;
    let mut reply = [0u8; 16];
    let _ = stream.read(&mut reply).await.ok()?;
    Some(())
}

#[backstage::test]
async fn requests_longer_than_the_grace_period_are_cut_off() {
    let dir = std::env::temp_dir().join(format!("backstage-grace-{}", std::process::id()));
    let port = free_port();
    let config = format!(
        "backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n  lifecycle:\n    shutdownGracePeriod: 500ms\n"
    );
    let (child, rx) = spawn_slow(&dir, &config, &[("LOG_LEVEL", "info")]);
    wait_for(&rx, "Backend started in");
    let slow = tokio::spawn(reqwest::get(format!(
        "http://127.0.0.1:{port}/api/slow/sleep/10000"
    )));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped after {:?}",
        started.elapsed()
    );
    let outcome = slow.await.unwrap();
    assert!(
        outcome.is_err() || outcome.is_ok_and(|r| r.status() != 200),
        "the 10 s request was cut off"
    );
}

// ---- idle connections, header limits, draining

/// Connects to `backend`, sends `bytes`, and returns how long the server took to close the
/// connection, reading (and discarding) whatever it sent.
fn closed_after(backend: &TestBackend, bytes: &[u8]) -> Duration {
    let mut stream = TcpStream::connect(backend.backend().local_addr()).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let started = Instant::now();
    stream.write_all(bytes).unwrap();
    let mut sink = Vec::new();
    let _ = stream.read_to_end(&mut sink);
    started.elapsed()
}

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[test]
fn a_connection_that_never_sends_a_request_is_closed_after_the_headers_timeout() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = runtime.block_on(rel(
        json!({ "backend": { "server": { "headersTimeout": "500ms", "keepAliveTimeout": "60s" } } }),
    ));
    // Nothing at all; only the HTTP/2 preface; an HTTP/2 header block that never ends (a HEADERS
    // frame for stream 1 without END_HEADERS, `:method GET`, and no CONTINUATION).
    let unfinished_headers = [H2_PREFACE, b"\x00\x00\x01\x01\x00\x00\x00\x00\x01\x82"].concat();
    for (what, bytes) in [
        ("nothing", &b""[..]),
        ("the HTTP/2 preface", H2_PREFACE),
        ("an unfinished HTTP/2 header block", &unfinished_headers[..]),
    ] {
        let elapsed = closed_after(&backend, bytes);
        assert!(
            elapsed >= Duration::from_millis(450) && elapsed < Duration::from_secs(4),
            "{what}: closed after {elapsed:?}"
        );
    }
    drop(backend);
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = runtime.block_on(rel(
        json!({ "backend": { "server": { "keepAliveTimeout": "400ms" } } }),
    ));
    // A request slower than the timeout is not cut: the clock runs only while nothing is in
    // flight. Then the connection stays idle and closes.
    let elapsed = closed_after(
        &backend,
        b"GET /api/rel/sleep/900 HTTP/1.1\r\nhost: x\r\n\r\n",
    );
    assert!(
        elapsed >= Duration::from_millis(1250) && elapsed < Duration::from_secs(5),
        "closed after {elapsed:?}"
    );
    drop(backend);
}

// Blocking socket I/O below: the server needs threads of its own.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_cannot_hold_every_connection_slot() {
    let backend = rel(json!({ "backend": { "server": {
        "maxConnections": 3, "headersTimeout": "400ms"
    } } }))
    .await;
    let address = backend.backend().local_addr();
    let idle: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(address).unwrap())
        .collect();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    // Without the first-request deadline the idle sockets hold every slot and this times out.
    let res = client
        .get(backend.url("/api/rel/sleep/1"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(idle);
}

#[test]
fn headers_over_the_limit_get_431() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let exchange = |backend: &TestBackend, header_bytes: usize| {
        status_line(
            backend.backend().local_addr(),
            &format!(
                "GET /api/rel/sleep/1 HTTP/1.1\r\nhost: x\r\nx-filler: {}\r\nconnection: close\r\n\r\n",
                "a".repeat(header_bytes)
            ),
        )
    };
    let backend = runtime.block_on(rel(json!({})));
    assert!(exchange(&backend, 15_000).starts_with("HTTP/1.1 200"));
    assert!(
        exchange(&backend, 17_000).starts_with("HTTP/1.1 431"),
        "16 KiB by default, as Node"
    );
    assert!(exchange(&backend, 380_000).starts_with("HTTP/1.1 431"));
    drop(backend);
    let backend = runtime.block_on(rel(
        json!({ "backend": { "server": { "maxHeaderSize": 65536 } } }),
    ));
    assert!(exchange(&backend, 40_000).starts_with("HTTP/1.1 200"));
    drop(backend);
}

#[backstage::test]
async fn a_header_limit_below_8_kib_is_refused_at_start_up() {
    let err = TestBackend::builder()
        .plugin::<Rel>()
        .config(json!({ "backend": { "server": { "maxHeaderSize": 1024 } } }))
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("backend.server.maxHeaderSize"),
        "{err}"
    );
}

#[backstage::test]
async fn sigterm_under_keep_alive_load_loses_no_request() {
    let port = free_port();
    // `_rx` lives to the end: while it does, the backend's log lines are read off its stdout.
    let (child, _rx) = slow_backend_for_shutdown("keepalive", port, "1s");
    let base = format!("http://127.0.0.1:{port}");
    let results: Arc<Mutex<Vec<Outcome>>> = Arc::default();
    let closing = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..50 {
        // One keep-alive client each, as a load balancer or a browser holds them.
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(20))
            .build()
            .unwrap();
        let (base, results, closing) = (base.clone(), results.clone(), closing.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let response = client.get(format!("{base}/api/slow/sleep/50")).send().await;
                let says_close = response.as_ref().is_ok_and(|res| {
                    res.headers()
                        .get("connection")
                        .is_some_and(|v| v == "close")
                });
                // An answer that closes its connection promises nothing of it.
                let promises = response
                    .as_ref()
                    .is_ok_and(|res| res.headers().contains_key("keep-alive"));
                assert!(!(says_close && promises), "close with a keep-alive timeout");
                if says_close {
                    closing.fetch_add(1, Ordering::Relaxed);
                }
                let outcome = outcome(response).await;
                let refused = is_refused(&outcome);
                results.lock().unwrap().push(outcome);
                if refused {
                    break;
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    crate::process::terminate(&child);
    for worker in workers {
        worker.await.unwrap();
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(0));
    let results = results.lock().unwrap();
    let bad = lost(&results, "slept 50 ms");
    assert!(
        bad.is_empty(),
        "{} of {} requests lost, e.g. {:?}",
        bad.len(),
        results.len(),
        bad.iter().take(3).collect::<Vec<_>>()
    );
    assert!(
        closing.load(Ordering::Relaxed) >= 50,
        "responses during the shutdown delay say Connection: close"
    );
}

#[backstage::test]
async fn a_failing_rate_limit_store_answers_503_not_429() {
    let broken = json!({ "backend": { "rateLimit": {
        "store": { "type": "redis", "connection": "redis://127.0.0.1:1" },
        "incomingRequestLimit": 100, "ipAllowList": [],
    } } });
    let backend = rel(broken).await;
    let res = backend.get("/api/rel/sleep/1").send().await;
    assert_eq!(
        res.status(),
        503,
        "a store failure is not a rate limit verdict"
    );
    assert_eq!(
        res.error(),
        (
            "ServiceUnavailableError".to_owned(),
            "The rate limit store is unavailable".to_owned()
        )
    );
}

#[backstage::test]
async fn a_broken_redis_connection_of_the_rate_limit_store_is_retried() {
    let Ok(url) = std::env::var("BACKSTAGE_TEST_CACHE_REDIS_CONNECTION_STRING") else {
        let line = "reliability: skipped the Redis reconnect: BACKSTAGE_TEST_CACHE_REDIS_CONNECTION_STRING is not set\n";
        let _ = std::io::Write::write_all(&mut std::io::stderr(), line.as_bytes());
        return;
    };
    let config = json!({ "backend": { "rateLimit": {
        "store": { "type": "redis", "connection": url },
        "incomingRequestLimit": 1000, "window": "1m", "ipAllowList": [],
    } } });
    let backend = rel(config).await;
    assert_eq!(backend.get("/api/rel/sleep/1").send().await.status(), 200);
    // Every other client's connection is cut, the backend's included, as a Redis restart or a
    // failover would.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut admin = client.get_multiplexed_async_connection().await.unwrap();
    let killed: i64 = redis::cmd("CLIENT")
        .arg(&["KILL", "TYPE", "normal", "SKIPME", "yes"])
        .query_async(&mut admin)
        .await
        .unwrap();
    assert!(killed >= 1, "the backend's connection was cut");
    let res = backend.get("/api/rel/sleep/1").send().await;
    assert_eq!(res.status(), 200, "{}", res.text());
}

#[test]
fn requests_that_node_refuses_before_backstage_are_refused_the_same_way() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let backend = runtime.block_on(rel(json!({})));
    let status_of = |request: &str| {
        let mut stream = TcpStream::connect(backend.backend().local_addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        response.lines().next().unwrap_or_default().to_owned()
    };
    let get = "GET /api/rel/sleep/1";
    assert!(
        status_of(&format!("{get} HTTP/1.1\r\n\r\n")).starts_with("HTTP/1.1 400"),
        "no Host"
    );
    assert!(
        status_of(&format!("{get} HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n"))
            .starts_with("HTTP/1.1 400"),
        "two Hosts"
    );
    assert!(
        status_of(&format!(
            "{get} HTTP/1.1\r\nhost: a\r\nexpect: something-else\r\n\r\n"
        ))
        .starts_with("HTTP/1.1 417"),
        "an unknown expectation"
    );
    assert!(
        status_of(&format!("{get} HTTP/1.0\r\n\r\n")).contains(" 200 "),
        "HTTP/1.0 needs no Host"
    );
    assert!(
        status_of(&format!(
            "{get} HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n"
        ))
        .starts_with("HTTP/1.1 200")
    );
    drop(backend);
}

#[backstage::test]
async fn a_huge_input_error_is_cut_to_a_kilobyte_not_emptied() {
    let backend = rel(json!({ "backend": { "server": { "maxHeaderSize": 65536 } } })).await;
    let digits = "9".repeat(30_000);
    let res = backend
        .get(&format!("/api/rel/sleep/{digits}"))
        .send()
        .await;
    assert_eq!(res.status(), 400);
    let (name, message) = res.error();
    assert_eq!(name, "InputError");
    assert!(message.starts_with("Invalid URL"), "{message}");
    assert!(
        message.chars().count() <= 1027 && message.ends_with("..."),
        "{} characters",
        message.chars().count()
    );
}

#[test]
fn memory_stays_flat_under_huge_bodies_and_huge_headers() {
    // Measured on a backend process of its own: this test binary's memory is everyone's.
    let dir = std::env::temp_dir().join(format!("backstage-memory-{}", std::process::id()));
    let port = free_port();
    let config = format!(
        "backend:\n  listen: {{ host: 127.0.0.1, port: {port} }}\n  server:\n    maxRequestBodySize: 1kb\n"
    );
    let (mut child, rx) = spawn_slow(
        &dir,
        &config,
        &[("LOG_LEVEL", "warn,backstage::backend=info")],
    );
    wait_for(&rx, "Backend started in");
    let address = format!("127.0.0.1:{port}");
    let before = rss_kb(child.id());

    // Huge declared lengths are refused from the headers alone.
    for _ in 0..20 {
        let mut stream = TcpStream::connect(&address).unwrap();
        stream
            .write_all(b"POST /api/slow/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1073741824\r\n\r\n")
            .unwrap();
        let mut response = String::new();
        let _ = stream.read_to_string(&mut response);
        assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    }
    // A chunked body without a length is cut off at the limit.
    let mut stream = TcpStream::connect(&address).unwrap();
    stream.write_all(b"POST /api/slow/echo HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n").unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 8192, "x".repeat(8192));
    for _ in 0..64 {
        if stream.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let _ = stream.write_all(b"0\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");

    // Many connections sending huge headers at once are not buffered: at most 16 KiB each.
    let filler = format!(
        "GET / HTTP/1.1\r\nhost: x\r\nx-filler: {}",
        "a".repeat(380_000)
    );
    let held: Vec<TcpStream> = (0..300)
        .map(|_| {
            let mut stream = TcpStream::connect(&address).unwrap();
            stream
                .set_write_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let _ = stream.write_all(filler.as_bytes());
            stream
        })
        .collect();
    let after = rss_kb(child.id());
    drop(held);
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        after < before + 40_000,
        "memory grew from {before} kB to {after} kB"
    );
}
