//! `#[derive(PortableRow)]`: a struct that `Database::fetch_all` and its siblings read on every
//! engine. It implements sqlx's `FromRow` for the three engines' row types and `InlineRow` for
//! rows that SQLite produced on the calling thread, all reading the same columns: fields by
//! name (`#[sqlx(rename)]` and `#[sqlx(rename_all)]` as sqlx's own derive reads them), fields
//! of tuple structs by position.

use proc_macro2::TokenStream;
use quote::quote;
use syn::spanned::Spanned;

use crate::common::Errors;

/// The sqlx attributes this derive reads; the others change how sqlx reads a row in ways this
/// one does not follow.
const UNSUPPORTED: &str = "is not supported by `#[derive(PortableRow)]` (only `rename` and `rename_all` are); implement `sqlx::FromRow` and `InlineRow` by hand for such a type";

pub(crate) fn derive(input: TokenStream) -> TokenStream {
    let item: syn::DeriveInput = match syn::parse2(input) {
        Ok(item) => item,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    let rename_all = sqlx_args(&item.attrs, &mut errors, |name, value, errors| {
        if name == "rename_all" {
            return Some(value.clone());
        }
        errors.at(name, format!("`#[sqlx({name})]` {UNSUPPORTED}"));
        None
    });
    let columns = match &item.data {
        syn::Data::Struct(data) => columns(&data.fields, rename_all.as_ref(), &mut errors),
        _ => {
            errors.at(
                &item.ident,
                "`#[derive(PortableRow)]` is for structs: a row is read into named or numbered fields",
            );
            Columns::Named(Vec::new())
        }
    };
    if let Err(e) = errors.finish() {
        return e.to_compile_error();
    }
    let ident = &item.ident;
    if !item.generics.params.is_empty() {
        return syn::Error::new_spanned(
            &item.generics,
            "`#[derive(PortableRow)]` is for structs without generic parameters",
        )
        .to_compile_error();
    }
    let inline = columns.build(
        |ty, column| quote! { row.get_named::<#ty>(#column)? },
        |ty, index| quote! { row.get::<#ty>(#index)? },
    );
    let sqlx_read = columns.build(
        |ty, column| quote! { ::backstage::__private::sqlx::Row::try_get::<#ty, _>(row, #column)? },
        |ty, index| quote! { ::backstage::__private::sqlx::Row::try_get::<#ty, _>(row, #index)? },
    );
    let row_types = [
        quote!(::backstage::__private::sqlx::sqlite::SqliteRow),
        quote!(::backstage::__private::sqlx::postgres::PgRow),
        quote!(::backstage::__private::sqlx::mysql::MySqlRow),
    ];
    quote! {
        impl ::backstage::__private::InlineRow for #ident {
            fn read(
                row: &::backstage::__private::InlineColumns<'_>,
            ) -> ::core::option::Option<Self> {
                ::core::option::Option::Some(#inline)
            }
        }
        #(
            impl<'r> ::backstage::__private::sqlx::FromRow<'r, #row_types> for #ident {
                fn from_row(
                    row: &'r #row_types,
                ) -> ::core::result::Result<Self, ::backstage::__private::sqlx::Error> {
                    ::core::result::Result::Ok(#sqlx_read)
                }
            }
        )*
    }
}

/// The columns a struct's fields read: by name (with their types), or by position.
enum Columns {
    Named(Vec<(syn::Ident, syn::Type, String)>),
    Numbered(Vec<syn::Type>),
}

impl Columns {
    /// `Self { field: <read by name>, ... }` or `Self(<read by position>, ...)`.
    fn build(
        &self,
        by_name: impl Fn(&syn::Type, &str) -> TokenStream,
        by_index: impl Fn(&syn::Type, usize) -> TokenStream,
    ) -> TokenStream {
        match self {
            Columns::Named(fields) => {
                let reads = fields.iter().map(|(ident, ty, column)| {
                    let read = by_name(ty, column);
                    quote! { #ident: #read }
                });
                quote! { Self { #(#reads),* } }
            }
            Columns::Numbered(types) => {
                let reads = types.iter().enumerate().map(|(i, ty)| by_index(ty, i));
                quote! { Self(#(#reads),*) }
            }
        }
    }
}

/// The struct's fields and the column each reads.
fn columns(fields: &syn::Fields, rename_all: Option<&syn::LitStr>, errors: &mut Errors) -> Columns {
    match fields {
        syn::Fields::Named(named) => {
            let reads = named.named.iter().filter_map(|field| {
                let field_ident = field.ident.clone()?;
                let ident = field_ident.to_string();
                let ident = ident.strip_prefix("r#").unwrap_or(&ident).to_owned();
                let renamed = sqlx_args(&field.attrs, errors, |name, value, errors| {
                    if name == "rename" {
                        return Some(value.value());
                    }
                    errors.at(name, format!("`#[sqlx({name})]` {UNSUPPORTED}"));
                    None
                });
                let column = match (renamed, rename_all) {
                    (Some(column), _) => column,
                    (None, Some(rule)) => match case(&ident, &rule.value()) {
                        Some(column) => column,
                        None => {
                            errors.at(rule, format!("`rename_all = \"{}\"` is not a case sqlx knows (snake_case, lowercase, UPPERCASE, camelCase, PascalCase, SCREAMING_SNAKE_CASE, kebab-case)", rule.value()));
                            ident.clone()
                        }
                    },
                    (None, None) => ident.clone(),
                };
                Some((field_ident, field.ty.clone(), column))
            });
            Columns::Named(reads.collect())
        }
        syn::Fields::Unnamed(unnamed) => {
            let types = unnamed.unnamed.iter().map(|field| {
                sqlx_args(&field.attrs, errors, |name, _, errors| {
                    errors.at(name, format!("`#[sqlx({name})]` {UNSUPPORTED}"));
                    None::<()>
                });
                field.ty.clone()
            });
            Columns::Numbered(types.collect())
        }
        syn::Fields::Unit => {
            errors.span(
                fields.span(),
                "`#[derive(PortableRow)]` needs fields: a unit struct reads no columns",
            );
            Columns::Numbered(Vec::new())
        }
    }
}

/// Reads `#[sqlx(name = "value", flag)]` attributes: `keep` sees each argument (a flag with an
/// empty value) and returns what it takes; the last one taken wins.
fn sqlx_args<T>(
    attrs: &[syn::Attribute],
    errors: &mut Errors,
    mut keep: impl FnMut(&syn::Ident, &syn::LitStr, &mut Errors) -> Option<T>,
) -> Option<T> {
    let mut kept = None;
    for attr in attrs.iter().filter(|a| a.path().is_ident("sqlx")) {
        let parsed = attr.parse_nested_meta(|meta| {
            let Some(name) = meta.path.get_ident().cloned() else {
                return Err(meta.error("expected a name"));
            };
            let value = if meta.input.peek(syn::Token![=]) {
                match meta.value()?.parse::<syn::Expr>()? {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }) => text,
                    other => syn::LitStr::new("", other.span()),
                }
            } else if meta.input.peek(syn::token::Paren) {
                let content;
                syn::parenthesized!(content in meta.input);
                let _: TokenStream = content.parse()?;
                syn::LitStr::new("", name.span())
            } else {
                syn::LitStr::new("", name.span())
            };
            if let Some(value) = keep(&name, &value, errors) {
                kept = Some(value);
            }
            Ok(())
        });
        if let Err(e) = parsed {
            errors.push(e);
        }
    }
    kept
}

/// `field` in sqlx's `rename_all` case `rule`, converted as sqlx's own derive converts it.
fn case(field: &str, rule: &str) -> Option<String> {
    use heck::{ToKebabCase, ToLowerCamelCase, ToShoutySnakeCase, ToSnakeCase, ToUpperCamelCase};
    Some(match rule {
        "snake_case" => field.to_snake_case(),
        "lowercase" => field.to_lowercase(),
        "UPPERCASE" => field.to_uppercase(),
        "SCREAMING_SNAKE_CASE" => field.to_shouty_snake_case(),
        "kebab-case" => field.to_kebab_case(),
        "PascalCase" => field.to_upper_camel_case(),
        "camelCase" => field.to_lower_camel_case(),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cases_are_sqlx_cases() {
        assert_eq!(
            case("created_at", "camelCase").as_deref(),
            Some("createdAt")
        );
        assert_eq!(
            case("created_at", "PascalCase").as_deref(),
            Some("CreatedAt")
        );
        assert_eq!(
            case("created_at", "SCREAMING_SNAKE_CASE").as_deref(),
            Some("CREATED_AT")
        );
        assert_eq!(
            case("created_at", "kebab-case").as_deref(),
            Some("created-at")
        );
        assert_eq!(
            case("created_at", "lowercase").as_deref(),
            Some("created_at")
        );
        assert_eq!(case("created_at", "Title Case"), None);
        // As sqlx's derive: field names that are not snake_case, and leading underscores.
        assert_eq!(case("userId", "snake_case").as_deref(), Some("user_id"));
        assert_eq!(case("_private", "kebab-case").as_deref(), Some("private"));
    }

    #[test]
    fn unsupported_attributes_are_named_in_the_error() {
        let out = derive(quote! {
            struct Row { #[sqlx(default)] id: i64, #[sqlx(flatten)] inner: Inner }
        })
        .to_string();
        assert!(out.contains("`#[sqlx(default)]` is not supported"), "{out}");
        assert!(out.contains("`#[sqlx(flatten)]` is not supported"), "{out}");
    }

    #[test]
    fn renamed_fields_read_their_column() {
        let out = derive(quote! {
            #[sqlx(rename_all = "camelCase")]
            struct Row { created_at: String, #[sqlx(rename = "title")] name: String }
        })
        .to_string();
        assert!(
            out.contains("get_named :: < String > (\"createdAt\")"),
            "{out}"
        );
        assert!(out.contains("get_named :: < String > (\"title\")"), "{out}");
        assert!(
            out.contains("try_get :: < String , _ > (row , \"title\")"),
            "{out}"
        );
        assert_eq!(out.matches("FromRow <").count(), 3, "{out}");
    }
}
