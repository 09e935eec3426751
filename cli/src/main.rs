//! `cargo backstage`: the plugin author's workflow of backstage-rs, as Backstage's `yarn new` and
//! `yarn start` give it to TypeScript authors.
//!
//! - `cargo backstage new app <name>`: a workspace laid out like a Backstage repository.
//! - `cargo backstage new backend-plugin --id <id>`: a plugin crate in `plugins/`, linked into
//!   `packages/backend`.
//! - `cargo backstage new backend-plugin-module --plugin <id> --id <module-id>`: a module crate,
//!   linked the same way.
//! - `cargo backstage start`: inside a plugin's folder, serves it alone and restarts it when its
//!   sources change.
//!
//! Installed with `cargo install --path cli`; inside the backstage-rs repository `cargo
//! backstage` also works without installing (a cargo alias). Every command takes its input as
//! flags and asks for what is missing only when stdin is a terminal.

// A command-line tool: what it prints on stdout is its output.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

#[path = "../../macros/src/ids.rs"]
#[allow(dead_code)]
mod ids;
mod names;
mod new;
mod prompt;
mod scaffold;
mod start;
mod workspace;

/// Create Backstage backend plugins in Rust, and run them.
#[derive(Parser, Debug)]
#[command(name = "cargo backstage", bin_name = "cargo backstage", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create an app, a backend plugin or a backend plugin module.
    #[command(subcommand)]
    New(New),
    /// Serve the plugin of the current folder alone on :7007, restarting it when its sources
    /// change (Backstage's `yarn start`).
    Start(StartArgs),
    /// Print the OpenAPI document of the plugin of the current folder (generated from its
    /// routes), or write it to a file, for Backstage's client generators.
    Openapi(OpenapiArgs),
}

#[derive(Subcommand, Debug)]
enum New {
    /// A new workspace laid out like a Backstage repository: packages/backend, plugins/,
    /// app-config.yaml.
    App(AppArgs),
    /// A backend plugin in plugins/<id>-backend, linked into packages/backend.
    BackendPlugin(PluginArgs),
    /// A module of a backend plugin in plugins/<plugin>-backend-module-<id>, linked into
    /// packages/backend.
    BackendPluginModule(ModuleArgs),
}

/// Where generated crates get the `backstage` crate from.
#[derive(Args, Debug, Default)]
#[group(multiple = false)]
struct BackstageSource {
    /// Depend on the `backstage` crate in this folder (a checkout's `core/`).
    #[arg(long, value_name = "DIR")]
    backstage_path: Option<PathBuf>,
    /// Depend on `backstage` from this git repository.
    #[arg(long, value_name = "URL")]
    backstage_git: Option<String>,
    /// Depend on this version of `backstage` from crates.io.
    #[arg(long, value_name = "VERSION")]
    backstage_version: Option<String>,
}

#[derive(Args, Debug)]
struct AppArgs {
    /// The folder to create; its last part names the app.
    name: Option<String>,
    #[command(flatten)]
    source: BackstageSource,
}

#[derive(Args, Debug)]
struct PluginArgs {
    /// The plugin id: lowercase words joined by dashes (`carmen`); served under /api/<id>.
    #[arg(long)]
    id: Option<String>,
    /// Create the crate but leave packages/backend as it is.
    #[arg(long)]
    no_link: bool,
}

#[derive(Args, Debug)]
struct ModuleArgs {
    /// The id of the plugin the module extends.
    #[arg(long)]
    plugin: Option<String>,
    /// The module id: lowercase words joined by dashes.
    #[arg(long)]
    id: Option<String>,
    /// Create the crate but leave packages/backend as it is.
    #[arg(long)]
    no_link: bool,
}

#[derive(Args, Debug)]
struct StartArgs {
    /// Build and serve once; do not restart on changes.
    #[arg(long)]
    no_watch: bool,
    /// Arguments for the plugin's development server (after `--`), e.g. `-- --config x.yaml`.
    #[arg(last = true)]
    args: Vec<String>,
}

#[derive(Args, Debug)]
struct OpenapiArgs {
    /// Write the document to this file instead of printing it.
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

fn main() -> ExitCode {
    // Run as `cargo backstage ...`, cargo passes `backstage` as the first argument.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "backstage") {
        args.remove(1);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return clap_error(e),
    };
    let result = match cli.command {
        Command::New(New::App(args)) => new::app(args),
        Command::New(New::BackendPlugin(args)) => new::backend_plugin(args),
        Command::New(New::BackendPluginModule(args)) => new::backend_plugin_module(args),
        Command::Start(args) => start::run(args),
        Command::Openapi(args) => start::openapi(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Help and version as clap prints them; a usage error as one line that says where help is.
fn clap_error(error: clap::Error) -> ExitCode {
    use clap::error::ErrorKind;
    match error.kind() {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = error.print();
            if error.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand {
                return ExitCode::from(2);
            }
            ExitCode::SUCCESS
        }
        _ => {
            let rendered = error.render().to_string();
            let first = rendered
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid arguments")
                .trim();
            eprintln!("{first} (see `cargo backstage --help`)");
            ExitCode::from(2)
        }
    }
}
