//! Answers as Express writes them, for every layer that serves endpoints: JSON with
//! `charset=utf-8` and a weak `ETag`, as `res.json` sends it.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, ETAG, HeaderValue};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::error::Error;

/// `value` as a JSON response with `status`, or a 500 when it cannot be written as JSON.
pub(crate) fn json(status: StatusCode, value: &impl Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(bytes) => json_response(status, bytes),
        Err(e) => {
            Error::internal(format!("could not write the response as JSON: {e}")).into_response()
        }
    }
}

/// `bytes` as a JSON response with `status`, as `res.json` sends it.
pub(crate) fn json_response(status: StatusCode, bytes: impl Into<Bytes>) -> Response {
    let bytes = bytes.into();
    let etag = weak_etag(&bytes);
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, JSON_UTF8);
    headers.insert(ETAG, etag);
    response
}

/// Express's `Content-Type` for JSON.
pub(crate) const JSON_UTF8: HeaderValue =
    HeaderValue::from_static("application/json; charset=utf-8");

/// The largest body whose tag each thread keeps (with the body) for the next identical answer.
const REMEMBERED_BODY: usize = 4096;

/// Express's weak entity tag: `W/"<length in hex>-<first 27 characters of the SHA-1, base64>"`.
/// This runs for every JSON answer, and the same answer is often sent again (a health check, a
/// list that did not change): each thread keeps the last body of up to [`REMEMBERED_BODY`]
/// bytes with its tag, and an identical body gets the tag again without hashing.
pub(crate) fn weak_etag(body: &[u8]) -> HeaderValue {
    thread_local! {
        static LAST: std::cell::RefCell<(Vec<u8>, Option<HeaderValue>)> =
            const { std::cell::RefCell::new((Vec::new(), None)) };
    }
    if body.len() > REMEMBERED_BODY {
        return computed_weak_etag(body);
    }
    LAST.with_borrow_mut(|(last, tag)| match tag {
        Some(tag) if last.as_slice() == body => tag.clone(),
        _ => {
            let computed = computed_weak_etag(body);
            last.clear();
            last.extend_from_slice(body);
            *tag = Some(computed.clone());
            computed
        }
    })
}

/// [`weak_etag`], hashed. Written into a buffer on the stack.
fn computed_weak_etag(body: &[u8]) -> HeaderValue {
    use base64::Engine;
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = <sha1::Sha1 as sha1::Digest>::digest(body);
    // `W/"`, at most 16 hex digits, `-`, the 27 characters of a 20-byte hash in base64, `"`.
    let mut tag = [0u8; 48];
    tag[..3].copy_from_slice(b"W/\"");
    let mut at = 3;
    let length = body.len();
    let digits = (usize::BITS - length.leading_zeros()).div_ceil(4).max(1) as usize;
    for shift in (0..digits).rev() {
        tag[at] = HEX[(length >> (4 * shift)) & 0xf];
        at += 1;
    }
    tag[at] = b'-';
    at += 1;
    let Ok(27) = base64::engine::general_purpose::STANDARD_NO_PAD
        .encode_slice(digest.as_slice(), &mut tag[at..at + 27])
    else {
        return HeaderValue::from_static("W/\"0-\"");
    };
    at += 27;
    tag[at] = b'"';
    HeaderValue::from_bytes(&tag[..=at]).unwrap_or(HeaderValue::from_static("W/\"0-\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remembered_tag_is_given_only_to_the_same_body() {
        let big_a = vec![b'a'; REMEMBERED_BODY + 1];
        let mut big_b = big_a.clone();
        big_b[0] = b'b';
        let bodies: [&[u8]; 8] = [
            b"{\"n\":1}",
            b"{\"n\":1}",
            b"{\"n\":2}",
            b"{\"n\":1}",
            b"",
            &big_a,
            &big_b,
            b"{\"n\":2}",
        ];
        for body in bodies {
            assert_eq!(weak_etag(body), computed_weak_etag(body));
        }
        assert_ne!(weak_etag(b"{\"n\":1}"), weak_etag(b"{\"n\":2}"));
    }
}
