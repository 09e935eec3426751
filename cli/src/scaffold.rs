//! Templates rendered into a folder all at once: every file is written into a staging folder
//! beside the target, which is renamed into place only when all of it is there. A failure
//! half-way leaves nothing behind; an existing target is never touched.

use std::path::{Path, PathBuf};

/// One file of a template: its path in the new folder and its text, with `{{name}}`
/// placeholders.
pub(crate) type Template = (&'static str, &'static str);

/// `template` with every `{{name}}` replaced by its value in `vars`.
///
/// A placeholder without a value is a bug in the template, reported by name.
pub(crate) fn render(template: &str, vars: &[(&str, &str)]) -> Result<String, String> {
    let mut out = String::with_capacity(template.len());
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| "a template has an unclosed `{{`".to_owned())?;
        let name = &after[..end];
        let value = vars
            .iter()
            .find(|(key, _)| *key == name)
            .map(|(_, value)| *value)
            .ok_or_else(|| format!("a template names `{{{{{name}}}}}`, which has no value"))?;
        out.push_str(value);
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Renders every template with `vars`: the files of a new folder. Rust files go through
/// rustfmt when it is installed, so that a long id does not leave lines `cargo fmt` would wrap.
pub(crate) fn render_all(
    templates: &[Template],
    vars: &[(&str, &str)],
) -> Result<Vec<(PathBuf, String)>, String> {
    templates
        .iter()
        .map(|(path, text)| {
            let path = PathBuf::from(render(path, vars)?);
            let mut text = render(text, vars)?;
            if path.extension().is_some_and(|e| e == "rs") {
                text = rustfmt(text);
            }
            Ok((path, text))
        })
        .collect()
}

/// `source` as rustfmt writes it, or unchanged when rustfmt is not there or refuses it.
fn rustfmt(source: String) -> String {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let child = Command::new("rustfmt")
        .args(["--edition", "2024", "--quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn();
    let Ok(mut child) = child else {
        return source;
    };
    if let Some(mut stdin) = child.stdin.take()
        && stdin.write_all(source.as_bytes()).is_err()
    {
        return source;
    }
    match child.wait_with_output() {
        Ok(output) if output.status.success() && !output.stdout.is_empty() => {
            String::from_utf8(output.stdout).unwrap_or(source)
        }
        _ => source,
    }
}

/// Creates `target` holding `files` (paths relative to it), or nothing at all.
pub(crate) fn create_folder(target: &Path, files: &[(PathBuf, String)]) -> Result<(), String> {
    if target.exists() {
        return Err(format!(
            "{} already exists; choose another name or remove it first",
            target.display()
        ));
    }
    let parent = target.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)
        .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let staging = parent.join(format!(".{name}.backstage-new-{}", std::process::id()));
    let written = write_files(&staging, files).and_then(|()| {
        std::fs::rename(&staging, target)
            .map_err(|e| format!("cannot move the new folder into {}: {e}", target.display()))
    });
    if written.is_err() {
        let _ = std::fs::remove_dir_all(&staging);
    }
    written
}

fn write_files(root: &Path, files: &[(PathBuf, String)]) -> Result<(), String> {
    std::fs::create_dir_all(root).map_err(|e| format!("cannot create {}: {e}", root.display()))?;
    for (path, text) in files {
        let path = root.join(path);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder)
                .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
        }
        std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

/// Edits of existing files, applied together: each file is replaced whole (written beside it,
/// then renamed over it), and when one fails the ones already replaced get their old text back.
#[derive(Default)]
pub(crate) struct Edits {
    edits: Vec<(PathBuf, String, String)>,
}

impl Edits {
    /// Replaces `path`, whose text is now `old`, with `new` (nothing when they are equal).
    pub(crate) fn replace(&mut self, path: PathBuf, old: String, new: String) {
        if old != new {
            self.edits.push((path, old, new));
        }
    }

    /// Writes every edit, or none.
    pub(crate) fn apply(self) -> Result<(), String> {
        let mut done: Vec<(&Path, &str)> = Vec::new();
        for (path, old, new) in &self.edits {
            if let Err(e) = replace_file(path, new) {
                for (path, old) in done {
                    let _ = replace_file(path, old);
                }
                return Err(e);
            }
            done.push((path, old));
        }
        Ok(())
    }
}

fn replace_file(path: &Path, text: &str) -> Result<(), String> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temporary = path.with_file_name(format!(".{name}.backstage-new-{}", std::process::id()));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            format!("cannot write {}: {e}", path.display())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_replaced_and_unknown_ones_reported() {
        let vars = [("id", "todo"), ("Plugin", "TodoPlugin")];
        assert_eq!(
            render(
                "#[backend_plugin(id = \"{{id}}\")] pub struct {{Plugin}};",
                &vars
            )
            .unwrap(),
            "#[backend_plugin(id = \"todo\")] pub struct TodoPlugin;"
        );
        assert_eq!(
            render("{{missing}}", &vars).unwrap_err(),
            "a template names `{{missing}}`, which has no value"
        );
        assert!(render("{{id", &vars).is_err());
    }

    fn temp(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("cargo-backstage-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn a_folder_is_created_whole_or_not_at_all() {
        let dir = temp("whole");
        let target = dir.join("todo-backend");
        let files = vec![
            (PathBuf::from("src/lib.rs"), "//! lib".to_owned()),
            (PathBuf::from("Cargo.toml"), "[package]".to_owned()),
        ];
        create_folder(&target, &files).unwrap();
        assert_eq!(
            std::fs::read_to_string(target.join("src/lib.rs")).unwrap(),
            "//! lib"
        );
        assert!(
            create_folder(&target, &files)
                .unwrap_err()
                .contains("already exists")
        );

        // A file that cannot be written (its folder is a file) leaves nothing behind.
        let broken = vec![
            (PathBuf::from("a"), "file".to_owned()),
            (PathBuf::from("a/b.rs"), "under a file".to_owned()),
        ];
        let second = dir.join("broken");
        assert!(create_folder(&second, &broken).is_err());
        let left: Vec<_> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            left,
            vec![std::ffi::OsString::from("todo-backend")],
            "no staging folder, no half-made target"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn edits_are_all_applied_or_all_rolled_back() {
        let dir = temp("edits");
        std::fs::create_dir_all(&dir).unwrap();
        let first = dir.join("Cargo.toml");
        std::fs::write(&first, "old").unwrap();
        let mut edits = Edits::default();
        edits.replace(first.clone(), "old".into(), "new".into());
        edits.replace(dir.join("missing-folder/main.rs"), "x".into(), "y".into());
        assert!(edits.apply().is_err());
        assert_eq!(
            std::fs::read_to_string(&first).unwrap(),
            "old",
            "rolled back"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
