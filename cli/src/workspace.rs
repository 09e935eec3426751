//! The app workspace a command runs in: finding it, making a new crate one of its members, and
//! linking a crate into `packages/backend`.
//!
//! Edits keep what is there: comments and formatting of the manifests survive (toml_edit), a
//! dependency or `use` line that exists is never written twice, and where the place for a line
//! cannot be found the command says so and prints the line to add by hand.

use std::path::{Path, PathBuf};

use toml_edit::{Array, DocumentMut, InlineTable, Item, Table, Value};

use crate::scaffold::Edits;

/// A workspace: the folder of a `Cargo.toml` with a `[workspace]` table.
pub(crate) struct Workspace {
    pub(crate) root: PathBuf,
    manifest_text: String,
    manifest: DocumentMut,
}

impl Workspace {
    /// The nearest workspace at or above `dir`.
    pub(crate) fn find(dir: &Path) -> Result<Workspace, String> {
        for candidate in dir.ancestors() {
            let Some((text, manifest)) = read_manifest(candidate)? else {
                continue;
            };
            if manifest.contains_table("workspace") {
                return Ok(Workspace {
                    root: candidate.to_path_buf(),
                    manifest_text: text,
                    manifest,
                });
            }
        }
        Err(format!(
            "no workspace found at or above {}: run this inside an app made with `cargo backstage new app <name>`",
            dir.display()
        ))
    }

    /// Makes `member` (a path relative to the root, `plugins/todo-backend`) a workspace member,
    /// unless a `members` entry (or a `dir/*` glob) covers it already; and adds the shared
    /// dependencies the templates use (`name.workspace = true`) where they are missing.
    /// Fails when the workspace does not provide `backstage`.
    pub(crate) fn edit_manifest(
        &mut self,
        member: &str,
        dependencies: &[(&str, Value)],
        edits: &mut Edits,
    ) -> Result<(), String> {
        let path = self.root.join("Cargo.toml");
        let workspace = self
            .manifest
            .get_mut("workspace")
            .and_then(Item::as_table_like_mut)
            .ok_or_else(|| format!("{} has no [workspace] table", path.display()))?;
        if workspace
            .get("dependencies")
            .and_then(Item::as_table_like)
            .and_then(|deps| deps.get("backstage"))
            .is_none()
        {
            return Err(format!(
                "{} has no `backstage` in [workspace.dependencies]; add `backstage = {{ path = \"...\" }}` (or a git URL or version), as `cargo backstage new app` does",
                path.display()
            ));
        }
        let members = workspace
            .entry("members")
            .or_insert(Item::Value(Value::Array(Array::new())))
            .as_array_mut()
            .ok_or_else(|| format!("workspace.members in {} is not a list", path.display()))?;
        let covered = members
            .iter()
            .filter_map(Value::as_str)
            .any(|existing| covers(existing, member));
        if !covered {
            members.push(member);
        }
        let deps = workspace
            .entry("dependencies")
            .or_insert(Item::Table(Table::new()))
            .as_table_like_mut()
            .ok_or_else(|| {
                format!(
                    "workspace.dependencies in {} is not a table",
                    path.display()
                )
            })?;
        for (name, value) in dependencies {
            if deps.get(name).is_none() {
                deps.insert(name, Item::Value(value.clone()));
            }
        }
        edits.replace(path, self.manifest_text.clone(), self.manifest.to_string());
        Ok(())
    }

    /// The package folder of the plugin with id `plugin_id` in `plugins/`, and the name of its
    /// plugin struct, when the workspace has one (a crate whose source declares
    /// `#[backend_plugin(id = "<plugin_id>")]`).
    pub(crate) fn plugin_crate(&self, package: &str, plugin_id: &str) -> Option<(PathBuf, String)> {
        let folder = self.root.join("plugins").join(package);
        let source = std::fs::read_to_string(folder.join("src/lib.rs")).ok()?;
        let marker = format!("#[backend_plugin(id = \"{plugin_id}\")]");
        let after = &source[source.find(&marker)? + marker.len()..];
        let name = after
            .split("struct")
            .nth(1)?
            .trim_start()
            .split(|c: char| !(c.is_alphanumeric() || c == '_'))
            .next()?;
        (!name.is_empty()).then(|| (folder, name.to_owned()))
    }
}

/// The `Cargo.toml` in `folder`, as text and parsed; `None` when there is none.
pub(crate) fn read_manifest(folder: &Path) -> Result<Option<(String, DocumentMut)>, String> {
    let path = folder.join("Cargo.toml");
    let Ok(text) = std::fs::read_to_string(&path) else {
        return Ok(None);
    };
    let manifest = text
        .parse()
        .map_err(|e| format!("{} is not valid TOML: {e}", path.display()))?;
    Ok(Some((text, manifest)))
}

/// Whether the `members` entry `pattern` names `member`: the same path, or `dir/*` over it.
fn covers(pattern: &str, member: &str) -> bool {
    let pattern = pattern.trim_end_matches('/');
    if pattern == member {
        return true;
    }
    match (pattern.strip_suffix("/*"), member.rsplit_once('/')) {
        (Some(dir), Some((parent, _))) => dir == parent,
        _ => false,
    }
}

/// What linking a crate into the backend did, for the summary.
pub(crate) enum Linked {
    /// The dependency and the `use` line were added (or were there already).
    Done,
    /// What could not be done: these instructions say what to add by hand.
    ByHand(String),
}

/// Adds `package` (in folder `crate_folder`) to `packages/backend`: the dependency in its
/// `Cargo.toml` and `use <crate_ident> as _;` in its `src/main.rs`.
pub(crate) fn link_into_backend(
    root: &Path,
    package: &str,
    crate_folder: &Path,
    edits: &mut Edits,
) -> Result<Linked, String> {
    let backend = root.join("packages/backend");
    let manifest_path = backend.join("Cargo.toml");
    let main_path = backend.join("src/main.rs");
    let ident = crate::names::crate_ident(package);
    let use_line = format!("use {ident} as _;");
    let relative = relative_path(&backend, crate_folder);
    let dependency_line = format!("{package} = {{ path = \"{relative}\" }}");
    let (Ok(manifest_text), Ok(main_text)) = (
        std::fs::read_to_string(&manifest_path),
        std::fs::read_to_string(&main_path),
    ) else {
        return Ok(Linked::ByHand(format!(
            "no backend at {} to link it into; in your backend add `{dependency_line}` to [dependencies] and `{use_line}` to main.rs",
            backend.display()
        )));
    };

    let mut manifest: DocumentMut = manifest_text
        .parse()
        .map_err(|e| format!("{} is not valid TOML: {e}", manifest_path.display()))?;
    let dependencies = manifest
        .entry("dependencies")
        .or_insert(Item::Table(Table::new()))
        .as_table_like_mut()
        .ok_or_else(|| {
            format!(
                "[dependencies] in {} is not a table",
                manifest_path.display()
            )
        })?;
    if dependencies.get(package).is_none() {
        let mut table = InlineTable::new();
        table.insert("path", relative.as_str().into());
        dependencies.insert(package, Item::Value(Value::InlineTable(table)));
    }

    edits.replace(manifest_path, manifest_text, manifest.to_string());
    match with_use_line(&main_text, &ident) {
        Some(main) => {
            edits.replace(main_path, main_text, main);
            Ok(Linked::Done)
        }
        None => Ok(Linked::ByHand(format!(
            "could not find where to link it in {} (no `fn main`); the dependency is added, now add this line to the backend's main.rs: {use_line}",
            main_path.display()
        ))),
    }
}

/// `main` with `use <ident> as _;` added after the last such line, or above `fn main` (and its
/// comments and attributes); `main` unchanged when it names the crate already; `None` when
/// there is neither.
fn with_use_line(main: &str, ident: &str) -> Option<String> {
    let names_crate = main.lines().any(|line| {
        let line = line.trim();
        line.starts_with(&format!("use {ident} "))
            || line.starts_with(&format!("use {ident}::"))
            || line.starts_with(&format!("use {ident};"))
            || line.starts_with(&format!("extern crate {ident}"))
    });
    if names_crate {
        return Some(main.to_owned());
    }
    let lines: Vec<&str> = main.lines().collect();
    let use_line = format!("use {ident} as _;");
    let links: Vec<usize> = (0..lines.len())
        .filter(|&i| linked_crate(lines[i]).is_some())
        .collect();
    let (at, text) = match (links.first(), links.last()) {
        // Among the other links, where `cargo fmt` would sort it.
        (Some(&first), Some(&last)) => {
            let at = (first..=last)
                .find(|&i| linked_crate(lines[i]).is_some_and(|other| other > ident))
                .unwrap_or(last + 1);
            (at, vec![use_line])
        }
        _ => {
            let main_fn = lines
                .iter()
                .position(|line| line.trim_start().starts_with("fn main"))?;
            let mut at = main_fn;
            while at > 0 {
                let above = lines[at - 1].trim_start();
                if above.starts_with("///") || above.starts_with("#[") {
                    at -= 1;
                } else {
                    break;
                }
            }
            (at, vec![use_line, String::new()])
        }
    };
    let mut out: Vec<String> = lines.iter().map(|l| (*l).to_owned()).collect();
    for (offset, line) in text.into_iter().enumerate() {
        out.insert(at + offset, line);
    }
    let mut joined = out.join("\n");
    if main.ends_with('\n') {
        joined.push('\n');
    }
    Some(joined)
}

/// The crate a `use <crate> as _;` line links, if `line` is one.
fn linked_crate(line: &str) -> Option<&str> {
    line.trim()
        .strip_prefix("use ")?
        .strip_suffix(" as _;")
        .filter(|name| !name.contains("::"))
}

/// `to` relative to `from`, with `/` separators (`../../plugins/todo-backend`).
pub(crate) fn relative_path(from: &Path, to: &Path) -> String {
    let from: Vec<_> = from.components().collect();
    let to: Vec<_> = to.components().collect();
    let common = from.iter().zip(&to).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<String> = vec!["..".to_owned(); from.len() - common];
    parts.extend(
        to[common..]
            .iter()
            .map(|c| c.as_os_str().to_string_lossy().into_owned()),
    );
    if parts.is_empty() {
        ".".to_owned()
    } else {
        parts.join("/")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_use_line_goes_after_the_last_link_or_above_main() {
        let fresh = "//! The backend.\n\n/// Serves.\nfn main() {\n    backstage::start()\n}\n";
        assert_eq!(
            with_use_line(fresh, "todo_backend").unwrap(),
            "//! The backend.\n\nuse todo_backend as _;\n\n/// Serves.\nfn main() {\n    backstage::start()\n}\n"
        );
        let linked = "use carmen_backend as _;\nuse todo_backend as _;\n\nfn main() {}\n";
        assert_eq!(
            with_use_line(linked, "search_backend").unwrap(),
            "use carmen_backend as _;\nuse search_backend as _;\nuse todo_backend as _;\n\nfn main() {}\n",
            "sorted as cargo fmt sorts them"
        );
        assert_eq!(
            with_use_line(linked, "zoo_backend").unwrap(),
            "use carmen_backend as _;\nuse todo_backend as _;\nuse zoo_backend as _;\n\nfn main() {}\n"
        );
    }

    #[test]
    fn a_crate_named_already_is_not_named_twice() {
        for main in [
            "use todo_backend as _;\nfn main() {}\n",
            "use todo_backend::TodoPlugin;\nfn main() {}\n",
            "    use todo_backend as _; // indented\nfn main() {}\n",
        ] {
            assert_eq!(with_use_line(main, "todo_backend").unwrap(), main);
        }
    }

    #[test]
    fn without_main_there_is_no_place_for_the_line() {
        assert_eq!(with_use_line("pub fn run() {}\n", "todo_backend"), None);
    }

    #[test]
    fn members_are_covered_by_equal_paths_and_globs() {
        assert!(covers("plugins/todo-backend", "plugins/todo-backend"));
        assert!(covers("plugins/*", "plugins/todo-backend"));
        assert!(!covers("packages/*", "plugins/todo-backend"));
        assert!(!covers("plugins/todo", "plugins/todo-backend"));
    }

    #[test]
    fn relative_paths_walk_up_then_down() {
        assert_eq!(
            relative_path(
                Path::new("/w/packages/backend"),
                Path::new("/w/plugins/todo-backend")
            ),
            "../../plugins/todo-backend"
        );
    }
}
