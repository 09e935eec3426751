//! What reads are asked with and what they answer: options, bodies, trees, search results.

use std::fmt;
use std::path::{Component, Path};
use std::sync::Arc;
use std::time::SystemTime;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use futures_util::stream::{self, BoxStream};

use crate::error::{Error, Result};

/// How to read one URL: the version the caller already has, if any.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use backstage::url_reader::ReadUrlOptions;
/// let options = ReadUrlOptions::new()
///     .etag("\"abc\"")
///     .modified_after(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// assert_eq!(options.etag.as_deref(), Some("\"abc\""));
/// ```
#[derive(Clone, Debug, Default)]
pub struct ReadUrlOptions {
    /// The `etag` of an earlier read: unchanged content is `Error::not_modified`
    /// (`If-None-Match`).
    pub etag: Option<String>,
    /// Content not modified since this time is `Error::not_modified` (`If-Modified-Since`).
    pub last_modified_after: Option<SystemTime>,
}

impl ReadUrlOptions {
    /// No condition: always read.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read only when the content's etag differs from `etag`.
    #[must_use]
    pub fn etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }

    /// Read only when the content changed after `time`.
    #[must_use]
    pub fn modified_after(mut self, time: SystemTime) -> Self {
        self.last_modified_after = Some(time);
        self
    }
}

/// The content of one URL, read as bytes or as a stream, with its version.
///
/// ```
/// use backstage::url_reader::ReadUrlResponse;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let response = ReadUrlResponse::from_bytes("hello").with_etag("\"v1\"");
/// assert_eq!(response.etag(), Some("\"v1\""));
/// assert_eq!(response.bytes().await.unwrap(), "hello");
/// # });
/// ```
pub struct ReadUrlResponse {
    etag: Option<String>,
    last_modified_at: Option<SystemTime>,
    body: BoxStream<'static, Result<Bytes>>,
}

impl fmt::Debug for ReadUrlResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadUrlResponse")
            .field("etag", &self.etag)
            .field("last_modified_at", &self.last_modified_at)
            .finish_non_exhaustive()
    }
}

impl ReadUrlResponse {
    /// A response whose body is `bytes`.
    pub fn from_bytes(bytes: impl Into<Bytes>) -> Self {
        Self::from_stream(stream::once(std::future::ready(Ok(bytes.into()))).boxed())
    }

    /// A response whose body arrives as `stream` (what a reader of a large file returns).
    pub fn from_stream(stream: BoxStream<'static, Result<Bytes>>) -> Self {
        ReadUrlResponse {
            etag: None,
            last_modified_at: None,
            body: stream,
        }
    }

    /// The same response with an etag.
    #[must_use]
    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }

    /// The same response with the time its content last changed.
    #[must_use]
    pub fn with_last_modified(mut self, time: Option<SystemTime>) -> Self {
        self.last_modified_at = time;
        self
    }

    /// The content's version, to pass back as [`ReadUrlOptions::etag`] next time.
    pub fn etag(&self) -> Option<&str> {
        self.etag.as_deref()
    }

    /// When the content last changed, when the source says.
    pub fn last_modified_at(&self) -> Option<SystemTime> {
        self.last_modified_at
    }

    /// The whole body. Bodies over `backend.reading.maxSize` are an error.
    pub async fn bytes(self) -> Result<Bytes> {
        let mut body = self.body;
        let mut out = BytesMut::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }

    /// The body as it arrives, chunk by chunk; the size limit and timeout still apply.
    pub fn stream(self) -> BoxStream<'static, Result<Bytes>> {
        self.body
    }
}

/// Which files of a tree to keep: called with each file's path below the tree's folder and its
/// size in bytes.
pub type TreeFilter = Arc<dyn Fn(&str, u64) -> bool + Send + Sync>;

/// How to read a tree: the version the caller already has, and which files it wants.
///
/// ```
/// use backstage::url_reader::ReadTreeOptions;
/// let options = ReadTreeOptions::new()
///     .etag("4f2c1d")
///     .filter(|path, size| path.ends_with(".md") && size < 1_000_000);
/// assert!(options.filter.is_some());
/// ```
#[derive(Clone, Default)]
pub struct ReadTreeOptions {
    /// The `etag` of an earlier read of the tree (a commit): unchanged is `Error::not_modified`.
    pub etag: Option<String>,
    /// Keeps only the files it returns `true` for.
    pub filter: Option<TreeFilter>,
}

impl fmt::Debug for ReadTreeOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ReadTreeOptions")
            .field("etag", &self.etag)
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

impl ReadTreeOptions {
    /// Every file, unconditionally.
    pub fn new() -> Self {
        Self::default()
    }

    /// Read only when the tree's etag differs from `etag`.
    #[must_use]
    pub fn etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }

    /// Keep only the files `filter` accepts (path below the folder, size in bytes).
    #[must_use]
    pub fn filter(mut self, filter: impl Fn(&str, u64) -> bool + Send + Sync + 'static) -> Self {
        self.filter = Some(Arc::new(filter));
        self
    }

    /// Whether `filter` keeps the file at `path` of `size` bytes.
    pub(crate) fn keeps(&self, path: &str, size: u64) -> bool {
        self.filter.as_ref().is_none_or(|f| f(path, size))
    }
}

/// One file of a tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TreeFile {
    /// The path below the tree's folder, `/`-separated, without a leading `/`.
    pub path: String,
    /// The file's content.
    pub content: Bytes,
    /// When the file last changed, when the source says.
    pub last_modified_at: Option<SystemTime>,
}

/// The files below a folder, with one etag for the whole tree (for a repository, the commit).
///
/// ```
/// use backstage::url_reader::{ReadTreeResponse, TreeFile};
/// let tree = ReadTreeResponse {
///     etag: "4f2c1d".into(),
///     files: vec![TreeFile { path: "index.md".into(), content: "# Hi".into(), last_modified_at: None }],
/// };
/// assert_eq!(tree.file("index.md").unwrap().content, "# Hi");
/// ```
#[derive(Clone, Debug, Default)]
pub struct ReadTreeResponse {
    /// The tree's version, to pass back as [`ReadTreeOptions::etag`].
    pub etag: String,
    /// The files, in the order the source lists them.
    pub files: Vec<TreeFile>,
}

impl ReadTreeResponse {
    /// The file at `path`, if the tree has it.
    pub fn file(&self, path: &str) -> Option<&TreeFile> {
        self.files.iter().find(|f| f.path == path)
    }

    /// Writes the files below `dir` (created if missing), as Backstage's `dir()` extracts a
    /// tree. Paths that would leave `dir` are refused.
    ///
    /// ```
    /// use backstage::url_reader::{ReadTreeResponse, TreeFile};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let tree = ReadTreeResponse {
    ///     etag: "1".into(),
    ///     files: vec![TreeFile { path: "docs/a.md".into(), content: "a".into(), last_modified_at: None }],
    /// };
    /// let dir = std::env::temp_dir().join(format!("tree-doc-{}", std::process::id()));
    /// tree.write_to(&dir).await.unwrap();
    /// assert_eq!(std::fs::read_to_string(dir.join("docs/a.md")).unwrap(), "a");
    /// # std::fs::remove_dir_all(&dir).unwrap();
    /// # });
    /// ```
    pub async fn write_to(&self, dir: &Path) -> Result<()> {
        let dir = dir.to_owned();
        let files = self.files.clone();
        tokio::task::spawn_blocking(move || {
            for file in files {
                let relative = Path::new(&file.path);
                if relative
                    .components()
                    .any(|c| !matches!(c, Component::Normal(_)))
                {
                    return Err(Error::input(format!(
                        "the tree's file '{}' would be written outside the target folder",
                        file.path
                    )));
                }
                let target = dir.join(relative);
                if let Some(parent) = target.parent() {
                    std::fs::create_dir_all(parent)?;
                }
                std::fs::write(&target, &file.content)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| Error::internal(format!("writing a tree failed: {e}")))?
    }
}

/// How to search: the version the caller already has, if any.
#[derive(Clone, Debug, Default)]
pub struct SearchOptions {
    /// The `etag` of an earlier search: unchanged is `Error::not_modified`.
    pub etag: Option<String>,
}

impl SearchOptions {
    /// No condition.
    pub fn new() -> Self {
        Self::default()
    }

    /// Search only when the content's etag differs from `etag`.
    #[must_use]
    pub fn etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }
}

/// One file a search found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchFile {
    /// The file's own URL, readable with `read_url`.
    pub url: String,
    /// The file's content.
    pub content: Bytes,
    /// When the file last changed, when the source says.
    pub last_modified_at: Option<SystemTime>,
}

/// The files whose URLs match a search pattern.
#[derive(Clone, Debug, Default)]
pub struct SearchResponse {
    /// The version of what was searched (a commit), to pass back as [`SearchOptions::etag`].
    pub etag: String,
    /// The matching files.
    pub files: Vec<SearchFile>,
}
