//! [`MockServer`]: a local HTTP server that a test programs with expected requests and canned
//! answers (what MSW is to Backstage's tests), on `wiremock`.

use std::ops::Deref;

use serde_json::{Value, json};

/// A local HTTP server on a random loopback port that answers as the test programs it, for
/// the outside world a plugin talks to: other backends (discovery, `PluginClient`), GitHub and
/// GitLab (`UrlReader`), plain web servers, JWKS endpoints.
///
/// Program it with [`wiremock`]'s `Mock`s (re-exported as `backstage::testing::wiremock`);
/// point the backend at it with the config helpers, merged with `TestBackend::builder().config(..)`.
/// It derefs to `wiremock::MockServer`: `received_requests`, `verify` and the rest are there.
///
/// ```
/// use backstage::testing::MockServer;
/// use backstage::testing::wiremock::{Mock, ResponseTemplate, matchers::{method, path}};
/// use backstage::url_reader::ReadUrlOptions;
/// use backstage::{RootConfig, UrlReader};
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// let server = MockServer::start().await;
/// Mock::given(method("GET"))
///     .and(path("/catalog-info.yaml"))
///     .respond_with(ResponseTemplate::new(200).set_body_string("kind: Component").insert_header("etag", "\"v1\""))
///     .expect(1)
///     .mount(&server)
///     .await;
///
/// let reader = UrlReader::from_config(&RootConfig::from_value(server.reading_allow())).unwrap();
/// let read = reader.read_url(&server.url("/catalog-info.yaml"), ReadUrlOptions::new()).await.unwrap();
/// assert_eq!(read.etag(), Some("\"v1\""));
/// assert_eq!(read.bytes().await.unwrap(), "kind: Component");
/// # }
/// ```
#[derive(Debug)]
pub struct MockServer {
    inner: wiremock::MockServer,
}

impl Deref for MockServer {
    type Target = wiremock::MockServer;
    fn deref(&self) -> &wiremock::MockServer {
        &self.inner
    }
}

impl MockServer {
    /// Starts a server on `127.0.0.1` and a free port. Requests no `Mock` matches get 404.
    pub async fn start() -> MockServer {
        MockServer {
            inner: wiremock::MockServer::start().await,
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        self.inner.uri()
    }

    /// `127.0.0.1:<port>`, as `backend.reading.allow` and integrations name hosts.
    pub fn host(&self) -> String {
        self.inner.address().to_string()
    }

    /// `http://127.0.0.1:<port><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.inner.uri())
    }

    /// Config that lets the fetch reader read from this server: `backend.reading.allow`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// let server = backstage::testing::MockServer::start().await;
    /// let config = server.reading_allow();
    /// assert_eq!(config["backend"]["reading"]["allow"][0]["host"], server.host());
    /// # }
    /// ```
    pub fn reading_allow(&self) -> Value {
        json!({ "backend": { "reading": { "allow": [{ "host": self.host() }] } } })
    }

    /// Config that sends calls to `plugins` here (`discovery.endpoints`): `PluginClient` and
    /// discovery then reach `http://127.0.0.1:<port>/api/<pluginId>`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() {
    /// use backstage::{Discovery, RootConfig};
    /// let server = backstage::testing::MockServer::start().await;
    /// let discovery = Discovery::from_config(&RootConfig::from_value(server.discovery(&["catalog"]))).unwrap();
    /// assert_eq!(discovery.base_url("catalog"), server.url("/api/catalog"));
    /// # }
    /// ```
    pub fn discovery(&self, plugins: &[&str]) -> Value {
        json!({ "discovery": { "endpoints": [{
            "target": format!("{}/api/{{{{pluginId}}}}", self.uri()),
            "plugins": plugins,
        }] } })
    }

    /// Config of a GitHub integration whose host, API and raw host are this server:
    /// files of `http://127.0.0.1:<port>/<owner>/<repo>/blob/<ref>/<path>` are read from
    /// `/repos/<owner>/<repo>/contents/<path>` with a token, from `/raw/<owner>/<repo>/<ref>/<path>`
    /// without one; trees from `/repos/<owner>/<repo>/commits/<ref>/status` and
    /// `/repos/<owner>/<repo>/tarball/<sha>`.
    pub fn github_integration(&self, token: Option<&str>) -> Value {
        json!({ "integrations": { "github": [{
            "host": self.host(),
            "apiBaseUrl": self.uri(),
            "rawBaseUrl": self.url("/raw"),
            "token": token,
        }] } })
    }

    /// Config of a GitLab integration on this server (`baseUrl` is the server, `apiBaseUrl`
    /// `/api/v4` on it).
    pub fn gitlab_integration(&self, token: Option<&str>) -> Value {
        json!({ "integrations": { "gitlab": [{
            "host": self.host(),
            "baseUrl": self.uri(),
            "token": token,
        }] } })
    }
}

/// A `.tar.gz` repository archive as GitHub's and GitLab's archive APIs answer it: every file
/// below one top folder (`top/<path>`).
///
/// ```
/// let archive = backstage::testing::tar_gz("owner-repo-1a2b3c", &[("docs/index.md", "# Hi")]);
/// assert_eq!(&archive[..2], &[0x1f, 0x8b]); // gzip
/// ```
pub fn tar_gz<C: AsRef<[u8]>>(top: &str, files: &[(&str, C)]) -> Vec<u8> {
    let encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    let mut builder = tar::Builder::new(encoder);
    for (path, content) in files {
        let mut header = tar::Header::new_gnu();
        let content = content.as_ref();
        header.set_size(content.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(1_700_000_000);
        header.set_cksum();
        // Writing into memory cannot fail; a path tar cannot hold is the test's mistake.
        let appended = builder.append_data(&mut header, format!("{top}/{path}"), content);
        assert!(appended.is_ok(), "tar_gz: cannot archive '{path}'");
    }
    builder
        .into_inner()
        .and_then(|encoder| encoder.finish())
        .unwrap_or_default()
}
