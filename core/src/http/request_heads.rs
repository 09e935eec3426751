//! The request headers the root service reads for every request, found in one pass.
//!
//! A lookup by name hashes the name and probes the map; the root service asks for eight
//! headers of every request (for compression, conditional answers, the request line, the
//! body limit and the checks of a well-formed request), and most requests carry a handful.
//! One walk over what the request has, comparing names (standard names compare as numbers),
//! finds them all.

use axum::http::header::{self, HeaderMap, HeaderValue};

/// The headers the root service reads, as [`HeaderMap::get`] finds them: the first value of
/// each name. `hosts` counts every `Host` value.
#[derive(Default)]
pub(crate) struct RequestHeads<'a> {
    pub(crate) hosts: usize,
    pub(crate) accept_encoding: Option<&'a HeaderValue>,
    pub(crate) content_length: Option<&'a HeaderValue>,
    pub(crate) expect: Option<&'a HeaderValue>,
    pub(crate) if_none_match: Option<&'a HeaderValue>,
    pub(crate) if_modified_since: Option<&'a HeaderValue>,
    pub(crate) cache_control: Option<&'a HeaderValue>,
    pub(crate) referer: Option<&'a HeaderValue>,
    pub(crate) user_agent: Option<&'a HeaderValue>,
}

impl<'a> RequestHeads<'a> {
    /// Walks `headers` once.
    pub(crate) fn of(headers: &'a HeaderMap) -> Self {
        let mut heads = RequestHeads::default();
        for (name, value) in headers {
            let slot = if name == header::HOST {
                heads.hosts += 1;
                continue;
            } else if name == header::ACCEPT_ENCODING {
                &mut heads.accept_encoding
            } else if name == header::USER_AGENT {
                &mut heads.user_agent
            } else if name == header::CONTENT_LENGTH {
                &mut heads.content_length
            } else if name == header::REFERER {
                &mut heads.referer
            } else if name == header::IF_NONE_MATCH {
                &mut heads.if_none_match
            } else if name == header::IF_MODIFIED_SINCE {
                &mut heads.if_modified_since
            } else if name == header::CACHE_CONTROL {
                &mut heads.cache_control
            } else if name == header::EXPECT {
                &mut heads.expect
            } else {
                continue;
            };
            // The first value, as `get` answers; a repeated header's later values follow it.
            if slot.is_none() {
                *slot = Some(value);
            }
        }
        heads
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_what_lookups_by_name_find() {
        let mut headers = HeaderMap::new();
        headers.append(header::HOST, HeaderValue::from_static("a"));
        headers.append("x-other", HeaderValue::from_static("x"));
        headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static("gzip"));
        headers.append(header::ACCEPT_ENCODING, HeaderValue::from_static("br"));
        headers.append(header::HOST, HeaderValue::from_static("b"));
        headers.append(header::USER_AGENT, HeaderValue::from_static("curl/8"));
        headers.append(header::CONTENT_LENGTH, HeaderValue::from_static("12"));
        headers.append(header::REFERER, HeaderValue::from_static("http://r"));
        headers.append(header::IF_NONE_MATCH, HeaderValue::from_static("W/\"1\""));
        headers.append(header::IF_MODIFIED_SINCE, HeaderValue::from_static("then"));
        headers.append(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.append(header::CACHE_CONTROL, HeaderValue::from_static("max-age=1"));
        headers.append(header::EXPECT, HeaderValue::from_static("100-continue"));
        let heads = RequestHeads::of(&headers);
        assert_eq!(heads.hosts, 2);
        let found = [
            (header::ACCEPT_ENCODING, heads.accept_encoding),
            (header::USER_AGENT, heads.user_agent),
            (header::CONTENT_LENGTH, heads.content_length),
            (header::REFERER, heads.referer),
            (header::IF_NONE_MATCH, heads.if_none_match),
            (header::IF_MODIFIED_SINCE, heads.if_modified_since),
            (header::CACHE_CONTROL, heads.cache_control),
            (header::EXPECT, heads.expect),
        ];
        for (name, value) in found {
            assert_eq!(value, headers.get(&name), "{name}");
            assert!(value.is_some(), "{name}");
        }

        let empty = HeaderMap::new();
        let none = RequestHeads::of(&empty);
        assert_eq!(none.hosts, 0);
        assert!(none.accept_encoding.is_none() && none.user_agent.is_none());
        assert!(none.content_length.is_none() && none.referer.is_none());
        assert!(none.if_none_match.is_none() && none.if_modified_since.is_none());
        assert!(none.cache_control.is_none() && none.expect.is_none());
    }
}
