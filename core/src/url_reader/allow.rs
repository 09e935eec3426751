//! `backend.reading.allow`: which plain URLs the fetch reader may read.
//!
//! Each entry is a `host` (`example.com`, or `*.example.com` for any subdomain), optionally
//! with a port or a port range (`example.com:8080`, `example.com:8000-8999`), and optionally
//! `paths`: the URL's path must be one of them or lie below one at a `/` boundary. Without a
//! port only URLs on the scheme's default port match, as Backstage reads the list.

use serde::Deserialize;
use url::Url;

use crate::error::{Error, Result};

/// One `backend.reading.allow` entry as written.
#[derive(Clone, Debug, Deserialize)]
pub(crate) struct AllowEntry {
    host: String,
    #[serde(default)]
    paths: Option<Vec<String>>,
}

#[derive(Clone, Debug)]
enum HostRule {
    Exact(String),
    /// `*.example.com`: the suffix with its leading dot.
    Suffix(String),
}

#[derive(Clone, Debug)]
struct Rule {
    host: HostRule,
    /// `None`: the default port only.
    ports: Option<(u16, u16)>,
    paths: Option<Vec<String>>,
}

/// The compiled allow list; empty allows nothing.
#[derive(Clone, Debug, Default)]
pub(crate) struct AllowList {
    rules: Vec<Rule>,
}

impl AllowList {
    /// Compiles the entries; a bad host or port names the entry's index.
    pub(crate) fn new(entries: &[AllowEntry]) -> Result<AllowList> {
        let rules = entries
            .iter()
            .enumerate()
            .map(|(index, entry)| {
                Rule::parse(entry).map_err(|why| {
                    Error::input(format!("backend.reading.allow[{index}].host: {why}"))
                })
            })
            .collect::<Result<_>>()?;
        Ok(AllowList { rules })
    }

    /// Whether `url` may be read.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        matches!(url.scheme(), "http" | "https") && self.rules.iter().any(|r| r.allows(url))
    }
}

impl Rule {
    fn parse(entry: &AllowEntry) -> std::result::Result<Rule, String> {
        let text = entry.host.trim().to_ascii_lowercase();
        let (host, port) = split_port(&text);
        if host.is_empty() {
            return Err("a host is required".into());
        }
        let host = match host.strip_prefix("*.") {
            Some(rest) if !rest.is_empty() && !rest.contains('*') => {
                HostRule::Suffix(format!(".{rest}"))
            }
            _ if host.contains('*') => {
                return Err(format!(
                    "'{host}' is not a host; a wildcard may only start it, as in '*.example.com'"
                ));
            }
            _ => HostRule::Exact(host.to_owned()),
        };
        let ports = port.map(parse_ports).transpose()?;
        Ok(Rule {
            host,
            ports,
            paths: entry.paths.clone(),
        })
    }

    fn allows(&self, url: &Url) -> bool {
        let Some(host) = url.host_str() else {
            return false;
        };
        let host_ok = match &self.host {
            HostRule::Exact(expected) => host == expected,
            HostRule::Suffix(suffix) => host.ends_with(suffix.as_str()),
        };
        let port_ok = match self.ports {
            None => url.port().is_none(),
            Some((low, high)) => url
                .port_or_known_default()
                .is_some_and(|p| (low..=high).contains(&p)),
        };
        host_ok && port_ok && self.path_allowed(url.path())
    }

    fn path_allowed(&self, path: &str) -> bool {
        let Some(paths) = &self.paths else {
            return true;
        };
        paths.iter().any(|allowed| {
            let prefix = if allowed.ends_with('/') {
                allowed.clone()
            } else {
                format!("{allowed}/")
            };
            path == allowed || path.starts_with(&prefix)
        })
    }
}

/// `host:port` into its parts; `[v6]:port` keeps the brackets off the port.
fn split_port(text: &str) -> (&str, Option<&str>) {
    if let Some(end) = text.find(']') {
        let (host, rest) = text.split_at(end + 1);
        return (host, rest.strip_prefix(':'));
    }
    match text.split_once(':') {
        Some((host, port)) => (host, Some(port)),
        None => (text, None),
    }
}

fn parse_ports(text: &str) -> std::result::Result<(u16, u16), String> {
    let bad = || format!("'{text}' is not a port or a port range like 8000-8999");
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(bad)
    };
    match text.split_once('-') {
        Some((low, high)) => {
            let (low, high) = (port(low)?, port(high)?);
            if low > high {
                return Err(bad());
            }
            Ok((low, high))
        }
        None => port(text).map(|p| (p, p)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn list(entries: serde_json::Value) -> AllowList {
        AllowList::new(&serde_json::from_value::<Vec<AllowEntry>>(entries).unwrap()).unwrap()
    }

    fn allows(list: &AllowList, url: &str) -> bool {
        list.allows(&Url::parse(url).unwrap())
    }

    #[test]
    fn hosts_match_exactly_or_by_subdomain() {
        let list = list(json!([{ "host": "example.com" }, { "host": "*.corp.net" }]));
        assert!(allows(&list, "https://example.com/a"));
        assert!(allows(&list, "http://EXAMPLE.com/a"));
        assert!(!allows(&list, "https://www.example.com/a"));
        assert!(!allows(&list, "https://example.com.evil.org/a"));
        assert!(allows(&list, "https://docs.corp.net/a"));
        assert!(allows(&list, "https://a.b.corp.net/a"));
        assert!(!allows(&list, "https://corp.net/a"));
        assert!(!allows(&list, "https://evilcorp.net/a"));
        assert!(!allows(&list, "ftp://example.com/a"));
        assert!(!allows(&list, "file:///etc/passwd"));
    }

    #[test]
    fn ports_must_be_listed() {
        let list = list(json!([
            { "host": "example.com" },
            { "host": "localhost:8080" },
            { "host": "range.net:8000-8010" },
            { "host": "[::1]:9000" },
        ]));
        assert!(allows(&list, "https://example.com:443/a"));
        assert!(!allows(&list, "https://example.com:8443/a"));
        assert!(allows(&list, "http://localhost:8080/a"));
        assert!(!allows(&list, "http://localhost/a"));
        assert!(allows(&list, "http://range.net:8005/a"));
        assert!(!allows(&list, "http://range.net:8011/a"));
        assert!(allows(&list, "http://[::1]:9000/a"));
    }

    #[test]
    fn paths_are_prefixes_at_segment_boundaries() {
        let list = list(json!([{ "host": "example.com", "paths": ["/docs", "/files/"] }]));
        assert!(allows(&list, "https://example.com/docs"));
        assert!(allows(&list, "https://example.com/docs/a.md"));
        assert!(!allows(&list, "https://example.com/docs2/a.md"));
        assert!(!allows(&list, "https://example.com/files"));
        assert!(allows(&list, "https://example.com/files/a"));
        assert!(!allows(&list, "https://example.com/docs/../secret"));
        assert!(!allows(&list, "https://example.com/docs/%2e%2e/secret"));
    }

    #[test]
    fn nothing_is_allowed_without_a_list() {
        assert!(!allows(&AllowList::default(), "https://example.com/"));
    }

    #[test]
    fn bad_entries_name_their_index() {
        let entries: Vec<AllowEntry> =
            serde_json::from_value(json!([{ "host": "a.com" }, { "host": "a.*.com" }])).unwrap();
        let error = AllowList::new(&entries).unwrap_err().to_string();
        assert!(error.contains("backend.reading.allow[1].host"), "{error}");
        let entries: Vec<AllowEntry> =
            serde_json::from_value(json!([{ "host": "a.com:9-1" }])).unwrap();
        assert!(AllowList::new(&entries).is_err());
    }
}
