//! `cargo backstage new ...`: an app, a backend plugin, a backend plugin module.
//!
//! Every input is checked before anything is written; a new folder appears whole or not at
//! all, and the edits of existing files (the workspace's members, the backend's dependency
//! and `use` line) are applied together or rolled back.

use std::path::{Path, PathBuf};

use toml_edit::{InlineTable, Value};

use crate::scaffold::{self, Edits, Template};
use crate::workspace::{self, Linked, Workspace};
use crate::{AppArgs, BackstageSource, ModuleArgs, PluginArgs, ids, names, prompt};

const APP: &[Template] = &[
    (
        "Cargo.toml",
        include_str!("../templates/app/Cargo.toml.tmpl"),
    ),
    (
        "rust-toolchain.toml",
        include_str!("../../rust-toolchain.toml"),
    ),
    (
        ".gitignore",
        include_str!("../templates/app/gitignore.tmpl"),
    ),
    (
        "app-config.yaml",
        include_str!("../templates/app/app-config.yaml.tmpl"),
    ),
    ("README.md", include_str!("../templates/app/README.md.tmpl")),
    (
        "packages/backend/Cargo.toml",
        include_str!("../templates/app/packages/backend/Cargo.toml.tmpl"),
    ),
    (
        "packages/backend/src/main.rs",
        include_str!("../templates/app/packages/backend/src/main.rs.tmpl"),
    ),
    ("plugins/.gitkeep", ""),
];

const PLUGIN: &[Template] = &[
    (
        "Cargo.toml",
        include_str!("../templates/backend-plugin/Cargo.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/backend-plugin/README.md.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/backend-plugin/src/lib.rs.tmpl"),
    ),
    (
        "src/todos.rs",
        include_str!("../templates/backend-plugin/src/todos.rs.tmpl"),
    ),
    (
        "dev/main.rs",
        include_str!("../templates/backend-plugin/dev/main.rs.tmpl"),
    ),
    (
        "migrations/0001_create_todos.sql",
        include_str!("../templates/backend-plugin/migrations/0001_create_todos.sql.tmpl"),
    ),
    (
        "tests/todos.rs",
        include_str!("../templates/backend-plugin/tests/todos.rs.tmpl"),
    ),
];

const MODULE: &[Template] = &[
    (
        "Cargo.toml",
        include_str!("../templates/backend-plugin-module/Cargo.toml.tmpl"),
    ),
    (
        "README.md",
        include_str!("../templates/backend-plugin-module/README.md.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../templates/backend-plugin-module/src/lib.rs.tmpl"),
    ),
    (
        "tests/module.rs",
        include_str!("../templates/backend-plugin-module/tests/module.rs.tmpl"),
    ),
];

/// `cargo backstage new app <name>`.
pub(crate) fn app(args: AppArgs) -> Result<(), String> {
    let name = prompt::or_ask(args.name, "App name (its folder)", "<name>")?;
    let target = current_dir()?.join(&name);
    let app_name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    if app_name.is_empty()
        || !app_name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        || !app_name.starts_with(|c: char| c.is_ascii_alphabetic())
    {
        return Err(format!(
            "app names start with a letter and hold letters, digits, `-` and `_`; `{name}` does not"
        ));
    }
    let source = backstage_dependency(&args.source)?;
    let vars = [
        ("name", app_name.as_str()),
        ("backstage_dependency", source.as_str()),
    ];
    let files = scaffold::render_all(APP, &vars)?;
    scaffold::create_folder(&target, &files)?;
    println!("Created the app {app_name} in {}", target.display());
    println!("  backstage = {source}");
    println!();
    println!("Next:");
    println!("  cd {name}");
    println!(
        "  cargo backstage new backend-plugin --id <id>   # a plugin, linked into the backend"
    );
    println!("  cargo run -p backend                            # serves on :7007");
    Ok(())
}

/// `cargo backstage new backend-plugin --id <id>`.
pub(crate) fn backend_plugin(args: PluginArgs) -> Result<(), String> {
    let id = prompt::or_ask(
        args.id,
        "Plugin id (lowercase words joined by dashes, e.g. carmen)",
        "--id <id>",
    )?;
    check_id(&id, "plugin", "--id")?;
    let mut workspace = Workspace::find(&current_dir()?)?;
    let package = names::plugin_crate(&id);
    let ident = names::crate_ident(&package);
    let plugin = names::plugin_struct(&id);
    let member = format!("plugins/{package}");
    let target = workspace.root.join(&member);
    refuse_existing(&target)?;
    let vars = [
        ("id", id.as_str()),
        ("crate", package.as_str()),
        ("crate_ident", ident.as_str()),
        ("Plugin", plugin.as_str()),
    ];
    let files = scaffold::render_all(PLUGIN, &vars)?;
    let mut edits = Edits::default();
    workspace.edit_manifest(&member, &shared_dependencies(), &mut edits)?;
    let linked = link(&workspace.root, &package, &target, args.no_link, &mut edits)?;
    write(&target, &files, edits)?;

    println!("Created the plugin {id} in {member} (crate {package})");
    report_link(&linked, &ident);
    println!();
    println!("Next:");
    println!("  cd {member} && cargo run      # the plugin alone on :7007");
    println!("  curl localhost:7007/api/{id}/health");
    println!("  cargo test -p {package}");
    Ok(())
}

/// `cargo backstage new backend-plugin-module --plugin <id> --id <module-id>`.
pub(crate) fn backend_plugin_module(args: ModuleArgs) -> Result<(), String> {
    let plugin_id = prompt::or_ask(
        args.plugin,
        "Id of the plugin the module extends (e.g. catalog)",
        "--plugin <id>",
    )?;
    check_id(&plugin_id, "plugin", "--plugin")?;
    let module_id = prompt::or_ask(
        args.id,
        "Module id (lowercase words joined by dashes, e.g. github)",
        "--id <module-id>",
    )?;
    check_id(&module_id, "module", "--id")?;
    let mut workspace = Workspace::find(&current_dir()?)?;
    let package = names::module_crate(&plugin_id, &module_id);
    let ident = names::crate_ident(&package);
    let module = names::module_struct(&plugin_id, &module_id);
    let member = format!("plugins/{package}");
    let target = workspace.root.join(&member);
    refuse_existing(&target)?;

    // With the plugin's crate in the workspace, the module depends on it (for its extension
    // points) and its test starts the real plugin; else the test declares a stand-in.
    let plugin_package = names::plugin_crate(&plugin_id);
    let plugin_in_workspace = workspace.plugin_crate(&plugin_package, &plugin_id);
    let link_it = !args.no_link && plugin_in_workspace.is_some();
    let (plugin_dependency, plugin_import, plugin) = match plugin_in_workspace {
        Some((_, plugin_struct)) => (
            format!("{plugin_package} = {{ path = \"../{plugin_package}\" }}\n"),
            format!(
                "use {}::{plugin_struct};\n",
                names::crate_ident(&plugin_package)
            ),
            plugin_struct,
        ),
        None => {
            let plugin = names::plugin_struct(&plugin_id);
            (
                String::new(),
                format!(
                    "\n/// A stand-in for the `{plugin_id}` plugin, which is not in this workspace: a module\n\
                         /// starts only with its plugin.\n\
                         #[backstage::backend_plugin(id = \"{plugin_id}\")]\n\
                         pub struct {plugin} {{}}\n"
                ),
                plugin,
            )
        }
    };
    let vars = [
        ("plugin_id", plugin_id.as_str()),
        ("module_id", module_id.as_str()),
        ("crate", package.as_str()),
        ("crate_ident", ident.as_str()),
        ("Module", module.as_str()),
        ("Plugin", plugin.as_str()),
        ("plugin_dependency", plugin_dependency.as_str()),
        ("plugin_import", plugin_import.as_str()),
    ];
    let files = scaffold::render_all(MODULE, &vars)?;
    let mut edits = Edits::default();
    workspace.edit_manifest(&member, &[], &mut edits)?;
    let linked = link(&workspace.root, &package, &target, !link_it, &mut edits)?;
    write(&target, &files, edits)?;

    println!("Created the module {module_id} of plugin {plugin_id} in {member} (crate {package})");
    if !args.no_link && !link_it {
        println!(
            "Not linked: the plugin {plugin_id} is not in this workspace ({}), and a module starts only with its plugin; \
             once the backend serves {plugin_id}, add `use {ident} as _;` to its main.rs",
            plugin_package
        );
    } else {
        report_link(&linked, &ident);
    }
    println!();
    println!("Next:");
    println!("  cargo test -p {package}");
    Ok(())
}

/// The dependencies every plugin crate takes from the workspace.
fn shared_dependencies() -> Vec<(&'static str, Value)> {
    let serde = inline(&[("version", "1")], Some(("features", &["derive"])));
    let uuid = inline(&[("version", "1")], Some(("features", &["v4"])));
    let mut chrono = inline(&[("version", "0.4")], Some(("features", &["clock", "std"])));
    chrono.insert("default-features", false.into());
    vec![
        ("serde", Value::InlineTable(serde)),
        ("uuid", Value::InlineTable(uuid)),
        ("chrono", Value::InlineTable(chrono)),
    ]
}

fn inline(pairs: &[(&str, &str)], list: Option<(&str, &[&str])>) -> InlineTable {
    let mut table = InlineTable::new();
    for (key, value) in pairs {
        table.insert(*key, (*value).into());
    }
    if let Some((key, items)) = list {
        table.insert(key, Value::Array(items.iter().copied().collect()));
    }
    table
}

/// The `backstage = ...` value of a new app: the flag's source, else the checkout this command
/// was built from when it is still there, else the crates.io version.
fn backstage_dependency(source: &BackstageSource) -> Result<String, String> {
    let mut table = InlineTable::new();
    if let Some(dir) = &source.backstage_path {
        table.insert("path", backstage_folder(dir)?.as_str().into());
    } else if let Some(url) = &source.backstage_git {
        table.insert("git", url.as_str().into());
    } else if let Some(version) = &source.backstage_version {
        table.insert("version", version.as_str().into());
    } else {
        let built_from = Path::new(env!("CARGO_MANIFEST_DIR")).join("../core");
        match backstage_folder(&built_from) {
            Ok(path) => table.insert("path", path.as_str().into()),
            Err(_) => table.insert("version", env!("CARGO_PKG_VERSION").into()),
        };
    }
    Ok(Value::InlineTable(table).to_string().trim().to_owned())
}

/// The absolute folder of the `backstage` crate given `dir`: the crate's own folder, or a
/// backstage-rs checkout (then its `core/`).
fn backstage_folder(dir: &Path) -> Result<String, String> {
    let dir = std::fs::canonicalize(dir)
        .map_err(|e| format!("--backstage-path {}: {e}", dir.display()))?;
    for candidate in [dir.clone(), dir.join("core")] {
        let manifest = std::fs::read_to_string(candidate.join("Cargo.toml")).unwrap_or_default();
        if manifest.contains("name = \"backstage\"") {
            return Ok(candidate.display().to_string());
        }
    }
    Err(format!(
        "--backstage-path {}: no `backstage` crate there (give a backstage-rs checkout or its core/ folder)",
        dir.display()
    ))
}

fn check_id(id: &str, what: &str, flag: &str) -> Result<(), String> {
    if ids::is_valid_id(id) {
        return Ok(());
    }
    Err(format!(
        "{}; write `{flag} {}`",
        ids::rule(what),
        ids::suggest_id(id)
    ))
}

fn refuse_existing(target: &Path) -> Result<(), String> {
    if target.exists() {
        return Err(format!(
            "{} already exists; nothing was written",
            target.display()
        ));
    }
    Ok(())
}

fn link(
    root: &Path,
    package: &str,
    target: &Path,
    no_link: bool,
    edits: &mut Edits,
) -> Result<Option<Linked>, String> {
    if no_link {
        return Ok(None);
    }
    workspace::link_into_backend(root, package, target, edits).map(Some)
}

/// Creates the folder, then applies the edits; when the edits fail, the folder goes again.
fn write(target: &Path, files: &[(PathBuf, String)], edits: Edits) -> Result<(), String> {
    scaffold::create_folder(target, files)?;
    if let Err(e) = edits.apply() {
        let _ = std::fs::remove_dir_all(target);
        return Err(format!("{e}; nothing was written"));
    }
    Ok(())
}

fn report_link(linked: &Option<Linked>, ident: &str) {
    match linked {
        Some(Linked::Done) => {
            println!("Linked into packages/backend: `use {ident} as _;` in src/main.rs")
        }
        Some(Linked::ByHand(instructions)) => println!("Not linked: {instructions}"),
        None => println!("Not linked (--no-link): add `use {ident} as _;` to a backend's main.rs"),
    }
}

fn current_dir() -> Result<PathBuf, String> {
    std::env::current_dir().map_err(|e| format!("cannot read the working directory: {e}"))
}
