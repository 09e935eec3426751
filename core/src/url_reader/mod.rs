//! The `urlReader` service: content read from where it lives (a file in a GitHub or GitLab
//! repository, a folder of one, any allowed URL) with the operator's credentials and
//! allow-list.
//!
//! ```yaml
//! backend:
//!   reading:
//!     allow:                               # plain URLs the fetch reader may read
//!       - host: example.com                # exactly this host, default port
//!       - host: '*.internal.example.com'   # any subdomain
//!       - host: docs.example.com:8080      # a port (or a range: 8000-8999)
//!         paths: [/public/]                # only below these paths
//!     maxSize: 100mb                       # per response, archives after unpacking
//!     timeout: 60s                         # per request, body included
//! integrations:
//!   github:
//!     - host: github.com
//!       token: ${GITHUB_TOKEN}             # apiBaseUrl, rawBaseUrl: GitHub's by default
//!     - host: ghe.example.com
//!       apiBaseUrl: https://ghe.example.com/api/v3
//!       rawBaseUrl: https://ghe.example.com/raw
//!       token: ${GHE_TOKEN}
//!   gitlab:
//!     - host: gitlab.example.com
//!       baseUrl: https://gitlab.example.com  # apiBaseUrl: <baseUrl>/api/v4 by default
//!       token: ${GITLAB_TOKEN}
//! ```
//!
//! A URL goes to the first reader that handles it: readers that linked crates provide
//! (`#[service(provides = dyn Reader)]`), then one per GitHub integration and one per GitLab
//! integration (matched by host; `github.com` and `gitlab.com` are always there, without a
//! token unless configured), then the fetch reader for URLs that `backend.reading.allow`
//! lists. Anything else is `NotAllowedError` before a connection is made. Redirects are
//! followed by hand and each hop is checked again; an integration's token is sent only to its
//! own API origin; tokens never appear in logs, errors or `Debug` output.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use url::Url;

use crate::config::{HumanDuration, RootConfig, Size};
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, Inject as _, Multi, PluginScoped, Root, Service, ServiceContext};

mod allow;
mod archive;
mod fetch;
mod github;
mod gitlab;
mod response;
mod scm;
pub(crate) mod search;
mod transport;

pub use response::{
    ReadTreeOptions, ReadTreeResponse, ReadUrlOptions, ReadUrlResponse, SearchFile, SearchOptions,
    SearchResponse, TreeFile, TreeFilter,
};

/// The default of `backend.reading.maxSize`.
const DEFAULT_MAX_SIZE: u64 = 100 * 1024 * 1024;
/// The default of `backend.reading.timeout`.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);

/// One reader: the URLs it handles and how it reads them. The built-in readers are one per
/// integration and the fetch reader; a crate adds a reader for another provider with a service
/// that provides `dyn Reader`, which every [`UrlReader`] then asks first.
///
/// ```
/// use backstage::prelude::*;
/// use backstage::url_reader::{Reader, ReadUrlOptions, ReadUrlResponse};
/// use backstage::plugin::BoxFuture;
///
/// /// Reads `memo://` URLs from a fixed text.
/// #[service(scope = "root", provides = dyn Reader)]
/// #[derive(Clone, Default)]
/// pub struct MemoReader;
///
/// impl Reader for MemoReader {
///     fn handles(&self, url: &url::Url) -> bool {
///         url.scheme() == "memo"
///     }
///     fn read_url<'a>(
///         &'a self,
///         url: &'a url::Url,
///         _options: &'a ReadUrlOptions,
///     ) -> BoxFuture<'a, Result<ReadUrlResponse>> {
///         Box::pin(async move { Ok(ReadUrlResponse::from_bytes(format!("memo of {}", url.path()))) })
///     }
/// }
/// # fn main() {}
/// ```
pub trait Reader: Send + Sync + 'static {
    /// Whether this reader reads `url` (Backstage's predicate). The first reader that handles
    /// a URL reads it.
    fn handles(&self, url: &Url) -> bool;

    /// Reads one URL. Unchanged content (by `options`) is `Error::not_modified`, missing
    /// content `Error::not_found`.
    fn read_url<'a>(
        &'a self,
        url: &'a Url,
        options: &'a ReadUrlOptions,
    ) -> BoxFuture<'a, Result<ReadUrlResponse>>;

    /// Reads the files below a folder. The default: `NotImplementedError`.
    fn read_tree<'a>(
        &'a self,
        url: &'a Url,
        options: &'a ReadTreeOptions,
    ) -> BoxFuture<'a, Result<ReadTreeResponse>> {
        let _ = options;
        Box::pin(async move {
            Err(Error::not_implemented(format!(
                "{} cannot read trees ({url})",
                self.describe()
            )))
        })
    }

    /// Finds the files a URL with glob syntax in its path names. The default reads the URL as
    /// one file (none when it does not exist) and refuses glob syntax.
    fn search<'a>(
        &'a self,
        url: &'a Url,
        options: &'a SearchOptions,
    ) -> BoxFuture<'a, Result<SearchResponse>> {
        Box::pin(async move {
            if search::is_glob(url.path()) {
                return Err(Error::input(format!(
                    "{} does not search patterns ({url})",
                    self.describe()
                )));
            }
            search::search_one(self, url, options).await
        })
    }

    /// What the reader is, for messages and `Debug` (`github{host=github.com,authed=true}`);
    /// never a token.
    fn describe(&self) -> String {
        std::any::type_name::<Self>().to_owned()
    }
}

/// `backend.reading`, read once.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ReadingSection {
    #[serde(default)]
    allow: Vec<allow::AllowEntry>,
    max_size: Option<Size>,
    timeout: Option<HumanDuration>,
}

/// The `urlReader` service: reads URLs, folders and search patterns through the reader that
/// handles each URL.
///
/// Inject it with `#[inject] reader: UrlReader`. In code and tests, [`UrlReader::from_config`]
/// makes the built-in readers; `backstage::testing::mock::url_reader()` serves content from
/// memory.
///
/// ```
/// use backstage::{ErrorKind, RootConfig, UrlReader};
/// use backstage::url_reader::ReadUrlOptions;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let reader = UrlReader::from_config(&RootConfig::empty()).unwrap();
/// // Nothing is allowed unless backend.reading.allow or an integration says so:
/// let error = reader.read_url("https://example.com/catalog-info.yaml", ReadUrlOptions::new()).await.unwrap_err();
/// assert_eq!(error.kind(), ErrorKind::NotAllowed);
/// # });
/// ```
#[derive(Clone)]
pub struct UrlReader {
    readers: Arc<[Arc<dyn Reader>]>,
}

impl fmt::Debug for UrlReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.readers.iter().map(|r| r.describe()))
            .finish()
    }
}

impl UrlReader {
    /// The built-in readers as `config` sets them up: the GitHub and GitLab integrations, then
    /// the fetch reader for `backend.reading.allow`. Errors name the config key at fault.
    pub fn from_config(config: &RootConfig) -> Result<UrlReader> {
        Ok(UrlReader::new(builtin_readers(config)?))
    }

    /// A reader that asks exactly `readers`, in order.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use backstage::{RootConfig, UrlReader};
    /// let builtin = UrlReader::from_config(&RootConfig::empty()).unwrap();
    /// let none = UrlReader::new(Vec::new());
    /// assert!(format!("{builtin:?}").contains("github{host=github.com"));
    /// assert_eq!(format!("{none:?}"), "[]");
    /// ```
    pub fn new(readers: Vec<Arc<dyn Reader>>) -> UrlReader {
        UrlReader {
            readers: readers.into(),
        }
    }

    /// Reads `url`: the body and its version. With `options.etag` (or
    /// `last_modified_after`) unchanged content is `Error::not_modified`; missing content is
    /// `Error::not_found`; a URL no reader handles is `Error::not_allowed`.
    pub async fn read_url(&self, url: &str, options: ReadUrlOptions) -> Result<ReadUrlResponse> {
        let (url, reader) = self.reader_for(url)?;
        reader.read_url(&url, &options).await
    }

    /// Reads the files below the folder `url` names (`https://github.com/o/r/tree/main/docs`),
    /// with one etag for the tree. With `options.etag` an unchanged tree is
    /// `Error::not_modified`.
    pub async fn read_tree(&self, url: &str, options: ReadTreeOptions) -> Result<ReadTreeResponse> {
        let (url, reader) = self.reader_for(url)?;
        reader.read_tree(&url, &options).await
    }

    /// The files matching the glob pattern in `url`'s path
    /// (`https://github.com/o/r/blob/main/catalog/*.yaml`); a URL without one is read as a
    /// single file (none when missing).
    pub async fn search(&self, url: &str, options: SearchOptions) -> Result<SearchResponse> {
        let (url, reader) = self.reader_for(url)?;
        reader.search(&url, &options).await
    }

    fn reader_for(&self, url: &str) -> Result<(Url, &dyn Reader)> {
        let parsed =
            Url::parse(url).map_err(|e| Error::input(format!("'{url}' is not a URL: {e}")))?;
        match self.readers.iter().find(|r| r.handles(&parsed)) {
            Some(reader) => Ok((parsed, reader.as_ref())),
            None => Err(not_allowed(url)),
        }
    }
}

/// Backstage's refusal of a URL no reader handles.
fn not_allowed(url: &str) -> Error {
    Error::not_allowed(format!(
        "Reading from '{url}' is not allowed. You may need to configure an integration for the target host, or add it to the configured list of allowed hosts at 'backend.reading.allow'"
    ))
}

/// The built-in readers: GitHub's, GitLab's, then fetch.
fn builtin_readers(config: &RootConfig) -> Result<Vec<Arc<dyn Reader>>> {
    let section: ReadingSection = config.get_optional("backend.reading")?.unwrap_or_default();
    let max_size = section.max_size.map_or(DEFAULT_MAX_SIZE, |s| s.0 as u64);
    let timeout = section.timeout.map_or(DEFAULT_TIMEOUT, Duration::from);
    let transport = transport::Transport::new(max_size, timeout)?;
    let allow = allow::AllowList::new(&section.allow)?;
    let mut readers: Vec<Arc<dyn Reader>> = Vec::new();
    for integration in github::integrations(config)? {
        readers.push(Arc::new(github::GithubReader::new(
            integration,
            transport.clone(),
        )));
    }
    for integration in gitlab::integrations(config)? {
        readers.push(Arc::new(gitlab::GitlabReader::new(
            integration,
            transport.clone(),
        )));
    }
    readers.push(Arc::new(fetch::FetchReader::new(allow, transport)));
    Ok(readers)
}

/// The built-in readers of a backend, read from config once and shared by every plugin's
/// [`UrlReader`] (one HTTP client, one connection pool).
#[derive(Clone)]
pub(crate) struct BuiltinReaders(Arc<[Arc<dyn Reader>]>);

impl Service for BuiltinReaders {
    type Scope = Root;
    const ID: &'static str = "core.urlReader.builtin";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::config::RootConfig);

    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move { Ok(BuiltinReaders(builtin_readers(ctx.config())?.into())) })
    }
}

impl Service for UrlReader {
    type Scope = PluginScoped;
    const ID: &'static str = "core.urlReader";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::config::RootConfig);

    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let provided = Multi::<dyn Reader>::inject(ctx).await?;
            let builtin = ctx.get::<BuiltinReaders>().await?;
            let mut readers: Vec<Arc<dyn Reader>> = provided.iter().cloned().collect();
            readers.extend(builtin.0.iter().cloned());
            Ok(UrlReader::new(readers))
        })
    }
}

crate::plugin::register!(UrlReader);
