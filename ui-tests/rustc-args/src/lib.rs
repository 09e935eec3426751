//! `rustc_args!()`: the `--extern` and `-L` arguments of the rustc that compiles the call, as a
//! `&[&str]`.
//!
//! The compile-fail harness (`ui-tests/tests/ui.rs`) compiles each case with rustc against the
//! very libraries cargo built for the test itself, so no second copy of the stack is checked.
//! Cargo does not tell a test where those libraries are; the compiler that builds the test
//! knows, and a procedural macro runs inside it. Expanded outside rustc (an IDE's expansion
//! server), the list is empty and the harness says so.

use proc_macro::{Literal, TokenStream};

/// The `--extern NAME=PATH` and `-L KIND=PATH` pairs of this rustc run, then `--rustc`, the
/// compiler's own path, as string literals in a slice.
///
/// ```
/// const ARGS: &[&str] = backstage_ui_rustc_args::rustc_args!();
/// // This example was compiled against this crate, so the list names it.
/// assert!(ARGS.iter().any(|arg| arg.starts_with("backstage_ui_rustc_args=")));
/// assert!(ARGS.contains(&"--rustc"));
/// ```
#[proc_macro]
pub fn rustc_args(_input: TokenStream) -> TokenStream {
    let mut picked = Vec::new();
    let mut args = arguments().into_iter();
    while let Some(arg) = args.next() {
        for flag in ["--extern", "-L"] {
            if arg == flag {
                if let Some(value) = args.next() {
                    picked.push(flag.to_owned());
                    picked.push(value);
                }
            } else if let Some(value) = arg.strip_prefix(flag) {
                let value = value
                    .strip_prefix('=')
                    .filter(|_| flag == "--extern")
                    .unwrap_or(value);
                picked.push(flag.to_owned());
                picked.push(value.to_owned());
            }
        }
    }
    if let Ok(rustc) = std::env::current_exe() {
        picked.push("--rustc".to_owned());
        picked.push(rustc.display().to_string());
    }
    let items: Vec<String> = picked
        .iter()
        .map(|arg| Literal::string(arg).to_string())
        .collect();
    format!("&[{}]", items.join(", "))
        .parse()
        .unwrap_or_default()
}

/// The process's arguments with `@file` arguments (cargo's way around long command lines)
/// read in, one argument per line.
fn arguments() -> Vec<String> {
    std::env::args()
        .flat_map(|arg| match arg.strip_prefix('@') {
            Some(file) => std::fs::read_to_string(file)
                .map(|text| text.lines().map(str::to_owned).collect())
                .unwrap_or_default(),
            None => vec![arg],
        })
        .collect()
}
