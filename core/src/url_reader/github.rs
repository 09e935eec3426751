//! The GitHub reader: `integrations.github` entries (`host`, `token`, `apiBaseUrl`,
//! `rawBaseUrl`), one reader per host. Files are read from the contents API with a token, or
//! from the raw host without one; trees and search patterns from the commit's tarball.

use reqwest::header::{ACCEPT, HeaderMap, HeaderValue};
use serde::Deserialize;
use url::Url;

use crate::config::{RootConfig, Secret};
use crate::error::{Error, Result};
use crate::plugin::BoxFuture;

use super::Reader;
use super::archive::read_tar_gz;
use super::response::{
    ReadTreeOptions, ReadTreeResponse, ReadUrlOptions, ReadUrlResponse, SearchOptions,
    SearchResponse,
};
use super::scm::{api_url, base_url, host_of, on_host, percent_decode, refuse_traversal};
use super::search::{found, is_glob, matcher, search_one};
use super::transport::{Token, Transport, conditional_headers, status_text};

const GITHUB_HOST: &str = "github.com";
const GITHUB_API_BASE_URL: &str = "https://api.github.com";
const GITHUB_RAW_BASE_URL: &str = "https://raw.githubusercontent.com";

/// One `integrations.github` entry as written.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    host: Option<String>,
    api_base_url: Option<String>,
    raw_base_url: Option<String>,
    token: Option<Secret<String>>,
    #[serde(default)]
    apps: Option<serde_json::Value>,
}

/// One GitHub host and how to reach it.
#[derive(Clone, Debug)]
pub(crate) struct GithubIntegration {
    host: String,
    api: Option<String>,
    raw: Option<String>,
    token: Option<Token>,
}

/// The configured integrations, plus `github.com` when no entry names it.
pub(crate) fn integrations(config: &RootConfig) -> Result<Vec<GithubIntegration>> {
    let entries: Vec<Entry> = config
        .get_optional("integrations.github")?
        .unwrap_or_default();
    let mut out = Vec::with_capacity(entries.len() + 1);
    for (index, entry) in entries.into_iter().enumerate() {
        let key = format!("integrations.github[{index}]");
        let host = entry.host.unwrap_or_else(|| GITHUB_HOST.to_owned());
        let is_github = host == GITHUB_HOST;
        let api = base_url(&key, "apiBaseUrl", entry.api_base_url)?
            .or_else(|| is_github.then(|| GITHUB_API_BASE_URL.to_owned()));
        let raw = base_url(&key, "rawBaseUrl", entry.raw_base_url)?
            .or_else(|| is_github.then(|| GITHUB_RAW_BASE_URL.to_owned()));
        if api.is_none() && raw.is_none() {
            return Err(Error::input(format!(
                "{key}: the GitHub integration for '{host}' needs an apiBaseUrl or a rawBaseUrl"
            )));
        }
        if entry.apps.is_some() {
            tracing::warn!(
                "{key}.apps: GitHub App credentials are not supported by this backend yet; reading {host} with its token, if any"
            );
        }
        let token = match (entry.token, &api) {
            (Some(secret), Some(api)) if !secret.expose().trim().is_empty() => Some(Token {
                secret: Secret::new(secret.expose().trim().to_owned()),
                origin: Url::parse(api)
                    .map(|u| u.origin())
                    .map_err(|_| Error::input(format!("{key}.apiBaseUrl: not a URL")))?,
            }),
            _ => None,
        };
        out.push(GithubIntegration {
            host: host.to_ascii_lowercase(),
            api,
            raw,
            token,
        });
    }
    if !out.iter().any(|i| i.host == GITHUB_HOST) {
        out.push(GithubIntegration {
            host: GITHUB_HOST.to_owned(),
            api: Some(GITHUB_API_BASE_URL.to_owned()),
            raw: Some(GITHUB_RAW_BASE_URL.to_owned()),
            token: None,
        });
    }
    Ok(out)
}

/// The parts of a GitHub URL: `https://host/<owner>/<repo>/<blob|tree|raw>/<ref>/<path>`.
struct GitUrl<'a> {
    owner: &'a str,
    repo: &'a str,
    kind: Option<&'a str>,
    reference: Option<&'a str>,
    /// Still percent-encoded, without a leading `/`.
    path: String,
}

impl<'a> GitUrl<'a> {
    fn parse(url: &'a Url) -> Result<GitUrl<'a>> {
        let bad = || Error::input(format!("Incorrect URL: {url}, not a GitHub repository URL"));
        let mut segments = url.path_segments().ok_or_else(bad)?;
        let owner = segments.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
        let repo = segments.next().filter(|s| !s.is_empty()).ok_or_else(bad)?;
        let repo = repo.strip_suffix(".git").unwrap_or(repo);
        let kind = segments.next().filter(|s| !s.is_empty());
        let reference = segments.next().filter(|s| !s.is_empty());
        let path: Vec<&str> = segments.collect();
        let path = path.join("/");
        refuse_traversal(url, &path)?;
        Ok(GitUrl {
            owner,
            repo,
            kind,
            reference,
            path: path.trim_end_matches('/').to_owned(),
        })
    }

    fn decoded_path(&self) -> String {
        percent_decode(&self.path)
    }
}

#[derive(Deserialize)]
struct Repository {
    default_branch: String,
}

#[derive(Deserialize)]
struct CommitStatus {
    sha: String,
}

/// Reads one GitHub host.
pub(crate) struct GithubReader {
    integration: GithubIntegration,
    transport: Transport,
}

impl GithubReader {
    pub(crate) fn new(integration: GithubIntegration, transport: Transport) -> Self {
        GithubReader {
            integration,
            transport,
        }
    }

    fn api(&self) -> Result<&str> {
        self.integration.api.as_deref().ok_or_else(|| {
            Error::not_implemented(format!(
                "the GitHub integration for '{}' has no apiBaseUrl, which trees and searches need",
                self.integration.host
            ))
        })
    }

    /// `GET url`, the token sent to the API origin only; a failure in Backstage's words.
    async fn fetch(&self, url: &Url, headers: HeaderMap) -> Result<reqwest::Response> {
        let token = self.integration.token.as_ref();
        self.transport
            .get_ok(url, headers, token, |response| {
                let status = response.status();
                let exhausted = response
                    .headers()
                    .get("x-ratelimit-remaining")
                    .is_some_and(|v| v.as_bytes() == b"0");
                let limited = status.as_u16() == 429 || (status.as_u16() == 403 && exhausted);
                format!(
                    "Request failed for {url}, {}{}",
                    status_text(status),
                    if limited {
                        " (rate limit exceeded)"
                    } else {
                        ""
                    }
                )
            })
            .await
    }

    /// The file's URL on the contents API (with a token, or without a raw host) or on the raw
    /// host; the contents API is asked for the raw bytes.
    fn file_url(&self, git: &GitUrl<'_>, reference: &str, headers: &mut HeaderMap) -> Result<Url> {
        let (owner, repo, path) = (git.owner, git.repo, &git.path);
        let integration = &self.integration;
        let through_api = integration.token.is_some() || integration.raw.is_none();
        match (&integration.api, &integration.raw) {
            (Some(api), _) if through_api => {
                headers.insert(
                    ACCEPT,
                    HeaderValue::from_static("application/vnd.github.v3.raw"),
                );
                let mut target = api_url(&format!("{api}/repos/{owner}/{repo}/contents/{path}"))?;
                target
                    .query_pairs_mut()
                    .append_pair("ref", &percent_decode(reference));
                Ok(target)
            }
            (_, Some(raw)) => api_url(&format!("{raw}/{owner}/{repo}/{reference}/{path}")),
            _ => Err(Error::internal("a GitHub integration without base URLs")),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T> {
        let url = api_url(url)?;
        let response = self.fetch(&url, HeaderMap::new()).await?;
        self.transport.json(&url, response).await
    }

    /// The commit `reference` (or the default branch) points at; an unchanged one (by `etag`)
    /// is `Error::not_modified`.
    async fn commit(&self, url: &Url, git: &GitUrl<'_>, etag: Option<&str>) -> Result<String> {
        let api = self.api()?;
        let (owner, repo) = (git.owner, git.repo);
        let reference = match git.reference {
            Some(reference) => reference.to_owned(),
            None => {
                let repository: Repository =
                    self.json(&format!("{api}/repos/{owner}/{repo}")).await?;
                repository.default_branch
            }
        };
        let status: CommitStatus = self
            .json(&format!(
                "{api}/repos/{owner}/{repo}/commits/{reference}/status?per_page=0"
            ))
            .await?;
        if etag == Some(status.sha.as_str()) {
            return Err(Error::not_modified(format!(
                "{url} is unchanged at {}",
                status.sha
            )));
        }
        Ok(status.sha)
    }

    /// The files of the commit `sha` below `subpath`, from its tarball (built from
    /// `apiBaseUrl`, never from a URL an answer names, so the token stays on the API).
    async fn tree(
        &self,
        git: &GitUrl<'_>,
        sha: String,
        subpath: &str,
        options: &ReadTreeOptions,
    ) -> Result<ReadTreeResponse> {
        let api = self.api()?;
        let url = api_url(&format!(
            "{api}/repos/{}/{}/tarball/{sha}",
            git.owner, git.repo
        ))?;
        let response = self.fetch(&url, HeaderMap::new()).await?;
        let archive = self.transport.bytes(&url, response).await?;
        read_tar_gz(archive, subpath, sha, options, self.transport.max_size).await
    }
}

impl Reader for GithubReader {
    fn handles(&self, url: &Url) -> bool {
        on_host(url, &self.integration.host)
    }

    fn read_url<'a>(
        &'a self,
        url: &'a Url,
        options: &'a ReadUrlOptions,
    ) -> BoxFuture<'a, Result<ReadUrlResponse>> {
        Box::pin(async move {
            let git = GitUrl::parse(url)?;
            let (Some("blob" | "raw" | "tree"), Some(reference), false) =
                (git.kind, git.reference, git.path.is_empty())
            else {
                return Err(Error::input(format!(
                    "Incorrect URL: {url}, a GitHub file URL reads /<owner>/<repo>/blob/<ref>/<path>"
                )));
            };
            let mut headers = conditional_headers(options);
            let target = self.file_url(&git, reference, &mut headers)?;
            let response = self.fetch(&target, headers).await?;
            Ok(self.transport.read_url_response(&target, response))
        })
    }

    fn read_tree<'a>(
        &'a self,
        url: &'a Url,
        options: &'a ReadTreeOptions,
    ) -> BoxFuture<'a, Result<ReadTreeResponse>> {
        Box::pin(async move {
            let git = GitUrl::parse(url)?;
            let sha = self.commit(url, &git, options.etag.as_deref()).await?;
            self.tree(&git, sha, &git.decoded_path(), options).await
        })
    }

    fn search<'a>(
        &'a self,
        url: &'a Url,
        options: &'a SearchOptions,
    ) -> BoxFuture<'a, Result<SearchResponse>> {
        Box::pin(async move {
            let git = GitUrl::parse(url)?;
            let pattern = git.decoded_path();
            if !is_glob(&pattern) {
                return search_one(self, url, options).await;
            }
            let matcher = matcher(&pattern)?;
            let sha = self.commit(url, &git, options.etag.as_deref()).await?;
            let filter = ReadTreeOptions::new().filter(move |path, _| matcher.is_match(path));
            let tree = self.tree(&git, sha, "", &filter).await?;
            let base = format!(
                "{}://{}/{}/{}/{}/{}",
                url.scheme(),
                host_of(url).unwrap_or_default(),
                git.owner,
                git.repo,
                git.kind.unwrap_or("blob"),
                git.reference.unwrap_or("HEAD"),
            );
            Ok(found(tree, &base, ""))
        })
    }

    fn describe(&self) -> String {
        format!(
            "github{{host={},authed={}}}",
            self.integration.host,
            self.integration.token.is_some()
        )
    }
}
