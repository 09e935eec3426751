//! A repository archive (`.tar.gz`, as GitHub's and GitLab's archive APIs send it) read into a
//! tree: the archive's top folder dropped, only files below the requested folder kept, paths
//! made relative to it, the caller's filter applied, and at most `backend.reading.maxSize`
//! bytes unpacked in all (an archive that unpacks to more is refused, not truncated).

use std::io::Read;
use std::time::{Duration, SystemTime};

use bytes::Bytes;

use crate::error::{Error, Result};

use super::response::{ReadTreeOptions, ReadTreeResponse, TreeFile};

/// Unpacks `archive` on the blocking pool. `subpath` is the folder inside the repository
/// (`""` for the root), `etag` the tree's version.
pub(crate) async fn read_tar_gz(
    archive: Bytes,
    subpath: &str,
    etag: String,
    options: &ReadTreeOptions,
    max_size: u64,
) -> Result<ReadTreeResponse> {
    let subpath = subpath.trim_matches('/').to_owned();
    let options = options.clone();
    let files = tokio::task::spawn_blocking(move || unpack(&archive, &subpath, &options, max_size))
        .await
        .map_err(|e| Error::internal(format!("unpacking an archive failed: {e}")))??;
    Ok(ReadTreeResponse { etag, files })
}

fn unpack(
    archive: &[u8],
    subpath: &str,
    options: &ReadTreeOptions,
    max_size: u64,
) -> Result<Vec<TreeFile>> {
    let over = || {
        Error::internal(format!(
            "the archive unpacks to more than backend.reading.maxSize ({max_size} bytes)"
        ))
    };
    let bad = |e: std::io::Error| {
        if e.kind() == std::io::ErrorKind::FileTooLarge {
            return over();
        }
        Error::internal(format!("the archive could not be read: {e}"))
    };
    let mut capped = Capped {
        inner: flate2::read::GzDecoder::new(archive),
        left: max_size,
    };
    let mut tar = tar::Archive::new(&mut capped);
    let prefix = if subpath.is_empty() {
        String::new()
    } else {
        format!("{subpath}/")
    };
    let mut files = Vec::new();
    for entry in tar.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let raw = entry.path_bytes();
        let Ok(path) = std::str::from_utf8(&raw) else {
            continue;
        };
        let Some(inside) = strip_first_folder(path) else {
            continue;
        };
        let Some(relative) = inside.strip_prefix(prefix.as_str()) else {
            continue;
        };
        if relative.is_empty() || !is_plain_relative(relative) {
            continue;
        }
        let relative = relative.to_owned();
        let size = entry.size();
        if !options.keeps(&relative, size) {
            continue;
        }
        let mtime = entry.header().mtime().ok();
        let mut content = Vec::with_capacity(usize::try_from(size.min(max_size)).unwrap_or(0));
        entry.read_to_end(&mut content).map_err(bad)?;
        files.push(TreeFile {
            path: relative,
            content: content.into(),
            last_modified_at: mtime.map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s)),
        });
    }
    // Read what is left so that an archive over the limit is noticed even past the last file.
    std::io::copy(&mut capped, &mut std::io::sink()).map_err(bad)?;
    Ok(files)
}

/// A reader that fails with `FileTooLarge` once more than `left` bytes would be read.
struct Capped<R> {
    inner: R,
    left: u64,
}

impl<R: Read> Read for Capped<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 && !buf.is_empty() {
            // At the limit: one more byte means the archive is over it.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => Err(std::io::ErrorKind::FileTooLarge.into()),
            };
        }
        let read = self.inner.read(&mut buf[..want])?;
        self.left -= read as u64;
        Ok(read)
    }
}

/// `repo-abc123/docs/a.md` -> `docs/a.md`; `None` for the top folder itself.
fn strip_first_folder(path: &str) -> Option<&str> {
    path.trim_start_matches("./")
        .split_once('/')
        .map(|(_, rest)| rest)
}

/// No `..`, `.`, empty or absolute parts: a path that stays inside the tree.
fn is_plain_relative(path: &str) -> bool {
    !path.starts_with('/') && path.split('/').all(|part| !matches!(part, "" | "." | ".."))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::tar_gz;

    fn paths(files: &[TreeFile]) -> Vec<&str> {
        files.iter().map(|f| f.path.as_str()).collect()
    }

    #[tokio::test]
    async fn keeps_the_folder_below_the_top_one() {
        let archive = tar_gz(
            "owner-repo-abc",
            &[
                ("README.md", "r"),
                ("docs/index.md", "i"),
                ("docs/x/y.md", "y"),
                ("docsy/z", "z"),
            ],
        );
        let tree = read_tar_gz(
            archive.into(),
            "docs",
            "abc".into(),
            &ReadTreeOptions::new(),
            1 << 20,
        )
        .await
        .unwrap();
        assert_eq!(paths(&tree.files), ["index.md", "x/y.md"]);
        assert_eq!(tree.etag, "abc");
        assert_eq!(tree.files[0].content, "i");
        assert_eq!(
            tree.files[0].last_modified_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }

    #[tokio::test]
    async fn filters_by_path_and_size() {
        let archive = tar_gz("top", &[("a.md", "aaaa"), ("b.md", "b"), ("c.txt", "c")]);
        let options = ReadTreeOptions::new().filter(|path, size| path.ends_with(".md") && size < 4);
        let tree = read_tar_gz(archive.into(), "", "e".into(), &options, 1 << 20)
            .await
            .unwrap();
        assert_eq!(paths(&tree.files), ["b.md"]);
    }

    #[tokio::test]
    async fn refuses_archives_over_the_limit() {
        let big = "x".repeat(10_000);
        let archive = tar_gz("top", &[("a", big.as_str())]);
        let error = read_tar_gz(
            archive.into(),
            "",
            "e".into(),
            &ReadTreeOptions::new(),
            5_000,
        )
        .await
        .unwrap_err();
        assert!(
            error.to_string().contains("backend.reading.maxSize"),
            "{error}"
        );
    }

    #[test]
    fn paths_that_leave_the_tree_are_dropped() {
        assert!(is_plain_relative("a/b"));
        assert!(!is_plain_relative("../a"));
        assert!(!is_plain_relative("a/../../b"));
        assert!(!is_plain_relative("/etc/passwd"));
        assert_eq!(strip_first_folder("top/a/b"), Some("a/b"));
        assert_eq!(strip_first_folder("top"), None);
    }
}
