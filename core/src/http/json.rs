//! JSON bodies as a Backstage plugin's Express router reads and writes them: the request body
//! parsed as `express.json()` parses it, the response written as `res.json` writes it (with
//! `charset=utf-8` and a weak `ETag`), and the conditional `304` Express answers for a fresh
//! `GET`.

use std::io::Read;

use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, Request};
use axum::http::header::{CONTENT_ENCODING, CONTENT_TYPE, ETAG, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::request_heads::RequestHeads;
use crate::error::{Error, ErrorKind};

/// A JSON request body or response, as Backstage's Express routers read and write them.
///
/// As an argument of a route it parses the body the way `express.json()` does: a body that is
/// not `application/json`, or an empty one, reads as `{}`; a body that is not an object or an
/// array, or not JSON at all, is `400 SyntaxError`; one that does not fit `T` is `400
/// InputError` naming the field; `gzip` and `deflate` bodies are inflated; one over the body
/// limit is `413`. As a return value it answers `application/json; charset=utf-8` with a weak
/// `ETag`, so a client that sends it back in `If-None-Match` gets `304`.
///
/// ```
/// use backstage::prelude::*;
/// use serde::Deserialize;
///
/// #[derive(Deserialize)]
/// struct NewItem {
///     name: String,
/// }
///
/// #[backend_plugin(id = "shelf")]
/// pub struct Shelf;
///
/// #[routes]
/// impl Shelf {
///     #[route(post, "/items")]
///     async fn create(&self, Json(item): Json<NewItem>) -> Result<(StatusCode, Json<String>)> {
///         if item.name.trim().is_empty() {
///             return Err(Error::input("name must not be empty"));
///         }
///         Ok((StatusCode::CREATED, Json(item.name)))
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Json<T>(pub T);

/// The body limit a request's JSON body is read with: `backend.server.maxRequestBodySize`,
/// which the backend puts in the extensions of every request that has a body.
#[derive(Clone, Copy, Debug)]
pub(crate) struct BodyLimit(pub(crate) usize);

impl<T, S> FromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = Error;

    async fn from_request(request: Request, state: &S) -> Result<Self, Error> {
        let limit = request
            .extensions()
            .get::<BodyLimit>()
            .map_or(super::policies::DEFAULT_BODY_LIMIT, |l| l.0);
        let headers = request.headers();
        if !is_json(headers) {
            return parse(b"{}").map(Json);
        }
        check_charset(headers)?;
        let encoding = content_encoding(headers)?;
        let bytes =
            Bytes::from_request(request, state)
                .await
                .map_err(|rejection| match rejection.status() {
                    StatusCode::PAYLOAD_TOO_LARGE => too_large(limit),
                    _ => Error::input("request aborted"),
                })?;
        let bytes = match encoding {
            Encoding::Identity => bytes,
            Encoding::Gzip => inflate(flate2::read::GzDecoder::new(&bytes[..]), limit)?,
            Encoding::Deflate => inflate(flate2::read::ZlibDecoder::new(&bytes[..]), limit)?,
        };
        if bytes.len() > limit {
            return Err(too_large(limit));
        }
        parse(&bytes).map(Json)
    }
}

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        crate::answer::json(StatusCode::OK, &self.0)
    }
}

pub(crate) use crate::answer::{JSON_UTF8, json_response, weak_etag};

/// What a conditional request asked, kept from the request until its response is ready.
pub(crate) struct Conditional {
    if_none_match: Option<HeaderValue>,
    if_modified_since: Option<HeaderValue>,
}

impl Conditional {
    /// The conditions of a `GET` or `HEAD` that may be answered `304`; `None` for any other
    /// request (nothing to keep, nothing to check).
    pub(crate) fn of(method: &Method, headers: &RequestHeads<'_>) -> Option<Conditional> {
        if method != Method::GET && method != Method::HEAD {
            return None;
        }
        let if_none_match = headers.if_none_match.cloned();
        let if_modified_since = headers.if_modified_since.cloned();
        if if_none_match.is_none() && if_modified_since.is_none() {
            return None;
        }
        let no_cache = headers
            .cache_control
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(',')
                    .any(|d| d.trim().eq_ignore_ascii_case("no-cache"))
            });
        (!no_cache).then_some(Conditional {
            if_none_match,
            if_modified_since,
        })
    }

    /// Turns `response` into `304 Not Modified` when the client's copy is still fresh, as
    /// Express's `req.fresh` decides: a 2xx whose `ETag` the client holds, and whose
    /// `Last-Modified` (when asked) is not newer than the client's.
    pub(crate) fn apply(&self, response: &mut Response) {
        let status = response.status();
        if !(status.is_success() || status == StatusCode::NOT_MODIFIED) || !self.fresh(response) {
            return;
        }
        *response.status_mut() = StatusCode::NOT_MODIFIED;
        let headers = response.headers_mut();
        headers.remove(CONTENT_TYPE);
        headers.remove(http::header::CONTENT_LENGTH);
        headers.remove(http::header::TRANSFER_ENCODING);
        *response.body_mut() = Body::empty();
    }

    fn fresh(&self, response: &Response) -> bool {
        if let Some(none_match) = self.if_none_match.as_ref().and_then(|v| v.to_str().ok())
            && none_match.trim() != "*"
        {
            let Some(etag) = response.headers().get(ETAG).and_then(|v| v.to_str().ok()) else {
                return false;
            };
            let held = none_match.split(',').map(str::trim).any(|tag| {
                tag == etag
                    || tag.strip_prefix("W/") == Some(etag)
                    || etag.strip_prefix("W/") == Some(tag)
            });
            if !held {
                return false;
            }
        }
        if let Some(since) = &self.if_modified_since {
            let parse = |v: &HeaderValue| httpdate::parse_http_date(v.to_str().ok()?).ok();
            let last_modified = response
                .headers()
                .get(http::header::LAST_MODIFIED)
                .and_then(parse);
            match (last_modified, parse(since)) {
                (Some(modified), Some(since)) if modified <= since => {}
                _ => return false,
            }
        }
        true
    }
}

/// Whether the request body is JSON by its `Content-Type` (`express.json()` reads only those).
fn is_json(headers: &HeaderMap) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// A JSON body must be in a UTF encoding, as `express.json()` requires.
fn check_charset(headers: &HeaderMap) -> Result<(), Error> {
    let charset = headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .into_iter()
        .flat_map(|v| v.split(';').skip(1))
        .filter_map(|parameter| parameter.split_once('='))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("charset"))
        .map(|(_, value)| value.trim().trim_matches('"').to_ascii_lowercase());
    match charset {
        Some(charset) if !charset.starts_with("utf-") => Err(Error::new(
            ErrorKind::UnsupportedMediaType,
            format!("unsupported charset \"{}\"", charset.to_ascii_uppercase()),
        )
        .with_fields(vec![
            ("charset", charset.into()),
            ("type", "charset.unsupported".into()),
        ])),
        _ => Ok(()),
    }
}

enum Encoding {
    Identity,
    Gzip,
    Deflate,
}

/// The body's `Content-Encoding`: none, `gzip` or `deflate`, as `express.json()` reads.
fn content_encoding(headers: &HeaderMap) -> Result<Encoding, Error> {
    let Some(value) = headers.get(CONTENT_ENCODING) else {
        return Ok(Encoding::Identity);
    };
    let value = String::from_utf8_lossy(value.as_bytes()).to_ascii_lowercase();
    match value.as_str() {
        "identity" => Ok(Encoding::Identity),
        "gzip" => Ok(Encoding::Gzip),
        "deflate" => Ok(Encoding::Deflate),
        other => Err(Error::new(
            ErrorKind::UnsupportedMediaType,
            format!("unsupported content encoding \"{other}\""),
        )
        .with_fields(vec![
            ("encoding", other.into()),
            ("type", "encoding.unsupported".into()),
        ])),
    }
}

/// The inflated body, read up to one byte past `limit` (so a small body that inflates to a
/// huge one is refused without being inflated whole).
fn inflate(decoder: impl Read, limit: usize) -> Result<Bytes, Error> {
    let mut inflated = Vec::new();
    decoder
        .take(limit as u64 + 1)
        .read_to_end(&mut inflated)
        .map_err(|_| Error::input("the request body could not be inflated"))?;
    if inflated.len() > limit {
        return Err(too_large(limit));
    }
    Ok(Bytes::from(inflated))
}

/// 413 for a body found over `limit` while reading it (its length was not announced).
fn too_large(limit: usize) -> Error {
    Error::new(ErrorKind::PayloadTooLarge, "request entity too large").with_fields(vec![
        ("limit", limit.into()),
        ("type", "entity.too.large".into()),
    ])
}

/// 400 `SyntaxError` as Express's body parser reports it, with the body it could not read.
fn syntax_error(message: String, body: &[u8]) -> Error {
    Error::new(ErrorKind::Syntax, message).with_fields(vec![
        ("expose", true.into()),
        ("statusCode", 400.into()),
        ("status", 400.into()),
        ("body", String::from_utf8_lossy(body).into()),
        ("type", "entity.parse.failed".into()),
    ])
}

/// Parses a JSON body: an object or an array (`express.json()`'s strict mode), then `T`.
fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Error> {
    let bytes = if bytes.is_empty() { b"{}" } else { bytes };
    let first = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    if let Some(at) = first
        && !matches!(bytes[at], b'{' | b'[')
    {
        return Err(syntax_error(
            format!("Unexpected token at position {at}: the body must be an object or an array"),
            bytes,
        ));
    }
    let syntax = |error: &serde_json::Error| {
        let position = if error.is_eof() {
            bytes.len()
        } else {
            position(bytes, error.line(), error.column())
        };
        syntax_error(
            format!("{} in JSON at position {position}", message_of(error)),
            bytes,
        )
    };
    let mut deserializer = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        if inner.is_data() {
            let at = if path == "." {
                String::new()
            } else {
                format!(" at '{path}'")
            };
            Error::input(format!("Invalid request body{at}: {}", message_of(&inner)))
        } else {
            syntax(&inner)
        }
    })?;
    deserializer.end().map_err(|e| syntax(&e))?;
    Ok(value)
}

/// serde's message without its trailing "at line L column C".
fn message_of(error: &serde_json::Error) -> String {
    let text = error.to_string();
    match text.rfind(" at line ") {
        Some(at) => text[..at].to_owned(),
        None => text,
    }
}

/// The byte offset of 1-based `line` and `column`, as JavaScript's parser reports positions.
fn position(bytes: &[u8], line: usize, column: usize) -> usize {
    let line_start = bytes
        .split_inclusive(|b| *b == b'\n')
        .take(line.saturating_sub(1))
        .map(<[u8]>::len)
        .sum::<usize>();
    (line_start + column).saturating_sub(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::header::CACHE_CONTROL;
    use serde::Deserialize;
    use serde_json::Value;

    #[derive(Debug, Deserialize)]
    struct Item {
        #[allow(dead_code)]
        name: String,
    }

    async fn read<T: DeserializeOwned>(
        content_type: Option<&str>,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> Result<T, Error> {
        let mut request = Request::builder().method("POST").uri("/");
        if let Some(content_type) = content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(encoding) = encoding {
            request = request.header(CONTENT_ENCODING, encoding);
        }
        let mut request = request.body(Body::from(body)).unwrap();
        request.extensions_mut().insert(BodyLimit(1024));
        Json::<T>::from_request(request, &()).await.map(|Json(v)| v)
    }

    fn failure<T>(result: Result<T, Error>) -> (ErrorKind, String) {
        match result {
            Ok(_) => panic!("expected an error"),
            Err(e) => (e.kind(), e.message().to_owned()),
        }
    }

    const JSON: Option<&str> = Some("application/json");

    #[tokio::test]
    async fn bodies_that_are_not_json_read_as_an_empty_object() {
        let value: Value = read(Some("text/plain"), None, b"{\"a\":1}".to_vec())
            .await
            .unwrap();
        assert_eq!(value, serde_json::json!({}));
        let value: Value = read(None, None, b"{\"a\":1}".to_vec()).await.unwrap();
        assert_eq!(value, serde_json::json!({}));
        let value: Value = read(JSON, None, Vec::new()).await.unwrap();
        assert_eq!(value, serde_json::json!({}));
        let value: Value = read(
            Some("Application/JSON; charset=UTF-8"),
            None,
            b"[1]".to_vec(),
        )
        .await
        .unwrap();
        assert_eq!(value, serde_json::json!([1]));
    }

    #[tokio::test]
    async fn malformed_json_is_a_syntax_error_with_its_position() {
        let (kind, message) = failure(read::<Value>(JSON, None, b"{not json".to_vec()).await);
        assert_eq!(kind, ErrorKind::Syntax);
        assert_eq!(message, "key must be a string in JSON at position 1");
        let (kind, message) = failure(read::<Value>(JSON, None, b"{\n\"a\":}".to_vec()).await);
        assert_eq!(kind, ErrorKind::Syntax);
        assert!(message.ends_with("at position 6"), "{message}");
        let (kind, _) = failure(read::<Value>(JSON, None, b"{} x".to_vec()).await);
        assert_eq!(kind, ErrorKind::Syntax);
    }

    #[tokio::test]
    async fn only_objects_and_arrays_are_accepted() {
        let (kind, _) = failure(read::<Value>(JSON, None, b" 5".to_vec()).await);
        assert_eq!(kind, ErrorKind::Syntax);
        let (kind, _) = failure(read::<Value>(JSON, None, b"\"text\"".to_vec()).await);
        assert_eq!(kind, ErrorKind::Syntax);
    }

    #[tokio::test]
    async fn a_body_of_the_wrong_shape_is_an_input_error_naming_the_field() {
        let (kind, message) = failure(read::<Item>(JSON, None, b"{\"name\":5}".to_vec()).await);
        assert_eq!(kind, ErrorKind::Input);
        assert!(
            message.starts_with("Invalid request body at 'name': invalid type"),
            "{message}"
        );
        let (kind, message) = failure(read::<Item>(JSON, None, b"{}".to_vec()).await);
        assert_eq!(kind, ErrorKind::Input);
        assert!(message.contains("missing field `name`"), "{message}");
    }

    #[tokio::test]
    async fn compressed_bodies_are_inflated_within_the_limit() {
        use std::io::Write;
        let gzip = |data: &[u8]| {
            let mut encoder =
                flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        let deflate = |data: &[u8]| {
            let mut encoder =
                flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
            encoder.write_all(data).unwrap();
            encoder.finish().unwrap()
        };
        let value: Value = read(JSON, Some("gzip"), gzip(b"{\"a\":1}")).await.unwrap();
        assert_eq!(value, serde_json::json!({"a": 1}));
        let value: Value = read(JSON, Some("deflate"), deflate(b"{\"a\":2}"))
            .await
            .unwrap();
        assert_eq!(value, serde_json::json!({"a": 2}));
        // A kilobyte limit; 2 KiB of JSON compresses to far less, and is still refused.
        let big = format!("{{\"a\":\"{}\"}}", "x".repeat(2048));
        let (kind, _) = failure(read::<Value>(JSON, Some("gzip"), gzip(big.as_bytes())).await);
        assert_eq!(kind, ErrorKind::PayloadTooLarge);
        let (kind, message) = failure(read::<Value>(JSON, Some("br"), b"..".to_vec()).await);
        assert_eq!(kind, ErrorKind::UnsupportedMediaType);
        assert_eq!(message, "unsupported content encoding \"br\"");
        let (kind, _) = failure(read::<Value>(JSON, Some("gzip"), b"not gzip".to_vec()).await);
        assert_eq!(kind, ErrorKind::Input);
    }

    #[tokio::test]
    async fn other_charsets_are_refused() {
        let (kind, message) = failure(
            read::<Value>(
                Some("application/json; charset=latin1"),
                None,
                b"{}".to_vec(),
            )
            .await,
        );
        assert_eq!(kind, ErrorKind::UnsupportedMediaType);
        assert_eq!(message, "unsupported charset \"LATIN1\"");
    }

    #[test]
    fn etags_are_express_weak_etags() {
        // Computed by Express 4 (`etag` 1.8) for the same bodies.
        assert_eq!(
            weak_etag(b"{\"status\":\"ok\"}"),
            "W/\"f-VaSQ4oDUiZblZNAEkkN+sX+q3Sg\""
        );
        assert_eq!(weak_etag(b""), "W/\"0-2jmj7l5rSw0yVb/vlWAYkK/YBwk\"");
        // Lengths in several hex digits, from the most significant.
        assert_eq!(
            weak_etag(&[b'a'; 4096]),
            "W/\"1000-jFH7agtYfslcp0rPpD33U5tIYpc\""
        );
    }

    #[test]
    fn fresh_copies_get_304() {
        let mut request_headers = HeaderMap::new();
        let response = || json_response(StatusCode::OK, &b"{\"status\":\"ok\"}"[..]);
        let etag = response().headers()[ETAG].clone();
        request_headers.insert(http::header::IF_NONE_MATCH, etag.clone());
        let conditional =
            Conditional::of(&Method::GET, &RequestHeads::of(&request_headers)).unwrap();
        let mut fresh = response();
        conditional.apply(&mut fresh);
        assert_eq!(fresh.status(), StatusCode::NOT_MODIFIED);
        assert!(fresh.headers().get(CONTENT_TYPE).is_none());

        // Another tag, another method, or no-cache: the full answer.
        request_headers.insert(
            http::header::IF_NONE_MATCH,
            HeaderValue::from_static("W/\"1-x\""),
        );
        let mut stale = response();
        Conditional::of(&Method::GET, &RequestHeads::of(&request_headers))
            .unwrap()
            .apply(&mut stale);
        assert_eq!(stale.status(), StatusCode::OK);
        request_headers.insert(http::header::IF_NONE_MATCH, etag);
        assert!(Conditional::of(&Method::POST, &RequestHeads::of(&request_headers)).is_none());
        request_headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        assert!(Conditional::of(&Method::GET, &RequestHeads::of(&request_headers)).is_none());
    }
}
