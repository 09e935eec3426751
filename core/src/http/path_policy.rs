//! Path policies, matched the way Backstage's credentials barrier matches them.

use super::Allow;
use crate::error::{Error, Result};

/// A path (relative to the plugin) and what it allows.
///
/// ```
/// use backstage::http::{Allow, PathPolicy};
///
/// let policy = PathPolicy::new("/items/{id}", Allow::Unauthenticated).unwrap();
/// assert!(policy.matches("/items/7"));
/// assert!(policy.matches("/items/7/history"));
/// assert!(!policy.matches("/items"));
/// assert!(!policy.matches("/itemsx/7"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPolicy {
    path: String,
    segments: Vec<Segment>,
    everything: bool,
    allow: Allow,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Segment {
    Literal(String),
    Param,
}

impl PathPolicy {
    /// A policy for `path`: `/`-separated, `{param}` segments match any one segment, `/` (or `*`)
    /// matches every path.
    pub fn new(path: &str, allow: Allow) -> Result<Self> {
        let everything = path == "/" || path == "*";
        if !everything && !path.starts_with('/') {
            return Err(Error::input(format!(
                "auth policy paths start with '/'; write '/{path}'"
            )));
        }
        let mut segments = Vec::new();
        for part in path.split('/').filter(|s| !s.is_empty()) {
            if let Some(name) = part.strip_prefix(':') {
                return Err(Error::input(format!(
                    "auth policy paths use axum syntax: write '{{{name}}}' instead of '{part}'"
                )));
            }
            if part.starts_with('{') && part.ends_with('}') {
                segments.push(Segment::Param);
            } else {
                segments.push(Segment::Literal(part.to_ascii_lowercase()));
            }
        }
        Ok(PathPolicy {
            path: path.to_owned(),
            segments,
            everything,
            allow,
        })
    }

    /// The policy's path as written.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// What it allows.
    pub fn allow(&self) -> Allow {
        self.allow
    }

    /// Whether `path` (relative to the plugin) is this path or below it.
    pub fn matches(&self, path: &str) -> bool {
        if self.everything {
            return true;
        }
        let mut parts = path.split('/').filter(|s| !s.is_empty());
        self.segments
            .iter()
            .all(|segment| match (segment, parts.next()) {
                (_, None) => false,
                (Segment::Param, Some(_)) => true,
                (Segment::Literal(literal), Some(part)) => literal.eq_ignore_ascii_case(part),
            })
    }
}

/// The policy that applies to `path`: unauthenticated wins over user-cookie, as in Backstage
/// where both are checked and unauthenticated first.
pub(crate) fn policy_for(policies: &[PathPolicy], path: &str) -> Option<Allow> {
    let mut found = None;
    for policy in policies.iter().filter(|p| p.matches(path)) {
        match policy.allow {
            Allow::Unauthenticated => return Some(Allow::Unauthenticated),
            Allow::UserCookie => found = Some(Allow::UserCookie),
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_segment_prefixes() {
        let p = PathPolicy::new("/health", Allow::Unauthenticated).unwrap();
        for ok in ["/health", "/health/", "/health/deep/er", "/HEALTH"] {
            assert!(p.matches(ok), "{ok}");
        }
        for no in ["/healthz", "/", "/other/health", ""] {
            assert!(!p.matches(no), "{no}");
        }
        let all = PathPolicy::new("/", Allow::Unauthenticated).unwrap();
        assert!(all.matches("/anything/at/all"));
    }

    #[test]
    fn express_params_are_refused_with_the_fix() {
        let err = PathPolicy::new("/items/:id", Allow::Unauthenticated).unwrap_err();
        assert!(err.message().contains("'{id}'"), "{}", err.message());
        assert!(PathPolicy::new("items", Allow::Unauthenticated).is_err());
    }

    #[test]
    fn unauthenticated_wins() {
        let policies = [
            PathPolicy::new("/a", Allow::UserCookie).unwrap(),
            PathPolicy::new("/a/b", Allow::Unauthenticated).unwrap(),
        ];
        assert_eq!(
            policy_for(&policies, "/a/b/c"),
            Some(Allow::Unauthenticated)
        );
        assert_eq!(policy_for(&policies, "/a/c"), Some(Allow::UserCookie));
        assert_eq!(policy_for(&policies, "/c"), None);
    }
}
