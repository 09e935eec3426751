//! Answers as Express writes them, for every layer that serves endpoints: JSON with
//! `charset=utf-8` and a weak `ETag`, as `res.json` sends it.

use axum::body::{Body, Bytes};
use axum::http::StatusCode;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderMap, HeaderName, HeaderValue, VARY,
};
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

/// `bytes` as a JSON response with `status`, as `res.json` sends it. While a backend's request
/// is being served on this thread, the headers are a copy of its [`AnswerHeaders`] filled in.
pub(crate) fn json_response(status: StatusCode, bytes: impl Into<Bytes>) -> Response {
    let bytes = bytes.into();
    let (etag, length) = tags(&bytes);
    let mut response = Response::new(Body::from(bytes));
    *response.status_mut() = status;
    let carries_body = !(status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED);
    // The copy is made inside the thread-local's borrow: no reference count taken per answer.
    let filled = if carries_body {
        SERVING.with_borrow(|serving| match serving {
            Some(answers) => Ok(answers.json(length, etag)),
            None => Err(etag),
        })
    } else {
        Err(etag)
    };
    match filled {
        Ok(headers) => *response.headers_mut() = headers,
        Err(etag) => {
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, JSON_UTF8);
            headers.insert(ETAG, etag);
        }
    }
    response
}

/// The headers a backend's JSON answers are sent with: its security headers, then
/// `Content-Type`, `Content-Length`, `ETag` and `Vary: Accept-Encoding`, in the order Express
/// sends them (helmet's at the start, `res.json`'s, then the `compression` middleware's). Each
/// answer gets a copy with its length and tag put in place; that costs a fraction of adding
/// those headers and then the nine security headers to every answer.
pub(crate) struct AnswerHeaders {
    json: HeaderMap,
    /// Where `Content-Length` is among the values; `ETag` is the next one.
    length_at: usize,
    /// The header whose value marks a copy (the last security header, its value in bytes of
    /// its own): a header no answer has reason to replace or take out, unlike the configurable
    /// CSP.
    mark: Option<(HeaderName, HeaderValue)>,
    /// The copies' `Content-Type` and `Vary` values (the same bytes).
    content_type: HeaderValue,
    vary: HeaderValue,
}

impl AnswerHeaders {
    /// The answer headers of a backend whose security headers are `security`; `kept_open`
    /// (`Connection: keep-alive`, `Keep-Alive: timeout=5`) go last, as Node's server writes
    /// them: most answers leave on connections that stay open, and the root service takes
    /// them out of the others'.
    pub(crate) fn new(
        security: &HeaderMap,
        kept_open: &[(HeaderName, HeaderValue)],
    ) -> AnswerHeaders {
        // Room to spare: an insert into a map at capacity grows it first, even one that
        // replaces a value (and a copy keeps this map's table size).
        let mut json = HeaderMap::with_capacity(security.len() + 4 + kept_open.len() + ROOM);
        // (Empty bytes may all be one static empty slice: never a mark.)
        let mark_at = security
            .len()
            .checked_sub(1)
            .filter(|&at| security.values().nth(at).is_some_and(|v| !v.is_empty()));
        let mut mark = None;
        for (at, (name, value)) in security.iter().enumerate() {
            // The mark in bytes of its own, which [`Self::started`] knows copies by.
            let value = if Some(at) == mark_at {
                let own =
                    HeaderValue::from_bytes(value.as_bytes()).unwrap_or_else(|_| value.clone());
                mark = Some((name.clone(), own.clone()));
                own
            } else {
                value.clone()
            };
            json.append(name.clone(), value);
        }
        let length_at = json.len() + 1;
        let content_type = JSON_UTF8;
        let vary = HeaderValue::from_static("Accept-Encoding");
        json.insert(CONTENT_TYPE, content_type.clone());
        json.insert(CONTENT_LENGTH, HeaderValue::from_static("0"));
        json.insert(ETAG, HeaderValue::from_static("W/\"0-\""));
        json.insert(VARY, vary.clone());
        for (name, value) in kept_open {
            json.insert(name.clone(), value.clone());
        }
        AnswerHeaders {
            json,
            length_at,
            mark,
            content_type,
            vary,
        }
    }

    /// A JSON answer's headers: a copy with `length` and `etag` put in their places (by
    /// position: no lookups).
    fn json(&self, length: HeaderValue, etag: HeaderValue) -> HeaderMap {
        let mut headers = self.json.clone();
        let mut values = headers.values_mut().skip(self.length_at);
        if let Some(slot) = values.next() {
            *slot = length;
        }
        if let Some(slot) = values.next() {
            *slot = etag;
        }
        headers
    }

    /// Whether `headers` started as a copy of these, and so carry the security headers already:
    /// the value where the mark is, is the mark itself (the same bytes, not equal ones).
    pub(crate) fn started(&self, headers: &HeaderMap) -> bool {
        let Some((name, ours)) = &self.mark else {
            return false;
        };
        headers
            .get(name)
            .is_some_and(|theirs| std::ptr::eq(ours.as_bytes(), theirs.as_bytes()))
    }

    /// Whether `headers` are a copy of these whose type and `Vary` are still the copy's own
    /// (the very bytes), that carries the security headers ([`Self::started`]) and says nothing
    /// of `Cache-Control`: then the answer is JSON, varies with the encoding and says so
    /// already, and the root service need not work any of that out. (Looked up by name: a walk
    /// over the values to their places costs as much.)
    pub(crate) fn untouched(&self, headers: &HeaderMap) -> bool {
        let own = |name, ours: &HeaderValue| {
            headers
                .get(name)
                .is_some_and(|theirs| std::ptr::eq(ours.as_bytes(), theirs.as_bytes()))
        };
        self.started(headers)
            && own(CONTENT_TYPE, &self.content_type)
            && own(VARY, &self.vary)
            && !headers.contains_key(CACHE_CONTROL)
    }

    /// Takes out the `Vary: Accept-Encoding` that came with the copy, for an answer that turned
    /// out not to vary with the encoding (a `304`, a `Cache-Control: no-transform`); values the
    /// answer added after it stay.
    pub(crate) fn unvary(&self, headers: &mut HeaderMap) {
        if !self.started(headers) {
            return;
        }
        let ours = self.vary.as_bytes();
        let mut values = headers.get_all(VARY).iter();
        if !values
            .next()
            .is_some_and(|first| std::ptr::eq(ours, first.as_bytes()))
        {
            return;
        }
        let rest: Vec<HeaderValue> = values.cloned().collect();
        headers.remove(VARY);
        for value in rest {
            headers.append(VARY, value);
        }
    }
}

/// Headers an answer may add to its copy of [`AnswerHeaders`] without the map growing its table.
const ROOM: usize = 8;

thread_local! {
    /// The answer headers of the backend whose request this thread is polling.
    static SERVING: std::cell::RefCell<Option<std::sync::Arc<AnswerHeaders>>> =
        const { std::cell::RefCell::new(None) };
}

pin_project_lite::pin_project! {
    /// A request's future, each poll of it made with `answers` as this thread's answer headers:
    /// the JSON answers made while it runs start from this backend's headers.
    pub(crate) struct Serving<F> {
        // Lent to the thread while a poll runs (no reference counted per poll).
        answers: Option<std::sync::Arc<AnswerHeaders>>,
        #[pin]
        work: F,
    }
}

impl<F> Serving<F> {
    pub(crate) fn new(answers: std::sync::Arc<AnswerHeaders>, work: F) -> Self {
        Serving {
            answers: Some(answers),
            work,
        }
    }
}

impl<F: std::future::Future> std::future::Future for Serving<F> {
    type Output = F::Output;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<F::Output> {
        let this = self.project();
        serving(this.answers, || this.work.poll(cx))
    }
}

/// Runs `poll` (one poll of a request's future) with `answers` as this thread's answer headers:
/// they trade places with the thread's, and trade back when `poll` returns or panics.
fn serving<R>(answers: &mut Option<std::sync::Arc<AnswerHeaders>>, poll: impl FnOnce() -> R) -> R {
    struct Lent<'a>(&'a mut Option<std::sync::Arc<AnswerHeaders>>);
    impl Drop for Lent<'_> {
        fn drop(&mut self) {
            SERVING.with_borrow_mut(|serving| std::mem::swap(serving, self.0));
        }
    }
    SERVING.with_borrow_mut(|serving| std::mem::swap(serving, answers));
    let _lent = Lent(answers);
    poll()
}

/// Express's `Content-Type` for JSON.
pub(crate) const JSON_UTF8: HeaderValue =
    HeaderValue::from_static("application/json; charset=utf-8");

/// The largest body whose tag each thread keeps (with the body) for the next identical answer.
const REMEMBERED_BODY: usize = 4096;

/// Express's weak entity tag: `W/"<length in hex>-<first 27 characters of the SHA-1, base64>"`.
pub(crate) fn weak_etag(body: &[u8]) -> HeaderValue {
    tags(body).0
}

/// A body's `ETag` and `Content-Length`.
type Tags = (HeaderValue, HeaderValue);

/// The body's weak tag and its `Content-Length`. This runs for every JSON answer, and the same
/// answer is often sent again (a health check, a list that did not change): each thread keeps
/// the last body of up to [`REMEMBERED_BODY`] bytes with both, and an identical body gets them
/// again without hashing or formatting.
fn tags(body: &[u8]) -> Tags {
    thread_local! {
        static LAST: std::cell::RefCell<(Vec<u8>, Option<Tags>)> =
            const { std::cell::RefCell::new((Vec::new(), None)) };
    }
    let computed = || (computed_weak_etag(body), HeaderValue::from(body.len()));
    if body.len() > REMEMBERED_BODY {
        return computed();
    }
    LAST.with_borrow_mut(|(last, tags)| match tags {
        Some(tags) if last.as_slice() == body => tags.clone(),
        _ => {
            let fresh = computed();
            last.clear();
            last.extend_from_slice(body);
            *tags = Some(fresh.clone());
            fresh
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
    use std::sync::Arc;

    fn security() -> HeaderMap {
        let mut security = HeaderMap::new();
        security.insert(
            "content-security-policy",
            HeaderValue::from_str("default-src 'self'").unwrap(),
        );
        security.insert("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
        security
    }

    #[test]
    fn json_answers_being_served_carry_the_backends_headers_in_expresss_order() {
        let answers = Arc::new(AnswerHeaders::new(&security(), &[]));
        for body in [&b"{\"a\":1}"[..], b"[]", b"{\"a\":1}", b"[1,2,3]"] {
            let response = serving(&mut Some(answers.clone()), || {
                json_response(StatusCode::OK, body.to_vec())
            });
            let headers = response.headers();
            let names: Vec<&str> = headers.keys().map(|n| n.as_str()).collect();
            assert_eq!(
                names,
                [
                    "content-security-policy",
                    "x-frame-options",
                    "content-type",
                    "content-length",
                    "etag",
                    "vary"
                ]
            );
            assert_eq!(headers[CONTENT_LENGTH], body.len().to_string().as_str());
            assert_eq!(headers[ETAG], computed_weak_etag(body));
            assert_eq!(headers[CONTENT_TYPE], JSON_UTF8);
            assert_eq!(headers[VARY], "Accept-Encoding");
            assert!(answers.started(headers));
        }
        // Outside a request, and for answers without a body: only `res.json`'s own headers.
        let alone = json_response(StatusCode::OK, &b"[]"[..]);
        assert!(!answers.started(alone.headers()));
        assert_eq!(alone.headers().len(), 2);
        let empty = serving(&mut Some(answers.clone()), || {
            json_response(StatusCode::NO_CONTENT, &b""[..])
        });
        assert!(!answers.started(empty.headers()));
        assert!(empty.headers().get(CONTENT_LENGTH).is_none());
    }

    #[test]
    fn a_copy_is_untouched_until_its_type_vary_or_mark_change_or_it_says_cache_control() {
        let answers = Arc::new(AnswerHeaders::new(&security(), &[]));
        let copy = || {
            serving(&mut Some(answers.clone()), || {
                json_response(StatusCode::OK, &b"[]"[..])
            })
        };
        assert!(answers.untouched(copy().headers()));
        // Another value of a security header (not the mark's), or another tag: still untouched.
        let mut response = copy();
        response.headers_mut().insert(
            "content-security-policy",
            HeaderValue::from_static("default-src 'none'"),
        );
        response
            .headers_mut()
            .insert(ETAG, HeaderValue::from_static("\"v1\""));
        // A header of the route's own that none of the root service's steps looks at.
        response
            .headers_mut()
            .insert("x-request-id", HeaderValue::from_static("abc"));
        assert!(answers.untouched(response.headers()));
        // A security header other than the mark taken out: the answer goes without it, as in
        // Express, where the route runs after helmet.
        response.headers_mut().remove("content-security-policy");
        assert!(answers.untouched(response.headers()));

        type Change = (&'static str, fn(&mut HeaderMap));
        let changes: [Change; 8] = [
            ("an added header", |h| {
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-transform"));
            }),
            ("one taken out and one added", |h| {
                h.remove("x-frame-options");
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-transform"));
            }),
            ("the vary taken out and one added", |h| {
                h.remove(VARY);
                h.insert(CACHE_CONTROL, HeaderValue::from_static("no-transform"));
            }),
            ("another type", |h| {
                h.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
            }),
            ("the vary replaced", |h| {
                h.insert(VARY, HeaderValue::from_str("Accept-Encoding").unwrap());
            }),
            ("the mark taken out", |h| {
                h.remove("x-frame-options");
            }),
            ("a header added and the mark taken out", |h| {
                h.insert("x-request-id", HeaderValue::from_static("abc"));
                h.remove("x-frame-options");
            }),
            ("a header added and the vary taken out", |h| {
                h.insert("x-request-id", HeaderValue::from_static("abc"));
                h.remove(VARY);
            }),
        ];
        for (change, apply) in changes {
            let mut response = copy();
            apply(response.headers_mut());
            assert!(!answers.untouched(response.headers()), "{change}");
        }
        // Headers that were never a copy, and a copy's equal made apart.
        assert!(!answers.untouched(&HeaderMap::new()));
        let apart: HeaderMap = copy()
            .headers()
            .iter()
            .map(|(n, v)| (n.clone(), HeaderValue::from_bytes(v.as_bytes()).unwrap()))
            .collect();
        assert!(!answers.untouched(&apart));
    }

    #[test]
    fn equal_headers_are_not_taken_for_the_backends_own() {
        let answers = AnswerHeaders::new(&security(), &[]);
        // The same names and values, made apart: the security headers are still to be added.
        assert!(!answers.started(&security()));
        assert!(!answers.started(&HeaderMap::new()));
    }

    #[test]
    fn a_copy_is_known_by_its_mark_whatever_the_csp() {
        let answers = Arc::new(AnswerHeaders::new(&security(), &[]));
        let mut response = serving(&mut Some(answers.clone()), || {
            json_response(StatusCode::OK, &b"[]"[..])
        });
        response.headers_mut().insert(
            "content-security-policy",
            HeaderValue::from_static("default-src 'none'"),
        );
        assert!(answers.started(response.headers()));
        // A set whose mark would be empty has none: nothing is taken for a copy.
        let mut empty = HeaderMap::new();
        empty.insert("content-security-policy", HeaderValue::from_static(""));
        let answers = Arc::new(AnswerHeaders::new(&empty, &[]));
        let response = serving(&mut Some(answers.clone()), || {
            json_response(StatusCode::OK, &b"[]"[..])
        });
        assert!(!answers.started(response.headers()));
        assert!(!answers.started(&empty));
    }

    #[test]
    fn only_the_copys_own_vary_is_taken_out() {
        let answers = Arc::new(AnswerHeaders::new(&security(), &[]));
        let mut response = serving(&mut Some(answers.clone()), || {
            json_response(StatusCode::OK, &b"[]"[..])
        });
        answers.unvary(response.headers_mut());
        assert!(response.headers().get(VARY).is_none());
        let mut own = serving(&mut Some(answers.clone()), || {
            json_response(StatusCode::OK, &b"[]"[..])
        });
        own.headers_mut()
            .insert(VARY, HeaderValue::from_str("Accept-Encoding").unwrap());
        answers.unvary(own.headers_mut());
        assert_eq!(own.headers()[VARY], "Accept-Encoding");
        let mut added = serving(&mut Some(answers.clone()), || {
            json_response(StatusCode::OK, &b"[]"[..])
        });
        added
            .headers_mut()
            .append(VARY, HeaderValue::from_static("Cookie"));
        answers.unvary(added.headers_mut());
        let left: Vec<_> = added.headers().get_all(VARY).iter().collect();
        assert_eq!(left, ["Cookie"]);
    }

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
