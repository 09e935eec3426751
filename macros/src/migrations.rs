//! `migrate!("./migrations")`: reads the folder when the crate compiles and embeds every file.
//! Parse (the folder into files, every misnamed file reported) -> validate (no version twice
//! for one engine) -> expand; on error an empty list stands in, so the call still type-checks.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::common::Errors;

pub(crate) fn migrate(input: TokenStream) -> TokenStream {
    let result = parse(input).and_then(|(lit, files)| {
        validate(&lit, &files)?;
        Ok(expand(&files))
    });
    match result {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.to_compile_error();
            quote! {{ #error; ::backstage::database::Migrations::new(&[]) }}
        }
    }
}

/// One migration file.
struct File {
    version: i64,
    description: String,
    /// `Postgres`, `MySql` or `Sqlite` for an engine-specific file.
    engine: Option<&'static str>,
    path: PathBuf,
}

/// The folder (relative to the crate's `Cargo.toml`) and its `.sql` files, sorted by version.
fn parse(input: TokenStream) -> syn::Result<(syn::LitStr, Vec<File>)> {
    let lit: syn::LitStr = syn::parse2(input).map_err(|e| {
        syn::Error::new(
            e.span(),
            "write the migrations folder as a string: `backstage::migrate!(\"./migrations\")`",
        )
    })?;
    let root = std::env::var("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_default();
    let dir = root.join(lit.value());
    let entries = std::fs::read_dir(&dir).map_err(|e| {
        syn::Error::new_spanned(
            &lit,
            format!("cannot read the migrations folder {}: {e}", dir.display()),
        )
    })?;
    let mut errors = Errors::default();
    let mut files = Vec::new();
    for entry in entries {
        let path = match entry {
            Ok(entry) => entry.path(),
            Err(e) => {
                errors.at(&lit, e.to_string());
                continue;
            }
        };
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        match file(&name, stem, path.clone()) {
            Ok(file) => files.push(file),
            Err(message) => errors.at(&lit, message),
        }
    }
    errors.finish()?;
    files.sort_by(|a, b| (a.version, a.engine).cmp(&(b.version, b.engine)));
    Ok((lit, files))
}

/// A file named `<version>_<description>[.<engine>].sql`, or what is wrong with its name.
fn file(name: &str, stem: &str, path: PathBuf) -> Result<File, String> {
    let (stem, engine) = match stem.rsplit_once('.') {
        Some((rest, "postgres")) => (rest, Some("Postgres")),
        Some((rest, "mysql")) => (rest, Some("MySql")),
        Some((rest, "sqlite")) => (rest, Some("Sqlite")),
        Some((_, other)) => {
            return Err(format!(
                "migration {name}: unknown engine '{other}'; name engine-specific files `<version>_<description>.postgres.sql`, `.mysql.sql` or `.sqlite.sql`"
            ));
        }
        None => (stem, None),
    };
    let Some((version, description)) = stem.split_once('_') else {
        return Err(format!(
            "migration {name}: name migrations `<version>_<description>.sql`, like `0001_create_items.sql`"
        ));
    };
    let version: i64 = version
        .parse()
        .map_err(|_| format!("migration {name}: the version '{version}' is not a number"))?;
    Ok(File {
        version,
        description: description.replace('_', " "),
        engine,
        path,
    })
}

/// No version twice for one engine.
fn validate(lit: &syn::LitStr, files: &[File]) -> syn::Result<()> {
    let mut errors = Errors::default();
    for pair in files.windows(2) {
        if pair[0].version == pair[1].version && pair[0].engine == pair[1].engine {
            errors.at(
                lit,
                format!(
                    "two migrations have version {} for the same engine: {} and {}",
                    pair[0].version,
                    pair[0].path.display(),
                    pair[1].path.display()
                ),
            );
        }
    }
    errors.finish()
}

/// The embedded list.
fn expand(files: &[File]) -> TokenStream {
    let entries = files.iter().map(|f| {
        let version = f.version;
        let description = &f.description;
        let engine = match f.engine {
            Some(engine) => {
                let engine = format_ident!("{engine}");
                quote!(::core::option::Option::Some(::backstage::database::Engine::#engine))
            }
            None => quote!(::core::option::Option::None),
        };
        let path = f.path.display().to_string();
        quote! {
            ::backstage::database::Migration { version: #version, description: #description, engine: #engine, sql: ::core::include_str!(#path) }
        }
    });
    quote! {{
        static MIGRATIONS: &[::backstage::database::Migration] = &[#(#entries),*];
        ::backstage::database::Migrations::new(MIGRATIONS)
    }}
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_misnamed_file_is_reported_at_once() {
        let dir = std::env::temp_dir().join(format!("backstage-migrate-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for name in [
            "0001_create.sql",
            "createitems.sql",
            "0002_x.oracle.sql",
            "notes.txt",
        ] {
            std::fs::write(dir.join(name), "SELECT 1;").unwrap();
        }
        let folder = dir.display().to_string();
        let error = match parse(quote!(#folder)) {
            Ok(_) => panic!("misnamed files were accepted"),
            Err(error) => error,
        };
        let messages: Vec<String> = error.into_iter().map(|e| e.to_string()).collect();
        assert_eq!(messages.len(), 2, "{messages:?}");
        assert!(
            messages
                .iter()
                .any(|m| m.contains("createitems.sql: name migrations"))
        );
        assert!(
            messages
                .iter()
                .any(|m| m.contains("unknown engine 'oracle'"))
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_version_twice_for_one_engine_is_refused() {
        let files: Vec<File> = [("0001_a.sql", "0001_a"), ("0001_b.sql", "0001_b")]
            .into_iter()
            .map(|(name, stem)| file(name, stem, PathBuf::from(name)).unwrap())
            .collect();
        let lit = syn::LitStr::new("./migrations", proc_macro2::Span::call_site());
        assert!(validate(&lit, &files).is_err());
        let specific = file("0001_a.postgres.sql", "0001_a.postgres", PathBuf::new()).unwrap();
        assert!(validate(&lit, &[files.into_iter().next().unwrap(), specific]).is_ok());
    }
}
