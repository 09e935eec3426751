//! `mock::url_reader()`: a [`UrlReader`] that serves files from memory.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, RwLock};

use bytes::Bytes;
use url::Url;

use crate::UrlReader;
use crate::error::{Error, Result};
use crate::plugin::BoxFuture;
use crate::url_reader::{
    ReadTreeOptions, ReadTreeResponse, ReadUrlOptions, ReadUrlResponse, Reader, SearchFile,
    SearchOptions, SearchResponse, TreeFile,
};

/// In-memory content behind a [`UrlReader`], as Backstage's `mockServices.urlReader` with
/// files: every URL is handled; a URL with no file is `NotFoundError`.
///
/// - `read_url` answers the file at exactly that URL, with an etag made from its content;
/// - `read_tree` answers the files below the folder URL (paths relative to it), with an etag
///   made from all of them;
/// - `search` matches the glob in the URL's path against the paths of the files on the same
///   host.
///
/// An unchanged etag is `NotModifiedError`. Files can be changed while a test runs, through any
/// clone.
///
/// ```
/// use backstage::testing::mock;
/// use backstage::url_reader::{ReadTreeOptions, ReadUrlOptions, SearchOptions};
/// use backstage::ErrorKind;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let files = mock::url_reader()
///     .with_file("https://github.com/o/r/blob/main/catalog-info.yaml", "kind: Component")
///     .with_file("https://github.com/o/r/blob/main/docs/index.md", "# Hello");
/// let reader = files.url_reader();
///
/// let read = reader.read_url("https://github.com/o/r/blob/main/catalog-info.yaml", ReadUrlOptions::new()).await.unwrap();
/// let etag = read.etag().unwrap().to_owned();
/// assert_eq!(read.bytes().await.unwrap(), "kind: Component");
///
/// let again = reader.read_url("https://github.com/o/r/blob/main/catalog-info.yaml", ReadUrlOptions::new().etag(etag)).await;
/// assert_eq!(again.unwrap_err().kind(), ErrorKind::NotModified);
///
/// let tree = reader.read_tree("https://github.com/o/r/blob/main/docs", ReadTreeOptions::new()).await.unwrap();
/// assert_eq!(tree.files[0].path, "index.md");
///
/// let found = reader.search("https://github.com/o/r/blob/main/**/*.yaml", SearchOptions::new()).await.unwrap();
/// assert_eq!(found.files.len(), 1);
/// # });
/// ```
#[derive(Clone, Default)]
pub struct MockUrlReader {
    files: Arc<RwLock<BTreeMap<String, Bytes>>>,
}

impl fmt::Debug for MockUrlReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.snapshot().keys()).finish()
    }
}

/// An empty [`MockUrlReader`]; add files with [`MockUrlReader::with_file`].
pub fn url_reader() -> MockUrlReader {
    MockUrlReader::default()
}

impl MockUrlReader {
    /// The same reader with `content` at `url`.
    #[must_use]
    pub fn with_file(self, url: &str, content: impl Into<Bytes>) -> Self {
        self.set_file(url, content);
        self
    }

    /// Puts `content` at `url` (replacing what was there), for every clone of this reader.
    pub fn set_file(&self, url: &str, content: impl Into<Bytes>) {
        let key = normalise(url);
        self.write().insert(key, content.into());
    }

    /// Removes the file at `url`.
    pub fn remove_file(&self, url: &str) {
        self.write().remove(&normalise(url));
    }

    /// The service to hand a test backend: `TestBackend::builder().service(files.url_reader())`.
    pub fn url_reader(&self) -> UrlReader {
        UrlReader::new(vec![Arc::new(self.clone())])
    }

    fn snapshot(&self) -> BTreeMap<String, Bytes> {
        self.files.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, BTreeMap<String, Bytes>> {
        self.files.write().unwrap_or_else(|p| p.into_inner())
    }
}

impl From<MockUrlReader> for UrlReader {
    fn from(files: MockUrlReader) -> UrlReader {
        files.url_reader()
    }
}

/// The URL as [`Url`] writes it, so `https://x.com` and `https://x.com/` are one key.
fn normalise(url: &str) -> String {
    Url::parse(url).map_or_else(|_| url.to_owned(), |u| u.to_string())
}

/// A short hex digest of `parts`, as the mock's etags.
fn etag<'a>(parts: impl IntoIterator<Item = &'a [u8]>) -> String {
    let mut context = ring::digest::Context::new(&ring::digest::SHA256);
    for part in parts {
        context.update(&(part.len() as u64).to_be_bytes());
        context.update(part);
    }
    context
        .finish()
        .as_ref()
        .iter()
        .take(10)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The URL's path, percent-decoded, as a search pattern or a path to match.
fn decoded_path(url: &Url) -> String {
    percent_encoding::percent_decode_str(url.path())
        .decode_utf8_lossy()
        .into_owned()
}

fn unchanged(url: &Url, wanted: Option<&str>, etag: &str) -> Result<()> {
    if wanted == Some(etag) {
        return Err(Error::not_modified(format!("{url} is unchanged")));
    }
    Ok(())
}

impl Reader for MockUrlReader {
    fn handles(&self, _url: &Url) -> bool {
        true
    }

    fn read_url<'a>(
        &'a self,
        url: &'a Url,
        options: &'a ReadUrlOptions,
    ) -> BoxFuture<'a, Result<ReadUrlResponse>> {
        Box::pin(async move {
            let content = self
                .snapshot()
                .get(url.as_str())
                .cloned()
                .ok_or_else(|| Error::not_found(format!("no mock file at {url}")))?;
            let tag = etag([content.as_ref()]);
            unchanged(url, options.etag.as_deref(), &tag)?;
            Ok(ReadUrlResponse::from_bytes(content).with_etag(tag))
        })
    }

    fn read_tree<'a>(
        &'a self,
        url: &'a Url,
        options: &'a ReadTreeOptions,
    ) -> BoxFuture<'a, Result<ReadTreeResponse>> {
        Box::pin(async move {
            let folder = format!("{}/", url.as_str().trim_end_matches('/'));
            let files: Vec<TreeFile> = self
                .snapshot()
                .into_iter()
                .filter_map(|(key, content)| {
                    let path = key.strip_prefix(&folder)?.to_owned();
                    Some(TreeFile {
                        path,
                        content,
                        last_modified_at: None,
                    })
                })
                .collect();
            if files.is_empty() {
                return Err(Error::not_found(format!("no mock files below {url}")));
            }
            let tag = etag(
                files
                    .iter()
                    .flat_map(|f| [f.path.as_bytes(), f.content.as_ref()]),
            );
            unchanged(url, options.etag.as_deref(), &tag)?;
            let files = files
                .into_iter()
                .filter(|f| options.keeps(&f.path, f.content.len() as u64))
                .collect();
            Ok(ReadTreeResponse { etag: tag, files })
        })
    }

    fn search<'a>(
        &'a self,
        url: &'a Url,
        options: &'a SearchOptions,
    ) -> BoxFuture<'a, Result<SearchResponse>> {
        Box::pin(async move {
            let pattern = decoded_path(url);
            let matcher = crate::url_reader::search::matcher(&pattern)?;
            let files: Vec<SearchFile> = self
                .snapshot()
                .into_iter()
                .filter_map(|(key, content)| {
                    let file = Url::parse(&key).ok()?;
                    let same_origin = file.origin() == url.origin();
                    let path = decoded_path(&file);
                    (same_origin && matcher.is_match(path.trim_start_matches('/'))).then_some(
                        SearchFile {
                            url: key,
                            content,
                            last_modified_at: None,
                        },
                    )
                })
                .collect();
            let tag = etag(
                files
                    .iter()
                    .flat_map(|f| [f.url.as_bytes(), f.content.as_ref()]),
            );
            unchanged(url, options.etag.as_deref(), &tag)?;
            Ok(SearchResponse { etag: tag, files })
        })
    }

    fn describe(&self) -> String {
        "mock{}".to_owned()
    }
}
