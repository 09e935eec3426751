//! Parses `#[backend_plugin(...)]` and its struct into a model that keeps the user's tokens.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::spanned::Spanned;

/// One argument of the attribute, `name = value`.
pub(crate) struct Arg {
    pub(crate) name: syn::Ident,
    pub(crate) value: syn::Expr,
}

pub(crate) struct Field {
    pub(crate) ident: syn::Ident,
    pub(crate) ty: syn::Type,
    pub(crate) inject: bool,
    /// Other attributes on `#[inject]` (`#[inject(x)]`): none are accepted.
    pub(crate) inject_args: Option<syn::Attribute>,
}

pub(crate) enum Shape {
    Named(Vec<Field>),
    Unit,
    /// Not a struct with named fields; the span points at what is wrong.
    Unsupported(Span, &'static str),
}

pub(crate) struct Model {
    pub(crate) args: Vec<Arg>,
    pub(crate) attr_span: Span,
    /// The struct as written, `#[inject]` attributes removed.
    pub(crate) item: syn::ItemStruct,
    pub(crate) shape: Shape,
}

pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<Model> {
    let attr_span = if attr.is_empty() {
        Span::call_site()
    } else {
        attr.span()
    };
    let parser =
        syn::punctuated::Punctuated::<syn::MetaNameValue, syn::Token![,]>::parse_terminated;
    let args = parser
        .parse2(attr)
        .map_err(|e| syn::Error::new(e.span(), "expected `id = \"my-plugin\"`"))?
        .into_iter()
        .map(|nv| match nv.path.get_ident() {
            Some(name) => Ok(Arg {
                name: name.clone(),
                value: nv.value,
            }),
            None => Err(syn::Error::new_spanned(
                nv.path,
                "expected `id = \"my-plugin\"`",
            )),
        })
        .collect::<syn::Result<Vec<_>>>()?;

    let item: syn::Item = syn::parse2(item)?;
    let mut item = match item {
        syn::Item::Struct(item) => item,
        syn::Item::Enum(e) => {
            return Err(syn::Error::new_spanned(
                e.enum_token,
                "#[backend_plugin] goes on a struct with named fields, not an enum; write `pub struct MyPlugin { #[inject] logger: Logger }`",
            ));
        }
        other => {
            return Err(syn::Error::new_spanned(
                other,
                "#[backend_plugin] goes on a struct with named fields; write `pub struct MyPlugin { #[inject] logger: Logger }`",
            ));
        }
    };

    let shape = match &mut item.fields {
        syn::Fields::Unit => Shape::Unit,
        syn::Fields::Unnamed(fields) => Shape::Unsupported(
            fields.span(),
            "#[backend_plugin] needs named fields so each dependency has a name; write `struct MyPlugin { #[inject] logger: Logger }`",
        ),
        syn::Fields::Named(fields) => {
            let mut out = Vec::new();
            for field in &mut fields.named {
                let mut inject = false;
                let mut inject_args = None;
                field.attrs.retain(|a| {
                    if a.path().is_ident("inject") {
                        inject = true;
                        if !matches!(a.meta, syn::Meta::Path(_)) {
                            inject_args = Some(a.clone());
                        }
                        false
                    } else {
                        true
                    }
                });
                if let Some(ident) = &field.ident {
                    out.push(Field {
                        ident: ident.clone(),
                        ty: field.ty.clone(),
                        inject,
                        inject_args,
                    });
                }
            }
            Shape::Named(out)
        }
    };
    Ok(Model {
        args,
        attr_span,
        item,
        shape,
    })
}
