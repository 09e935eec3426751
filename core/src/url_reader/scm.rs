//! What the readers of source-code hosts share: base URLs from config, hosts as integrations
//! name them, percent-decoding, and the refusal of paths that climb out of a repository.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, percent_decode_str, utf8_percent_encode};
use url::Url;

use crate::error::{Error, Result};

/// What `encodeURIComponent` leaves as it is.
const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// A configured base URL without its trailing `/`, checked to be an http(s) URL.
pub(super) fn base_url(key: &str, name: &str, value: Option<String>) -> Result<Option<String>> {
    let Some(value) = value else {
        return Ok(None);
    };
    let trimmed = value.trim().trim_end_matches('/').to_owned();
    match Url::parse(&trimmed) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Ok(Some(trimmed)),
        _ => Err(Error::input(format!(
            "{key}.{name}: '{value}' is not an http(s) URL"
        ))),
    }
}

/// `host[:port]` of `url`, as integrations name hosts.
pub(super) fn host_of(url: &Url) -> Option<String> {
    let host = url.host_str()?;
    Some(match url.port() {
        Some(port) => format!("{host}:{port}"),
        None => host.to_owned(),
    })
}

/// Whether `url` is on `host` (`host[:port]`), as a reader's predicate.
pub(super) fn on_host(url: &Url, host: &str) -> bool {
    host_of(url).is_some_and(|h| h == host)
}

/// A URL built from an integration's API base URL.
pub(super) fn api_url(text: &str) -> Result<Url> {
    Url::parse(text).map_err(|e| Error::internal(format!("{text}: {e}")))
}

/// `%xx` sequences decoded (invalid UTF-8 replaced).
pub(super) fn percent_decode(text: &str) -> String {
    percent_decode_str(text).decode_utf8_lossy().into_owned()
}

/// `text` encoded as `encodeURIComponent` encodes it (`group/project` is `group%2Fproject`).
pub(super) fn encode_component(text: &str) -> String {
    utf8_percent_encode(text, COMPONENT).to_string()
}

/// Refuses a repository path with `.` or `..` parts, however often percent-encoded.
pub(super) fn refuse_traversal(url: &Url, path: &str) -> Result<()> {
    let mut decoded = path.to_owned();
    loop {
        let next = percent_decode(&decoded);
        if next == decoded {
            break;
        }
        decoded = next;
    }
    if decoded
        .split(['/', '\\'])
        .any(|part| part == "." || part == "..")
    {
        return Err(Error::input(format!(
            "Invalid SCM URL: path traversal is not allowed in the URL ({url})"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused_however_encoded() {
        let url = Url::parse("https://github.com/o/r/blob/main/x").unwrap();
        assert!(refuse_traversal(&url, "docs/a.md").is_ok());
        assert!(refuse_traversal(&url, "docs/..%2Fsecret").is_err());
        assert!(refuse_traversal(&url, "docs/%252e%252e/secret").is_err());
        assert!(refuse_traversal(&url, "a..b/c").is_ok());
    }

    #[test]
    fn components_are_encoded_as_javascript_does() {
        assert_eq!(
            encode_component("group/sub group/p"),
            "group%2Fsub%20group%2Fp"
        );
        assert_eq!(encode_component("a-b_c.d~e"), "a-b_c.d~e");
    }

    #[test]
    fn hosts_keep_their_port() {
        assert_eq!(
            host_of(&Url::parse("http://127.0.0.1:8080/x").unwrap()).as_deref(),
            Some("127.0.0.1:8080")
        );
        assert_eq!(
            host_of(&Url::parse("https://github.com:443/x").unwrap()).as_deref(),
            Some("github.com")
        );
    }
}
