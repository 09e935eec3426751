//! `cargo backstage start`: the plugin of the current folder alone, as Backstage's `yarn start`
//! serves a plugin package: built, served on :7007 by its development server (`dev/main.rs`,
//! which calls `backstage::dev::start`), and rebuilt and restarted when its sources, its
//! migrations or the workspace's `app-config*.yaml` change.
//!
//! Changes are found by looking (every [`POLL`]) at the modification time and length of every
//! file that counts, not through the OS's notifications: it works the same on every file system
//! (network mounts and containers' bind mounts included), and a plugin's folder is small.
//!
//! The server runs in a process group of its own: Ctrl-C (or SIGTERM) reaches this command,
//! which stops the server with one SIGTERM and waits for its graceful shutdown. A failed build
//! leaves the old server stopped and waits for the next change.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime};

use toml_edit::DocumentMut;

use crate::{OpenapiArgs, StartArgs};

/// How long after a change further changes are waited for before restarting.
const SETTLE: Duration = Duration::from_millis(300);
/// How often the watched files are looked at.
const POLL: Duration = Duration::from_millis(250);
/// How long the server gets to shut down before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);

pub(crate) fn run(args: StartArgs) -> Result<(), String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?;
    let package = Package::find(&cwd)?;
    let bin = package.development_binary()?;
    if args.no_watch {
        let exe = build(&package, &bin)?.ok_or("the build failed")?;
        return exec(&exe, &args.args, &package.dir);
    }
    watch(&package, &bin, &args.args)
}

/// `cargo backstage openapi`: builds the plugin's development server and has it print the
/// plugin's OpenAPI document; to stdout, or to `--output` (written whole, or not at all).
pub(crate) fn openapi(args: OpenapiArgs) -> Result<(), String> {
    let cwd =
        std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))?;
    let package = Package::find(&cwd)?;
    let bin = package.development_binary()?;
    let exe = build(&package, &bin)?.ok_or("the build failed")?;
    let output = Command::new(&exe)
        .arg("--openapi")
        .current_dir(&package.dir)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", exe.display()))?;
    if !output.status.success() {
        return Err(format!(
            "{} --openapi failed ({}); is it a development server made by `cargo backstage new backend-plugin`?",
            exe.display(),
            output.status
        ));
    }
    if serde_json::from_slice::<serde_json::Value>(&output.stdout).is_err() {
        return Err(format!(
            "{} --openapi did not print a JSON document",
            exe.display()
        ));
    }
    match args.output {
        None => {
            use std::io::Write;
            std::io::stdout()
                .write_all(&output.stdout)
                .map_err(|e| format!("cannot print the document: {e}"))
        }
        Some(file) => {
            let partial = file.with_extension("json.partial");
            std::fs::write(&partial, &output.stdout)
                .and_then(|()| std::fs::rename(&partial, &file))
                .map_err(|e| format!("cannot write {}: {e}", file.display()))
        }
    }
}

/// The crate whose folder the command runs in.
struct Package {
    dir: PathBuf,
    name: String,
    manifest: DocumentMut,
}

impl Package {
    /// The nearest `Cargo.toml` with a `[package]` at or above `dir`.
    fn find(dir: &Path) -> Result<Package, String> {
        for candidate in dir.ancestors() {
            let Some((_, manifest)) = crate::workspace::read_manifest(candidate)? else {
                continue;
            };
            let Some(name) = manifest
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|n| n.as_str())
            else {
                break;
            };
            return Ok(Package {
                dir: candidate.to_path_buf(),
                name: name.to_owned(),
                manifest,
            });
        }
        Err(format!(
            "{} is not inside a plugin's folder: run `cargo backstage start` in plugins/<id>-backend",
            dir.display()
        ))
    }

    /// The binary that serves the plugin alone: the `[[bin]]` at `dev/main.rs` (or named
    /// `*-dev`), else `src/main.rs`.
    fn development_binary(&self) -> Result<String, String> {
        let bins: Vec<(String, String)> = self
            .manifest
            .get("bin")
            .and_then(|b| b.as_array_of_tables())
            .map(|tables| {
                tables
                    .iter()
                    .filter_map(|t| {
                        let name = t.get("name")?.as_str()?.to_owned();
                        let path = t.get("path").and_then(|p| p.as_str()).unwrap_or("");
                        Some((name, path.to_owned()))
                    })
                    .collect()
            })
            .unwrap_or_default();
        let chosen = bins
            .iter()
            .find(|(_, path)| path == "dev/main.rs")
            .or_else(|| bins.iter().find(|(name, _)| name.ends_with("-dev")))
            .map(|(name, _)| name.clone());
        if let Some(name) = chosen {
            return Ok(name);
        }
        if self.dir.join("src/main.rs").exists() {
            return Ok(self.name.clone());
        }
        Err(format!(
            "{} has no development server: a plugin made by `cargo backstage new backend-plugin` has dev/main.rs \
             (`fn main() {{ backstage::dev::start::<YourPlugin>() }}`) and a [[bin]] for it in Cargo.toml",
            self.name
        ))
    }
}

/// Builds `bin`; its executable, or `None` when the build failed (cargo has said why).
fn build(package: &Package, bin: &str) -> Result<Option<PathBuf>, String> {
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "build",
            "--message-format=json-render-diagnostics",
            "--bin",
            bin,
        ])
        .arg("--manifest-path")
        .arg(package.dir.join("Cargo.toml"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run cargo: {e}"))?;
    if !output.status.success() {
        return Ok(None);
    }
    let executable = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| message["target"]["name"] == bin)
        .find_map(|message| message["executable"].as_str().map(PathBuf::from));
    executable
        .map(Some)
        .ok_or_else(|| format!("cargo built {bin} but did not say where its executable is"))
}

/// Replaces this process with the server.
fn exec(exe: &Path, args: &[String], dir: &Path) -> Result<(), String> {
    use std::os::unix::process::CommandExt;
    let error = Command::new(exe).args(args).current_dir(dir).exec();
    Err(format!("cannot start {}: {error}", exe.display()))
}

enum Event {
    Changed(PathBuf),
    Stop,
}

fn watch(package: &Package, bin: &str, args: &[String]) -> Result<(), String> {
    let (tx, rx) = mpsc::channel::<Event>();
    let changes = tx.clone();
    let package_dir = package.dir.clone();
    // The workspace's config files live at its root, above the plugin.
    let root = package
        .dir
        .ancestors()
        .skip(1)
        .find(|d| d.join("Cargo.toml").exists())
        .map(Path::to_path_buf);
    let mut seen = Files::look(&package_dir, root.as_deref());
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(POLL);
            let now = Files::look(&package_dir, root.as_deref());
            if let Some(path) = seen.first_difference(&now)
                && changes.send(Event::Changed(path)).is_err()
            {
                return;
            }
            seen = now;
        }
    });
    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
    ])
    .map_err(|e| format!("cannot handle signals: {e}"))?;
    std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            let _ = tx.send(Event::Stop);
        }
    });

    loop {
        let mut server = match build(package, bin)? {
            Some(exe) => Some(spawn(&exe, args, &package.dir)?),
            None => {
                eprintln!("cargo backstage: the build failed; waiting for changes");
                None
            }
        };
        loop {
            match rx.recv_timeout(Duration::from_millis(500)) {
                Ok(Event::Stop) => {
                    if let Some(child) = server.take() {
                        stop(child);
                    }
                    return Ok(());
                }
                Ok(Event::Changed(path)) => {
                    settle(&rx);
                    eprintln!(
                        "cargo backstage: {} changed; restarting",
                        path.strip_prefix(&package.dir).unwrap_or(&path).display()
                    );
                    if let Some(child) = server.take() {
                        stop(child);
                    }
                    break;
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    if let Some(child) = &mut server
                        && let Ok(Some(status)) = child.try_wait()
                    {
                        eprintln!(
                            "cargo backstage: the server exited ({status}); waiting for changes"
                        );
                        server = None;
                    }
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
    }
}

/// Waits until changes stop arriving for [`SETTLE`] (an editor saving several files, a
/// formatter rewriting them).
fn settle(rx: &mpsc::Receiver<Event>) {
    let mut quiet_since = Instant::now();
    while quiet_since.elapsed() < SETTLE {
        match rx.recv_timeout(SETTLE) {
            Ok(Event::Changed(_)) => quiet_since = Instant::now(),
            Ok(Event::Stop) | Err(_) => return,
        }
    }
}

/// The files whose changes call for a restart, each with its modification time and length.
struct Files(BTreeMap<PathBuf, (Option<SystemTime>, u64)>);

impl Files {
    /// The package's files (not build output, version control or editors' scratch files) and
    /// the workspace root's `app-config*.yaml`. Unreadable folders count as empty.
    fn look(package_dir: &Path, root: Option<&Path>) -> Files {
        let mut files = BTreeMap::new();
        let mut pending = vec![package_dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if !relevant(package_dir, &path) {
                    continue;
                }
                if meta.is_dir() {
                    pending.push(path);
                } else {
                    files.insert(path, (meta.modified().ok(), meta.len()));
                }
            }
        }
        if let Some(root) = root {
            for entry in std::fs::read_dir(root).into_iter().flatten().flatten() {
                let path = entry.path();
                if let Ok(meta) = entry.metadata()
                    && meta.is_file()
                    && relevant(package_dir, &path)
                {
                    files.insert(path, (meta.modified().ok(), meta.len()));
                }
            }
        }
        Files(files)
    }

    /// A file that is new, gone or changed in `now`.
    fn first_difference(&self, now: &Files) -> Option<PathBuf> {
        let changed = now
            .0
            .iter()
            .find(|(path, stamp)| self.0.get(*path) != Some(stamp));
        let gone = || self.0.keys().find(|path| !now.0.contains_key(*path));
        changed.map(|(path, _)| path).or_else(gone).cloned()
    }
}

/// Whether a change at `path` calls for a restart: sources, manifests, migrations and config,
/// not build output, version control or editors' scratch files.
fn relevant(package_dir: &Path, path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    if name.ends_with('~') || name.ends_with(".swp") || name.ends_with(".swx") || name == "4913" {
        return false;
    }
    match path.strip_prefix(package_dir) {
        Ok(inside) => !inside.components().any(|c| {
            let part = c.as_os_str().to_string_lossy();
            part == "target" || part.starts_with('.')
        }),
        // Outside the package: only the workspace's config files are watched.
        Err(_) => {
            name.starts_with("app-config") && (name.ends_with(".yaml") || name.ends_with(".yml"))
        }
    }
}

fn spawn(exe: &Path, args: &[String], dir: &Path) -> Result<Child, String> {
    use std::os::unix::process::CommandExt;
    Command::new(exe)
        .args(args)
        .current_dir(dir)
        .process_group(0)
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", exe.display()))
}

/// Stops the server with SIGTERM, as a terminal's Ctrl-C would, and kills it when it has not
/// stopped after [`STOP_TIMEOUT`].
fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .stderr(Stdio::null())
        .status();
    let deadline = Instant::now() + STOP_TIMEOUT;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_and_config_count_build_output_and_scratch_files_do_not() {
        let dir = Path::new("/w/plugins/todo-backend");
        assert!(relevant(dir, &dir.join("src/lib.rs")));
        assert!(relevant(dir, &dir.join("migrations/0002_more.sql")));
        assert!(relevant(dir, Path::new("/w/app-config.local.yaml")));
        assert!(!relevant(dir, &dir.join("target/debug/todo-backend-dev")));
        assert!(!relevant(dir, &dir.join(".git/index")));
        assert!(!relevant(dir, &dir.join("src/lib.rs~")));
        assert!(!relevant(dir, Path::new("/w/Cargo.lock")));
    }

    #[test]
    fn a_new_changed_or_removed_file_is_a_difference() {
        let dir = std::env::temp_dir().join(format!("backstage-watch-{}", std::process::id()));
        let package = dir.join("plugins/todo-backend");
        std::fs::create_dir_all(package.join("src")).unwrap();
        std::fs::create_dir_all(package.join("target/debug")).unwrap();
        std::fs::write(dir.join("Cargo.toml"), "").unwrap();
        std::fs::write(package.join("src/lib.rs"), "a").unwrap();
        let look = || Files::look(&package, Some(&dir));
        let before = look();
        assert_eq!(before.first_difference(&look()), None);

        std::fs::write(package.join("target/debug/out"), "x").unwrap();
        std::fs::write(dir.join("Cargo.lock"), "x").unwrap();
        assert_eq!(
            before.first_difference(&look()),
            None,
            "build output, lock file"
        );

        std::fs::write(dir.join("app-config.local.yaml"), "x").unwrap();
        let config = look();
        assert_eq!(
            before.first_difference(&config),
            Some(dir.join("app-config.local.yaml"))
        );
        std::fs::write(package.join("src/lib.rs"), "ab").unwrap();
        let edited = look();
        assert_eq!(
            config.first_difference(&edited),
            Some(package.join("src/lib.rs"))
        );
        std::fs::remove_file(package.join("src/lib.rs")).unwrap();
        assert_eq!(
            edited.first_difference(&look()),
            Some(package.join("src/lib.rs"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
