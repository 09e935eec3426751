//! The GitLab reader: `integrations.gitlab` entries (`host`, `token`, `baseUrl`,
//! `apiBaseUrl`), one reader per host. Files come from the repository files API, trees and
//! search patterns from the repository archive API, all through `apiBaseUrl`.

use reqwest::header::HeaderMap;
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
use super::scm::{
    api_url, base_url, encode_component, host_of, on_host, percent_decode, refuse_traversal,
};
use super::search::{found, is_glob, matcher, search_one, static_part};
use super::transport::{Token, Transport, conditional_headers, status_text};

const GITLAB_HOST: &str = "gitlab.com";
const GITLAB_API_BASE_URL: &str = "https://gitlab.com/api/v4";

/// One `integrations.gitlab` entry as written.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Entry {
    host: String,
    base_url: Option<String>,
    api_base_url: Option<String>,
    token: Option<Secret<String>>,
}

/// One GitLab host and how to reach it.
#[derive(Clone, Debug)]
pub(crate) struct GitlabIntegration {
    host: String,
    api: String,
    /// The path GitLab is served under (`/gitlab`), empty at the root; never on gitlab.com.
    relative_path: String,
    token: Option<Token>,
}

/// The configured integrations, plus `gitlab.com` when no entry names it.
pub(crate) fn integrations(config: &RootConfig) -> Result<Vec<GitlabIntegration>> {
    let entries: Vec<Entry> = config
        .get_optional("integrations.gitlab")?
        .unwrap_or_default();
    let mut out = Vec::with_capacity(entries.len() + 1);
    for (index, entry) in entries.into_iter().enumerate() {
        let key = format!("integrations.gitlab[{index}]");
        let host = entry.host.trim().to_ascii_lowercase();
        if host.is_empty() {
            return Err(Error::input(format!("{key}.host: a host is required")));
        }
        let base =
            base_url(&key, "baseUrl", entry.base_url)?.unwrap_or_else(|| format!("https://{host}"));
        let api = match base_url(&key, "apiBaseUrl", entry.api_base_url)? {
            Some(api) => api,
            None if host == GITLAB_HOST => GITLAB_API_BASE_URL.to_owned(),
            None => format!("{base}/api/v4"),
        };
        let relative_path = if host == GITLAB_HOST {
            String::new()
        } else {
            Url::parse(&base)
                .map(|u| u.path().trim_end_matches('/').to_owned())
                .map_err(|_| Error::input(format!("{key}.baseUrl: not a URL")))?
        };
        let token = match entry.token {
            Some(secret) if !secret.expose().trim().is_empty() => Some(Token {
                secret: Secret::new(secret.expose().trim().to_owned()),
                origin: Url::parse(&api)
                    .map(|u| u.origin())
                    .map_err(|_| Error::input(format!("{key}.apiBaseUrl: not a URL")))?,
            }),
            _ => None,
        };
        out.push(GitlabIntegration {
            host,
            api,
            relative_path,
            token,
        });
    }
    if !out.iter().any(|i| i.host == GITLAB_HOST) {
        out.push(GitlabIntegration {
            host: GITLAB_HOST.to_owned(),
            api: GITLAB_API_BASE_URL.to_owned(),
            relative_path: String::new(),
            token: None,
        });
    }
    Ok(out)
}

/// The parts of a GitLab URL: `https://host/<group/project>/-/<blob|tree>/<ref>/<path>`.
struct GitUrl {
    /// `group/sub/project`, decoded.
    project: String,
    kind: Option<String>,
    reference: Option<String>,
    /// Decoded, without leading or trailing `/`.
    path: String,
    /// The URL up to the path (`https://host/group/project/-/blob/main`), for search results.
    base: String,
}

impl GitUrl {
    fn parse(url: &Url, relative_path: &str) -> Result<GitUrl> {
        let raw = url.path();
        let inside = if relative_path.is_empty() {
            raw
        } else {
            raw.strip_prefix(relative_path)
                .filter(|rest| rest.starts_with('/'))
                .ok_or_else(|| {
                    Error::input(format!(
                        "Failed to read GitLab URL from {raw}. Url path must start with {relative_path}/."
                    ))
                })?
        };
        let inside = inside.trim_start_matches('/');
        let (project, rest) = match inside.split_once("/-/") {
            Some((project, rest)) => (project, Some(rest)),
            None => ["/blob/", "/tree/", "/raw/"]
                .iter()
                .filter_map(|marker| inside.find(marker))
                .min()
                .map_or((inside.trim_end_matches('/'), None), |at| {
                    (&inside[..at], Some(&inside[at + 1..]))
                }),
        };
        if project.is_empty() || !project.contains('/') {
            return Err(Error::input(format!(
                "Incorrect URL: {url}, not a GitLab project URL"
            )));
        }
        let mut parts = rest.unwrap_or_default().splitn(3, '/');
        let kind = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
        let reference = parts.next().filter(|s| !s.is_empty()).map(str::to_owned);
        let encoded_path = parts.next().unwrap_or_default().trim_end_matches('/');
        refuse_traversal(url, encoded_path)?;
        let base_end = raw.len() - raw.trim_end_matches('/').len();
        let base_path = raw[..raw.len() - base_end]
            .strip_suffix(encoded_path)
            .unwrap_or(raw)
            .trim_end_matches('/');
        Ok(GitUrl {
            project: percent_decode(project),
            kind,
            reference: reference.map(|r| percent_decode(&r)),
            path: percent_decode(encoded_path),
            base: format!(
                "{}://{}{base_path}",
                url.scheme(),
                host_of(url).unwrap_or_default()
            ),
        })
    }
}

#[derive(Deserialize)]
struct Project {
    default_branch: String,
}

#[derive(Deserialize)]
struct Commit {
    id: String,
}

/// Reads one GitLab host.
pub(crate) struct GitlabReader {
    integration: GitlabIntegration,
    transport: Transport,
}

impl GitlabReader {
    pub(crate) fn new(integration: GitlabIntegration, transport: Transport) -> Self {
        GitlabReader {
            integration,
            transport,
        }
    }

    fn project_url(&self, project: &str) -> String {
        format!(
            "{}/projects/{}",
            self.integration.api,
            encode_component(project)
        )
    }

    /// `GET url` with the token (on the API origin only); a failure is `what`, Backstage's
    /// words for the step, with the status.
    async fn fetch(&self, url: &Url, headers: HeaderMap, what: &str) -> Result<reqwest::Response> {
        let token = self.integration.token.as_ref();
        self.transport
            .get_ok(url, headers, token, |response| {
                format!("{what}, {}", status_text(response.status()))
            })
            .await
    }

    /// The files of `folder` in `project` at `reference` (the default branch when `None`),
    /// from the archive of the last commit that touched it.
    async fn tree(
        &self,
        url: &Url,
        project: &str,
        reference: Option<&str>,
        folder: &str,
        options: &ReadTreeOptions,
    ) -> Result<ReadTreeResponse> {
        let failed = format!("Failed to read tree from {url}");
        let branch = match reference {
            Some(reference) => reference.to_owned(),
            None => {
                let project_url = api_url(&self.project_url(project))?;
                let response = self.fetch(&project_url, HeaderMap::new(), &failed).await?;
                let found: Project = self.transport.json(&project_url, response).await?;
                found.default_branch
            }
        };
        let mut commits = api_url(&format!("{}/repository/commits", self.project_url(project)))?;
        commits.query_pairs_mut().append_pair("ref_name", &branch);
        if !folder.is_empty() {
            commits.query_pairs_mut().append_pair("path", folder);
        }
        let response = self
            .fetch(
                &commits,
                HeaderMap::new(),
                &format!("Failed to read tree (branch) from {url}"),
            )
            .await?;
        let found: Vec<Commit> = self.transport.json(&commits, response).await?;
        let Some(sha) = found.into_iter().next().map(|c| c.id) else {
            return Err(Error::not_found(format!(
                "Failed to read tree from {url}, no commit has '{folder}' on '{branch}'"
            )));
        };
        if options.etag.as_deref() == Some(sha.as_str()) {
            return Err(Error::not_modified(format!("{url} is unchanged at {sha}")));
        }
        let mut archive = api_url(&format!("{}/repository/archive", self.project_url(project)))?;
        archive.query_pairs_mut().append_pair("sha", &sha);
        if !folder.is_empty() {
            archive.query_pairs_mut().append_pair("path", folder);
        }
        let response = self
            .fetch(
                &archive,
                HeaderMap::new(),
                &format!("Failed to read tree (archive) from {url}, {archive}"),
            )
            .await?;
        let bytes = self.transport.bytes(&archive, response).await?;
        read_tar_gz(bytes, folder, sha, options, self.transport.max_size).await
    }
}

impl Reader for GitlabReader {
    fn handles(&self, url: &Url) -> bool {
        on_host(url, &self.integration.host)
    }

    fn read_url<'a>(
        &'a self,
        url: &'a Url,
        options: &'a ReadUrlOptions,
    ) -> BoxFuture<'a, Result<ReadUrlResponse>> {
        Box::pin(async move {
            let git = GitUrl::parse(url, &self.integration.relative_path)?;
            let (Some("blob" | "raw"), Some(reference)) = (git.kind.as_deref(), &git.reference)
            else {
                return Err(Error::input(format!(
                    "Incorrect URL: {url}, a GitLab file URL reads /<group>/<project>/-/blob/<ref>/<path>"
                )));
            };
            if git.path.is_empty() {
                return Err(Error::input(format!("Incorrect URL: {url}, no file path")));
            }
            let mut target = api_url(&format!(
                "{}/repository/files/{}/raw",
                self.project_url(&git.project),
                encode_component(&git.path)
            ))?;
            target.query_pairs_mut().append_pair("ref", reference);
            let what = format!("{url} could not be read as {target}");
            let response = self
                .fetch(&target, conditional_headers(options), &what)
                .await?;
            Ok(self.transport.read_url_response(&target, response))
        })
    }

    fn read_tree<'a>(
        &'a self,
        url: &'a Url,
        options: &'a ReadTreeOptions,
    ) -> BoxFuture<'a, Result<ReadTreeResponse>> {
        Box::pin(async move {
            let git = GitUrl::parse(url, &self.integration.relative_path)?;
            self.tree(
                url,
                &git.project,
                git.reference.as_deref(),
                &git.path,
                options,
            )
            .await
        })
    }

    fn search<'a>(
        &'a self,
        url: &'a Url,
        options: &'a SearchOptions,
    ) -> BoxFuture<'a, Result<SearchResponse>> {
        Box::pin(async move {
            let git = GitUrl::parse(url, &self.integration.relative_path)?;
            if !is_glob(&git.path) {
                return search_one(self, url, options).await;
            }
            let matcher = matcher(&git.path)?;
            let folder = static_part(&git.path).to_owned();
            let prefix = if folder.is_empty() {
                String::new()
            } else {
                format!("{folder}/")
            };
            let filter_prefix = prefix.clone();
            let tree_options = ReadTreeOptions {
                etag: options.etag.clone(),
                filter: None,
            }
            .filter(move |path, _| matcher.is_match(format!("{filter_prefix}{path}")));
            let tree = self
                .tree(
                    url,
                    &git.project,
                    git.reference.as_deref(),
                    &folder,
                    &tree_options,
                )
                .await?;
            Ok(found(tree, &git.base, &prefix))
        })
    }

    fn describe(&self) -> String {
        format!(
            "gitlab{{host={},authed={}}}",
            self.integration.host,
            self.integration.token.is_some()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str, relative: &str) -> GitUrl {
        GitUrl::parse(&Url::parse(url).unwrap(), relative).unwrap()
    }

    #[test]
    fn urls_split_into_project_ref_and_path() {
        let git = parse(
            "https://gitlab.com/group/sub/proj/-/blob/main/docs/a%20b.md",
            "",
        );
        assert_eq!(git.project, "group/sub/proj");
        assert_eq!(git.kind.as_deref(), Some("blob"));
        assert_eq!(git.reference.as_deref(), Some("main"));
        assert_eq!(git.path, "docs/a b.md");
        assert_eq!(git.base, "https://gitlab.com/group/sub/proj/-/blob/main");

        let git = parse(
            "https://git.example.com/gitlab/group/proj/tree/dev/docs/",
            "/gitlab",
        );
        assert_eq!(git.project, "group/proj");
        assert_eq!(git.reference.as_deref(), Some("dev"));
        assert_eq!(git.path, "docs");

        let git = parse("https://gitlab.com/group/proj", "");
        assert_eq!(git.project, "group/proj");
        assert!(git.reference.is_none() && git.path.is_empty());
    }

    #[test]
    fn urls_outside_the_relative_path_are_refused() {
        let url = Url::parse("https://git.example.com/group/proj/-/blob/main/a").unwrap();
        assert!(GitUrl::parse(&url, "/gitlab").is_err());
        let url = Url::parse("https://gitlab.com/g/p/-/blob/main/%2e%2e%2fsecret").unwrap();
        assert!(GitUrl::parse(&url, "").is_err());
    }
}
