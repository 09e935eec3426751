//! `migrate!("./migrations")`: reads the folder when the crate compiles and embeds every file.

use std::path::PathBuf;

use proc_macro2::TokenStream;
use quote::quote;

pub(crate) fn migrate(input: TokenStream) -> TokenStream {
    match expand(input) {
        Ok(tokens) => tokens,
        Err(error) => {
            let error = error.to_compile_error();
            quote! {{ #error; ::backstage::database::Migrations::new(&[]) }}
        }
    }
}

struct File {
    version: i64,
    description: String,
    engine: Option<&'static str>,
    path: PathBuf,
}

fn expand(input: TokenStream) -> syn::Result<TokenStream> {
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
    let mut files = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|e| syn::Error::new_spanned(&lit, e.to_string()))?
            .path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()).map(str::to_owned) else {
            continue;
        };
        let Some(stem) = name.strip_suffix(".sql") else {
            continue;
        };
        let (stem, engine) = match stem.rsplit_once('.') {
            Some((rest, "postgres")) => (rest, Some("Postgres")),
            Some((rest, "mysql")) => (rest, Some("MySql")),
            Some((rest, "sqlite")) => (rest, Some("Sqlite")),
            Some((_, other)) => {
                return Err(syn::Error::new_spanned(
                    &lit,
                    format!(
                        "migration {name}: unknown engine '{other}'; name engine-specific files `<version>_<description>.postgres.sql`, `.mysql.sql` or `.sqlite.sql`"
                    ),
                ));
            }
            None => (stem, None),
        };
        let Some((version, description)) = stem.split_once('_') else {
            return Err(syn::Error::new_spanned(
                &lit,
                format!(
                    "migration {name}: name migrations `<version>_<description>.sql`, like `0001_create_items.sql`"
                ),
            ));
        };
        let version: i64 = version.parse().map_err(|_| {
            syn::Error::new_spanned(
                &lit,
                format!("migration {name}: the version '{version}' is not a number"),
            )
        })?;
        files.push(File {
            version,
            description: description.replace('_', " "),
            engine,
            path,
        });
    }
    files.sort_by(|a, b| (a.version, a.engine).cmp(&(b.version, b.engine)));
    for pair in files.windows(2) {
        if pair[0].version == pair[1].version && pair[0].engine == pair[1].engine {
            return Err(syn::Error::new_spanned(
                &lit,
                format!(
                    "two migrations have version {} for the same engine: {} and {}",
                    pair[0].version,
                    pair[0].path.display(),
                    pair[1].path.display()
                ),
            ));
        }
    }
    let entries = files.iter().map(|f| {
        let version = f.version;
        let description = &f.description;
        let engine = match f.engine {
            Some(engine) => {
                let engine = syn::Ident::new(engine, proc_macro2::Span::call_site());
                quote!(::core::option::Option::Some(::backstage::database::Engine::#engine))
            }
            None => quote!(::core::option::Option::None),
        };
        let path = f.path.display().to_string();
        quote! {
            ::backstage::database::Migration { version: #version, description: #description, engine: #engine, sql: ::core::include_str!(#path) }
        }
    });
    Ok(quote! {{
        static MIGRATIONS: &[::backstage::database::Migration] = &[#(#entries),*];
        ::backstage::database::Migrations::new(MIGRATIONS)
    }})
}
