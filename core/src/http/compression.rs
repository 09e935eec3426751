//! Response compression as Backstage's `compression` middleware does it with its defaults:
//! answers of a compressible type carry `Vary: Accept-Encoding`, and those of 1 KiB or more are
//! sent in the encoding the client prefers (`br`, `gzip`, `deflate`), unless the answer says
//! `Cache-Control: no-transform`. tower-http compresses; this module decides what, and hands
//! tower-http only the answers it will compress: the others (most answers are small) go out as
//! they are, without a compression wrapper around their body.

use std::convert::Infallible;
use std::future::Ready;

use axum::body::Body;
use axum::http::header::{ACCEPT_ENCODING, CACHE_CONTROL, CONTENT_TYPE, HeaderMap};
use axum::http::{Extensions, HeaderValue, StatusCode, Version};
use axum::response::Response;
use futures_util::future::Either;
use tower::{Layer, ServiceExt};
use tower_http::compression::predicate::{Predicate, SizeAbove};

use crate::answer::JSON_UTF8;
use crate::plugin::BoxFuture;

/// The smallest answer that is compressed, as the `compression` middleware's `threshold`.
const THRESHOLD: u16 = 1024;

/// What is compressed, as the `compression` middleware decides.
fn predicate() -> impl Predicate {
    SizeAbove::new(THRESHOLD).and(compressed as fn(_, _, &_, &_) -> _)
}

/// `response` compressed in the encoding `accept` (the request's `Accept-Encoding`) prefers,
/// where the `compression` middleware would compress it; else `response` itself. Decided here,
/// so that an answer sent as it is does not wait in (or make room for) the compressor's future.
pub(crate) fn compress(
    accept: Option<HeaderValue>,
    response: Response,
) -> Either<Ready<Response>, BoxFuture<'static, Response>> {
    let Some(accept) = accept else {
        return Either::Left(std::future::ready(response));
    };
    let predicate = predicate();
    if !predicate.should_compress(&response) {
        return Either::Left(std::future::ready(response));
    }
    Either::Right(Box::pin(compressed_answer(accept, response, predicate)))
}

/// tower-http's layer over a service that answers with `response`, asked by a request that
/// carries only what the layer reads.
async fn compressed_answer(
    accept: HeaderValue,
    response: Response,
    predicate: impl Predicate,
) -> Response {
    let mut answer = Some(response);
    let service = tower_http::compression::CompressionLayer::new()
        .compress_when(predicate)
        .layer(tower::service_fn(move |_: http::Request<()>| {
            std::future::ready(Ok::<_, Infallible>(answer.take().unwrap_or_default()))
        }));
    let mut request = http::Request::new(());
    request.headers_mut().insert(ACCEPT_ENCODING, accept);
    match service.oneshot(request).await {
        Ok(compressed) => compressed.map(Body::new),
        Err(never) => match never {},
    }
}

/// Whether an answer of this type may be compressed (so it varies with `Accept-Encoding`).
pub(crate) fn varies(headers: &HeaderMap) -> bool {
    compressible(headers) && !no_transform(headers)
}

/// What the layer compresses: a compressible type, not `no-transform`, and not an event stream
/// (whose events must reach the client as they are written).
fn compressed(_: StatusCode, _: Version, headers: &HeaderMap, _: &Extensions) -> bool {
    varies(headers)
        && essence(headers).is_some_and(|e| !e.eq_ignore_ascii_case("text/event-stream"))
}

fn essence(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(value.split(';').next().unwrap_or("").trim())
}

/// The `compressible` package's answer for the common types: text, JSON, XML, JavaScript and
/// forms.
fn compressible(headers: &HeaderMap) -> bool {
    // The type of the framework's own JSON answers, recognised without parsing.
    if headers.get(CONTENT_TYPE) == Some(&JSON_UTF8) {
        return true;
    }
    let Some(essence) = essence(headers) else {
        return false;
    };
    // Case-insensitive without allocating: this runs for every answer.
    let starts = |prefix: &str| {
        essence
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let ends = |suffix: &str| {
        essence
            .len()
            .checked_sub(suffix.len())
            .and_then(|at| essence.get(at..))
            .is_some_and(|s| s.eq_ignore_ascii_case(suffix))
    };
    starts("text/")
        || ends("+json")
        || ends("+xml")
        || ends("+text")
        || COMPRESSIBLE
            .iter()
            .any(|known| known.eq_ignore_ascii_case(essence))
}

/// Types the `compressible` package marks compressible beyond text and `+json`/`+xml`.
const COMPRESSIBLE: &[&str] = &[
    "application/json",
    "application/javascript",
    "application/ecmascript",
    "application/x-javascript",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/graphql",
    "application/wasm",
    "image/bmp",
    "image/x-icon",
    "font/ttf",
    "font/otf",
    "application/vnd.ms-fontobject",
];

fn no_transform(headers: &HeaderMap) -> bool {
    headers
        .get_all(CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|d| d.trim().eq_ignore_ascii_case("no-transform"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(content_type: &str, cache_control: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(CONTENT_TYPE, HeaderValue::from_str(content_type).unwrap());
        if let Some(cc) = cache_control {
            headers.insert(CACHE_CONTROL, HeaderValue::from_str(cc).unwrap());
        }
        headers
    }

    #[test]
    fn text_and_json_vary_images_and_no_transform_do_not() {
        assert!(varies(&headers("application/json; charset=utf-8", None)));
        assert!(varies(&headers("text/html", None)));
        assert!(varies(&headers("application/vnd.backstage+json", None)));
        assert!(varies(&headers("Application/JSON", None)));
        assert!(varies(&headers("image/svg+xml", None)));
        assert!(!varies(&headers("image/png", None)));
        assert!(!varies(&headers("application/octet-stream", None)));
        assert!(!varies(&headers(
            "application/json",
            Some("public, no-transform")
        )));
        assert!(!varies(&HeaderMap::new()));
    }

    #[test]
    fn event_streams_vary_but_are_not_compressed() {
        let stream = headers("text/event-stream", None);
        assert!(varies(&stream));
        assert!(!compressed(
            StatusCode::OK,
            Version::HTTP_11,
            &stream,
            &Extensions::new()
        ));
        let json = headers("application/json", None);
        assert!(compressed(
            StatusCode::OK,
            Version::HTTP_11,
            &json,
            &Extensions::new()
        ));
    }
}
