//! A plugin served alone for development: Backstage's `yarn start` inside a plugin package.
//!
//! A plugin crate made by `cargo backstage new backend-plugin` has a small binary,
//! `dev/main.rs`, that calls [`start`] with its plugin. `cargo run` in the plugin's folder (or
//! `cargo backstage start`, which also restarts it when the sources change) then serves that
//! plugin, and the modules linked with it, on :7007:
//!
//! - requests without a token act as the development user `user:development/guest`;
//!   `Authorization: Bearer mock-none-token` is no one (protected routes answer 401),
//!   `Bearer mock-service-token` a service, `mock-user-token:{"sub":"user:default/ada"}` that
//!   user, as in Backstage's mock auth; static tokens from the config work too;
//! - the config is the workspace's `app-config.yaml` and `app-config.local.yaml` (then the
//!   plugin folder's own, if it has any), or the `--config` arguments;
//! - unless the config names a database server, the plugin's SQLite data is kept in a file
//!   under the target folder (`target/debug/backstage-dev/<pluginId>.sqlite`), so it
//!   survives restarts; `cargo clean` removes it;
//! - it refuses to start when `NODE_ENV` or `BACKSTAGE_ENV` is `production`;
//! - `--openapi` prints the plugin's OpenAPI document (with its own paths, see
//!   [`crate::openapi`]) and exits: what `cargo backstage openapi` runs.
//!
//! ```no_run
//! # use backstage::prelude::*;
//! # #[backend_plugin(id = "todo")] pub struct TodoPlugin;
//! // dev/main.rs of the crate `todo-backend`
//! fn main() {
//!     backstage::dev::start::<TodoPlugin>()
//! }
//! ```

use std::path::{Path, PathBuf};

use serde_json::json;

use crate::auth::{Credentials, HttpAuth};
use crate::backend::{Backend, run_process};
use crate::config::RootConfig;
use crate::error::{Error, Result};
use crate::plugin::{BackendPlugin, BoxFuture, ServiceContext};

/// Prints plugin `P`'s OpenAPI document to stdout, and to stderr the types it could not
/// describe.
fn print_openapi<P: BackendPlugin>() {
    for open in crate::openapi::open_types::<P>() {
        eprintln!(
            "note: {open} has no JSON Schema (derive schemars::JsonSchema); the document shows an open schema"
        );
    }
    let document = crate::openapi::document::<P>();
    let text = serde_json::to_string_pretty(&document).unwrap_or_default();
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = std::io::Write::write_all(&mut stdout, format!("{text}\n").as_bytes()) {
        eprintln!("cannot print the OpenAPI document: {e}");
        std::process::exit(1);
    }
}

/// Who a request without a token is on the development server.
pub const DEVELOPMENT_USER: &str = "user:development/guest";

/// Serves plugin `P` alone for development, with the modules linked into the binary that
/// extend it, until SIGINT or SIGTERM. Exits non-zero with a message when start-up fails, and
/// at once when `NODE_ENV` or `BACKSTAGE_ENV` is `production`. `--list-routes` prints what it
/// would serve and exits; `--openapi` prints its OpenAPI document and exits. See the
/// [module docs](self) for what differs from a real backend.
pub fn start<P: BackendPlugin>() {
    if std::env::args().skip(1).any(|arg| arg == "--openapi") {
        print_openapi::<P>();
        return;
    }
    if let Some(var) = production() {
        eprintln!(
            "This is the development server of plugin '{}' and {var} is 'production': it accepts \
             requests without credentials, so it never runs in production. Serve the plugin from a \
             backend instead (packages/backend, `use <crate> as _;`).",
            P::ID
        );
        std::process::exit(1);
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let config = development_config(&args, P::ID);
    let builder = Backend::builder()
        .plugin::<P>()
        .linked_modules_of(P::ID)
        .factory(crate::testing::mock::mock_auth_factory)
        .factory(development_http_auth);
    run_process(builder, config, &args, |_| {
        tracing::warn!(
            "Development server of plugin '{}': requests without a token act as {DEVELOPMENT_USER}; \
             'Authorization: Bearer mock-none-token' is no one, 'Bearer mock-service-token' a service. \
             Never expose it: it is not a backend for production.",
            P::ID
        );
        Ok(())
    });
}

/// `NODE_ENV` or `BACKSTAGE_ENV`, whichever says `production`.
fn production() -> Option<&'static str> {
    ["NODE_ENV", "BACKSTAGE_ENV"]
        .into_iter()
        .find(|var| std::env::var(var).is_ok_and(|v| v == "production"))
}

/// `httpAuth` with the development user standing in for a missing token.
fn development_http_auth<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<HttpAuth>> {
    Box::pin(async move {
        let http_auth = ctx.default_of::<HttpAuth>().await?;
        Ok(http_auth.with_default_credentials(Credentials::user(DEVELOPMENT_USER)))
    })
}

/// The workspace's config files (then the working directory's, when it is another folder), or
/// the `--config` arguments; then SQLite kept in a file under the target folder unless a
/// database server is configured.
fn development_config(args: &[String], plugin_id: &str) -> Result<RootConfig> {
    let cwd = std::env::current_dir()
        .map_err(|e| Error::internal(format!("cannot read the working directory: {e}")))?;
    let root = workspace_root(&cwd);
    let dirs: Vec<&Path> = match &root {
        Some(root) if root != &cwd => vec![root.as_path(), cwd.as_path()],
        _ => vec![cwd.as_path()],
    };
    let config = RootConfig::load_from_dirs(
        args.iter().cloned(),
        &cwd,
        &dirs,
        std::env::vars().collect(),
    )?;
    let client: Option<String> = config.get_optional("backend.database.client")?;
    let on_sqlite = matches!(
        client.as_deref(),
        None | Some("better-sqlite3" | "sqlite3" | "sqlite")
    );
    if !on_sqlite {
        return Ok(config);
    }
    let directory = data_directory()?;
    std::fs::create_dir_all(&directory).map_err(|e| {
        Error::internal(format!(
            "cannot create the development data folder {}: {e}",
            directory.display()
        ))
    })?;
    tracing::debug!(
        plugin = plugin_id,
        "development data in {}",
        directory.display()
    );
    let database = json!({
        "backend": { "database": {
            "client": "better-sqlite3",
            "connection": { "directory": directory.display().to_string() },
        } }
    });
    Ok(config.merged_with(
        database,
        "the development server (SQLite kept across restarts)",
    ))
}

/// `backstage-dev/` next to the running binary: inside the target folder.
fn data_directory() -> Result<PathBuf> {
    let exe = std::env::current_exe()
        .map_err(|e| Error::internal(format!("cannot find the running binary: {e}")))?;
    let folder = exe.parent().unwrap_or(Path::new("."));
    Ok(folder.join("backstage-dev"))
}

/// The nearest folder at or above `dir` whose `Cargo.toml` declares a `[workspace]`.
fn workspace_root(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|candidate| {
            std::fs::read_to_string(candidate.join("Cargo.toml")).is_ok_and(|manifest| {
                manifest
                    .lines()
                    .any(|line| line.trim_start().starts_with("[workspace"))
            })
        })
        .map(Path::to_path_buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_workspace_root_is_the_nearest_manifest_with_a_workspace() {
        let base = std::env::temp_dir().join(format!("backstage-dev-root-{}", std::process::id()));
        let plugin = base.join("plugins/todo-backend/src");
        std::fs::create_dir_all(&plugin).unwrap();
        std::fs::write(base.join("Cargo.toml"), "[workspace]\nmembers = []\n").unwrap();
        std::fs::write(
            base.join("plugins/todo-backend/Cargo.toml"),
            "[package]\nname = \"todo-backend\"\n",
        )
        .unwrap();
        assert_eq!(workspace_root(&plugin), Some(base.clone()));
        std::fs::remove_dir_all(&base).unwrap();
    }
}
