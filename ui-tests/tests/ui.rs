//! Every compile-time error the DSL promises, with its reviewed `.stderr`: each case under
//! `fail/` is compiled by rustc against the libraries cargo built for this test, and its
//! diagnostics must equal the snapshot beside it. Bless changed snapshots with `BLESS=1` and
//! review them. The legal surface of each macro (the cases under `pass/`) is compiled and
//! checked by `tests/pass.rs` instead.
//!
//! A case is checked as `cargo check` would (`--emit=metadata`: expansion, type and borrow
//! checking, no code generation). Snapshots are normalized so that they survive edits
//! elsewhere: paths outside `ui-tests/` become `$WORKSPACE/...`, `$RUST/...` or `$CARGO/...`
//! without line numbers, "and 12 others" becomes "and $N others", and notes that name the
//! file rustc wrote a long type name to are left out.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

/// What cargo gave the compiler of this test: `--extern` and `-L` pairs, then `--rustc PATH`.
const RUSTC_ARGS: &[&str] = backstage_ui_rustc_args::rustc_args!();

#[test]
fn compile_fail_cases() {
    let (rustc, deps) = compiler();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let cases = cases(&root.join("fail"));
    assert!(
        !cases.is_empty(),
        "no cases under {}",
        root.join("fail").display()
    );
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("ui");
    std::fs::create_dir_all(&out).expect("the output folder can be made");
    let bless = std::env::var_os("BLESS").is_some();

    let queue = Mutex::new(cases.iter());
    let failures = Mutex::new(Vec::new());
    let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
    std::thread::scope(|scope| {
        for _ in 0..workers {
            scope.spawn(|| {
                while let Some(case) = next(&queue) {
                    if let Err(report) = check(case, root, &rustc, &deps, &out, bless) {
                        failures.lock().expect("no worker panicked").push(report);
                    }
                }
            });
        }
    });
    let failures = failures.into_inner().expect("no worker panicked");
    assert!(
        failures.is_empty(),
        "{} of {} compile-fail cases differ from their snapshots:\n\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

fn next<'a>(queue: &Mutex<std::slice::Iter<'a, PathBuf>>) -> Option<&'a PathBuf> {
    queue.lock().expect("no worker panicked").next()
}

/// The compiler that built this test and its crate arguments, without the `--rustc` pair.
fn compiler() -> (String, Vec<&'static str>) {
    let mut deps = RUSTC_ARGS.to_vec();
    let rustc = match deps.iter().position(|arg| *arg == "--rustc") {
        Some(at) => deps.drain(at..).nth(1).unwrap_or("rustc").to_owned(),
        None => "rustc".to_owned(),
    };
    assert!(
        deps.iter().any(|arg| arg.starts_with("backstage=")),
        "this test was not compiled by rustc with `--extern backstage=...` (arguments seen: \
         {RUSTC_ARGS:?}); run it with `cargo test`"
    );
    (rustc, deps)
}

/// `fail/<macro>/<case>.rs`, sorted.
fn cases(dir: &Path) -> Vec<PathBuf> {
    let mut cases = Vec::new();
    for group in std::fs::read_dir(dir).expect("fail/ can be read").flatten() {
        let Ok(files) = std::fs::read_dir(group.path()) else {
            continue;
        };
        cases.extend(
            files
                .flatten()
                .map(|file| file.path())
                .filter(|path| path.extension().is_some_and(|ext| ext == "rs")),
        );
    }
    cases.sort();
    cases
}

/// Compiles one case and compares its normalized diagnostics with `<case>.stderr`.
fn check(
    case: &Path,
    root: &Path,
    rustc: &str,
    deps: &[&str],
    out: &Path,
    bless: bool,
) -> Result<(), String> {
    let relative = case.strip_prefix(root).unwrap_or(case);
    let workspace = root.parent().unwrap_or(root);
    let name = relative
        .with_extension("")
        .to_string_lossy()
        .replace(['/', '\\'], "_");
    let run = Command::new(rustc)
        // From the workspace's root, where the sources of `backstage` are found under the
        // relative names cargo compiled them with, so that notes show their code.
        .current_dir(workspace)
        .args([
            "--edition=2024",
            "--crate-type=bin",
            "--emit=metadata",
            "--color=never",
        ])
        .args([
            "--error-format=human",
            "--diagnostic-width=140",
            "-A",
            "dead_code",
        ])
        .arg("--remap-path-prefix=ui-tests/fail=fail")
        .arg(format!("--crate-name={name}"))
        .arg("-o")
        .arg(out.join(format!("{name}.rmeta")))
        .args(deps)
        .arg(Path::new("ui-tests").join(relative))
        .output()
        .map_err(|error| {
            format!(
                "{}: rustc ({rustc}) did not run: {error}",
                relative.display()
            )
        })?;
    let actual = normalize(&String::from_utf8_lossy(&run.stderr), root);
    let snapshot = case.with_extension("stderr");
    if run.status.success() {
        return Err(format!(
            "{}: compiled, but must not\n{actual}",
            relative.display()
        ));
    }
    let expected = std::fs::read_to_string(&snapshot).unwrap_or_default();
    if expected == actual {
        return Ok(());
    }
    if bless {
        std::fs::write(&snapshot, &actual).expect("the snapshot can be written");
        eprintln!("blessed {}", snapshot.display());
        return Ok(());
    }
    Err(format!(
        "{}: the diagnostics differ from {} (BLESS=1 writes them)\n{}",
        relative.display(),
        snapshot
            .file_name()
            .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
        difference(&expected, &actual)
    ))
}

/// The two texts line by line, marking lines only in the snapshot `-` and only in the new
/// output `+` (a plain walk; the texts are short).
fn difference(expected: &str, actual: &str) -> String {
    let (old, new): (Vec<_>, Vec<_>) = (expected.lines().collect(), actual.lines().collect());
    let mut report = String::new();
    let (mut i, mut j) = (0, 0);
    while i < old.len() || j < new.len() {
        if i < old.len() && j < new.len() && old[i] == new[j] {
            let _ = writeln!(report, "  {}", old[i]);
            (i, j) = (i + 1, j + 1);
        } else if j < new.len() && !old[i..].contains(&new[j]) {
            let _ = writeln!(report, "+ {}", new[j]);
            j += 1;
        } else {
            let _ = writeln!(report, "- {}", old[i]);
            i += 1;
        }
    }
    report
}

/// rustc's output with everything that depends on where things live or on code outside the
/// case taken out (see the module documentation).
fn normalize(stderr: &str, root: &Path) -> String {
    let workspace = root.parent().unwrap_or(root).display().to_string();
    let text = stderr
        .lines()
        // Long type names go to a file of a random name; the message keeps the short form.
        .filter(|line| {
            !line.contains("the full name for the type has been written to")
                && !line.contains("consider using `--verbose` to print the full type name")
        })
        .map(|line| others(&outside_paths(&line.replace(&workspace, "$WORKSPACE"))))
        .collect::<Vec<_>>()
        .join("\n");
    let mut text = split_diagnostics(&text)
        .iter()
        .flat_map(|diagnostic| renumber(diagnostic))
        .collect::<Vec<_>>()
        .join("\n");
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// A path into the standard library's sources (installed, or as remapped to
/// `/rustc/<commit>/library/`) as `$RUST/...`, and one into a registry crate's as
/// `$CARGO/<crate>-<version>/...`.
fn outside_paths(line: &str) -> String {
    const INSTALLED: &str = "/lib/rustlib/src/rust/library/";
    const REGISTRY: &str = "/registry/src/";
    const REMAPPED: &str = "/rustc/";
    // The path's first character (after a space, or the line's start).
    let path_start = |at: usize| line[..at].rfind(' ').map_or(0, |space| space + 1);
    // Where the path starts, where the part that stays starts, and the name for the rest.
    let found = if let Some(at) = line.find(INSTALLED) {
        Some((path_start(at), at + INSTALLED.len(), "$RUST/"))
    } else if let Some(at) = line.find(REGISTRY) {
        // The index's own folder goes too.
        let index = at + REGISTRY.len();
        line[index..]
            .find('/')
            .map(|slash| (path_start(at), index + slash + 1, "$CARGO/"))
    } else if let Some(at) = line.find(REMAPPED) {
        let commit = at + REMAPPED.len();
        line[commit..]
            .find("/library/")
            .filter(|&end| {
                line[commit..commit + end]
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit())
            })
            .map(|end| (at, commit + end + "/library/".len(), "$RUST/"))
    } else {
        None
    };
    match found {
        Some((start, rest, name)) => format!("{}{name}{}", &line[..start], &line[rest..]),
        None => line.to_owned(),
    }
}

/// The output cut before each line that starts a diagnostic (`error`, `warning`), so that
/// notes stay with the diagnostic they belong to.
fn split_diagnostics(text: &str) -> Vec<Vec<&str>> {
    let mut diagnostics: Vec<Vec<&str>> = Vec::new();
    for line in text.lines() {
        if line.starts_with("error") || line.starts_with("warning") || diagnostics.is_empty() {
            diagnostics.push(Vec::new());
        }
        if let Some(current) = diagnostics.last_mut() {
            current.push(line);
        }
    }
    diagnostics
}

/// One diagnostic with the line numbers of files outside the case (not under `fail/`) blanked and
/// the gutter as wide as the case's own line numbers need: code elsewhere may move.
fn renumber(diagnostic: &[&str]) -> Vec<String> {
    let Some(width) = diagnostic.iter().find_map(|line| arrow_width(line)) else {
        return diagnostic.iter().map(|line| (*line).to_owned()).collect();
    };
    let mut outside = false;
    let mut widest = 1;
    let mut parsed = Vec::new();
    for line in diagnostic {
        let gutter = line.len() > width && line.is_char_boundary(width) && {
            let (head, rest) = line.split_at(width);
            head.trim_start().chars().all(|c| c.is_ascii_digit())
                && (rest.starts_with(' ') || rest.starts_with("-->") || rest.starts_with(":::"))
        };
        if !gutter {
            // A note or help of its own: its suggestions are in the case again.
            outside = false;
            parsed.push(None);
            continue;
        }
        let (head, rest) = line.split_at(width);
        if let Some(path) = rest
            .strip_prefix("--> ")
            .or_else(|| rest.strip_prefix("::: "))
        {
            outside = !path.starts_with("fail/");
            if !outside {
                let number = path.rsplit(':').nth(1).unwrap_or("1");
                widest = widest.max(number.len());
            }
        }
        let number = head.trim_start();
        if !number.is_empty() && !outside {
            widest = widest.max(number.len());
        }
        parsed.push(Some((if outside { "" } else { number }, rest, outside)));
    }
    diagnostic
        .iter()
        .zip(parsed)
        .map(|(line, parsed)| match parsed {
            None => (*line).to_owned(),
            Some((number, rest, outside)) => {
                let rest = match rest
                    .strip_prefix("--> ")
                    .or_else(|| rest.strip_prefix("::: "))
                {
                    Some(path) if outside => {
                        let file = path.split(':').next().unwrap_or(path);
                        // Sources of the workspace's crates are named relative to its root.
                        let root = if file.starts_with('$') {
                            ""
                        } else {
                            "$WORKSPACE/"
                        };
                        format!("{} {root}{file}", &rest[..3])
                    }
                    _ => rest.to_owned(),
                };
                format!("{number:>widest$}{rest}")
            }
        })
        .collect()
}

/// The gutter width of a diagnostic: the spaces before its first `-->`.
fn arrow_width(line: &str) -> Option<usize> {
    let trimmed = line.trim_start_matches(' ');
    trimmed
        .starts_with("--> ")
        .then(|| line.len() - trimmed.len())
}

/// "and 12 others" (how many depends on what is in scope) becomes "and $N others".
fn others(line: &str) -> String {
    match line.split_once("and ") {
        Some((head, tail)) if line.trim_end().ends_with(" others") => {
            let count = tail.trim_end().trim_end_matches(" others");
            if count.chars().all(|c| c.is_ascii_digit()) {
                format!("{head}and $N others")
            } else {
                line.to_owned()
            }
        }
        _ => line.to_owned(),
    }
}
