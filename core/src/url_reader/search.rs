//! Search patterns: glob syntax in a URL's path (`catalog/**/*.yaml`), matched as minimatch
//! matches Backstage's patterns (`*` stays within a `/`-separated part, `**` crosses them).

use globset::{GlobBuilder, GlobMatcher};

use crate::error::{Error, Result};

use super::Reader;
use super::response::{
    ReadTreeResponse, ReadUrlOptions, SearchFile, SearchOptions, SearchResponse,
};

/// Whether `path` holds glob syntax.
pub(crate) fn is_glob(path: &str) -> bool {
    path.contains(['*', '?', '[', '{'])
}

/// The matcher of `pattern` (without a leading `/`).
pub(crate) fn matcher(pattern: &str) -> Result<GlobMatcher> {
    GlobBuilder::new(pattern.trim_start_matches('/'))
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| Error::input(format!("'{pattern}' is not a search pattern: {e}")))
}

/// The part of `pattern` before its first segment with glob syntax: `catalog/foo/*.yaml` is
/// `catalog/foo`.
pub(crate) fn static_part(pattern: &str) -> &str {
    let mut end = 0;
    for (index, segment) in pattern.split('/').enumerate() {
        if is_glob(segment) {
            break;
        }
        end += segment.len() + usize::from(index > 0);
    }
    &pattern[..end.min(pattern.len())]
}

/// The files of `tree` as search results, each at `base/<prefix><path>`.
pub(crate) fn found(tree: ReadTreeResponse, base: &str, prefix: &str) -> SearchResponse {
    SearchResponse {
        etag: tree.etag,
        files: tree
            .files
            .into_iter()
            .map(|file| SearchFile {
                url: format!("{base}/{prefix}{}", file.path),
                content: file.content,
                last_modified_at: file.last_modified_at,
            })
            .collect(),
    }
}

/// A search without glob syntax: the one file, or nothing when it does not exist; what every
/// reader does for a plain URL, and the default of [`Reader::search`].
pub(crate) async fn search_one(
    reader: &(impl Reader + ?Sized),
    url: &url::Url,
    options: &SearchOptions,
) -> Result<SearchResponse> {
    let read_options = ReadUrlOptions {
        etag: options.etag.clone(),
        last_modified_after: None,
    };
    match reader.read_url(url, &read_options).await {
        Ok(response) => {
            let etag = response.etag().unwrap_or_default().to_owned();
            let last_modified_at = response.last_modified_at();
            let content = response.bytes().await?;
            Ok(SearchResponse {
                etag,
                files: vec![SearchFile {
                    url: url.to_string(),
                    content,
                    last_modified_at,
                }],
            })
        }
        Err(error) if error.kind() == crate::error::ErrorKind::NotFound => {
            Ok(SearchResponse::default())
        }
        Err(error) => Err(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_stay_within_segments() {
        let m = matcher("catalog/*.yaml").unwrap();
        assert!(m.is_match("catalog/a.yaml"));
        assert!(!m.is_match("catalog/x/a.yaml"));
        let m = matcher("/catalog/**/*.yaml").unwrap();
        assert!(m.is_match("catalog/x/y/a.yaml"));
        assert!(m.is_match("catalog/a.yaml"));
    }

    #[test]
    fn the_static_part_ends_before_the_first_glob() {
        assert_eq!(static_part("catalog/foo/*.yaml"), "catalog/foo");
        assert_eq!(static_part("*.yaml"), "");
        assert_eq!(static_part("a/b/c.yaml"), "a/b/c.yaml");
        assert!(is_glob("a/*.yaml") && is_glob("a/{b,c}") && !is_glob("a/b.yaml"));
    }
}
