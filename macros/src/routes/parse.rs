//! Parses a `#[routes]` impl block: its `#[route]` and `#[init]` methods and their parameters.
//! Function bodies are never looked at (see [`super::ast`]).

use proc_macro2::{Span, TokenStream};
use syn::parse::{Parse, ParseStream};
use syn::spanned::Spanned;

use super::ast::{ImplBlock, ImplItem};

/// `#[route(method, "path", auth = "...")]` as written.
pub(crate) struct RouteArgs {
    pub(crate) method: syn::Ident,
    pub(crate) path: syn::LitStr,
    /// Every `name = value` after the path.
    pub(crate) options: Vec<(syn::Ident, syn::Expr)>,
}

impl Parse for RouteArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let method: syn::Ident = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "a route starts with its HTTP method: `#[route(get, \"/path\")]`",
            )
        })?;
        input.parse::<syn::Token![,]>().map_err(|e| {
            syn::Error::new(
                e.span(),
                "the method is followed by the path: `#[route(get, \"/path\")]`",
            )
        })?;
        let path: syn::LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "the route path is a string literal: `#[route(get, \"/items/{id}\")]`",
            )
        })?;
        let mut options = Vec::new();
        while !input.is_empty() {
            input.parse::<syn::Token![,]>()?;
            if input.is_empty() {
                break;
            }
            let name: syn::Ident = input.parse()?;
            input
                .parse::<syn::Token![=]>()
                .map_err(|e| syn::Error::new(e.span(), format!("expected `{name} = \"...\"`")))?;
            let value: syn::Expr = input.parse()?;
            options.push((name, value));
        }
        Ok(RouteArgs {
            method,
            path,
            options,
        })
    }
}

/// `#[action(name = "...", title = "...", read_only = true, ...)]` as written: every
/// `name = value`, checked in `validate`.
pub(crate) struct ActionArgs {
    pub(crate) options: Vec<(syn::Ident, syn::Expr)>,
}

impl Parse for ActionArgs {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut options = Vec::new();
        while !input.is_empty() {
            let name: syn::Ident = input.parse().map_err(|e| {
                syn::Error::new(
                    e.span(),
                    "an action is declared `#[action(name = \"create-item\", title = \"Create an item\")]`",
                )
            })?;
            input
                .parse::<syn::Token![=]>()
                .map_err(|e| syn::Error::new(e.span(), format!("expected `{name} = ...`")))?;
            let value: syn::Expr = input.parse()?;
            options.push((name, value));
            if input.is_empty() {
                break;
            }
            input.parse::<syn::Token![,]>()?;
        }
        Ok(ActionArgs { options })
    }
}

/// The principal a `Credentials` parameter asks for.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Principal {
    Any,
    User,
    Service,
}

pub(crate) struct Param {
    pub(crate) ty: syn::Type,
    pub(crate) inject: bool,
    /// Set when the type is `Credentials<...>`.
    pub(crate) credentials: Option<Principal>,
    /// Whether the type is axum's `Path<...>`.
    pub(crate) path_extractor: bool,
}

pub(crate) enum Receiver {
    Ref,
    /// `self`, `mut self`, `&mut self`, `self: Box<Self>`...
    Other(Span),
    Missing,
}

pub(crate) enum Kind {
    Route(RouteArgs, syn::Attribute),
    Init(syn::Attribute),
    /// An action, with the method's doc comment (its description).
    Action(ActionArgs, syn::Attribute, String),
}

pub(crate) struct Method {
    pub(crate) kind: Kind,
    pub(crate) ident: syn::Ident,
    pub(crate) asyncness: Option<syn::Token![async]>,
    pub(crate) fn_token: syn::Token![fn],
    pub(crate) receiver: Receiver,
    pub(crate) params: Vec<Param>,
    pub(crate) generics: syn::Generics,
    pub(crate) output: syn::ReturnType,
    /// The method's doc comment.
    pub(crate) docs: String,
}

pub(crate) struct Model {
    pub(crate) attr: TokenStream,
    /// The impl block as it will be emitted: our attributes removed, bodies untouched.
    pub(crate) item: ImplBlock,
    pub(crate) methods: Vec<Method>,
    /// Attribute errors found while parsing (a bad `#[route(...)]`), reported with the rest.
    pub(crate) errors: Vec<syn::Error>,
}

pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<Model> {
    let mut item: ImplBlock = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[routes] goes on the `impl` block of a plugin: `#[routes] impl MyPlugin { ... }`",
        )
    })?;
    let mut methods = Vec::new();
    let mut errors = Vec::new();
    for impl_item in &mut item.items {
        let ImplItem::Fn(function) = impl_item else {
            continue;
        };
        let mut kind = None;
        let mut keep = Vec::new();
        for attr in std::mem::take(&mut function.attrs) {
            if attr.path().is_ident("route") {
                match attr.parse_args::<RouteArgs>() {
                    Ok(args) if kind.is_none() => kind = Some(Kind::Route(args, attr)),
                    Ok(_) => errors.push(syn::Error::new_spanned(
                        &attr,
                        "a method has one #[route] (or #[init]); declare a second handler for the second route",
                    )),
                    Err(e) => errors.push(e),
                }
            } else if attr.path().is_ident("init") {
                if kind.is_some() {
                    errors.push(syn::Error::new_spanned(
                        &attr,
                        "a method is either a #[route] or the #[init], not both",
                    ));
                } else {
                    if !matches!(attr.meta, syn::Meta::Path(_)) {
                        errors.push(syn::Error::new_spanned(
                            &attr,
                            "#[init] takes no arguments; write `#[init]`",
                        ));
                    }
                    kind = Some(Kind::Init(attr));
                }
            } else if attr.path().is_ident("action") {
                match attr.parse_args::<ActionArgs>() {
                    Ok(args) if kind.is_none() => {
                        kind = Some(Kind::Action(args, attr, String::new()));
                    }
                    Ok(_) => errors.push(syn::Error::new_spanned(
                        &attr,
                        "a method is one #[route], #[action] or #[init]; declare another method for the second",
                    )),
                    Err(e) => errors.push(e),
                }
            } else if let Some(error) =
                crate::common::misspelled(&attr, &["route", "init", "inject", "action"])
            {
                // reported here, and left out so rustc does not add "cannot find attribute"
                errors.push(error);
            } else {
                keep.push(attr);
            }
        }
        function.attrs = keep;
        let Some(mut kind) = kind else { continue };
        let docs = doc_comment(&function.attrs);
        if let Kind::Action(_, _, description) = &mut kind {
            description.clone_from(&docs);
        }
        let sig = &mut function.sig;
        let mut receiver = Receiver::Missing;
        let mut params = Vec::new();
        for input in &mut sig.inputs {
            match input {
                syn::FnArg::Receiver(r) => {
                    receiver = if r.reference.is_some()
                        && r.mutability.is_none()
                        && r.colon_token.is_none()
                    {
                        Receiver::Ref
                    } else {
                        Receiver::Other(r.span())
                    };
                }
                syn::FnArg::Typed(pat_type) => {
                    let inject = pat_type.attrs.iter().any(|a| a.path().is_ident("inject"));
                    pat_type.attrs.retain(|attr| {
                        if attr.path().is_ident("inject") {
                            return false;
                        }
                        match crate::common::misspelled(attr, &["inject"]) {
                            Some(error) => {
                                errors.push(error);
                                false
                            }
                            None => true,
                        }
                    });
                    params.push(Param {
                        ty: (*pat_type.ty).clone(),
                        inject,
                        credentials: credentials_principal(&pat_type.ty),
                        path_extractor: is_path_extractor(&pat_type.ty),
                    });
                }
            }
        }
        methods.push(Method {
            kind,
            ident: sig.ident.clone(),
            asyncness: sig.asyncness,
            fn_token: sig.fn_token,
            receiver,
            params,
            generics: sig.generics.clone(),
            output: sig.output.clone(),
            docs,
        });
    }
    Ok(Model {
        attr,
        item,
        methods,
        errors,
    })
}

/// The text of the `///` comments in `attrs`, as rustdoc joins them.
fn doc_comment(attrs: &[syn::Attribute]) -> String {
    let lines: Vec<String> = attrs
        .iter()
        .filter(|attr| attr.path().is_ident("doc"))
        .filter_map(|attr| match &attr.meta {
            syn::Meta::NameValue(syn::MetaNameValue {
                value:
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(text),
                        ..
                    }),
                ..
            }) => Some(text.value()),
            _ => None,
        })
        .map(|line| {
            line.strip_prefix(' ')
                .unwrap_or(&line)
                .trim_end()
                .to_owned()
        })
        .collect();
    lines.join("\n").trim().to_owned()
}

/// `Path<T>`, `axum::extract::Path<T>`.
fn is_path_extractor(ty: &syn::Type) -> bool {
    let syn::Type::Path(path) = ty else {
        return false;
    };
    path.path
        .segments
        .last()
        .is_some_and(|s| s.ident == "Path" && !s.arguments.is_empty())
}

/// `Credentials`, `Credentials<UserPrincipal>`, `backstage::Credentials<ServicePrincipal>`...
fn credentials_principal(ty: &syn::Type) -> Option<Principal> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Credentials" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return Some(Principal::Any);
    };
    let Some(syn::GenericArgument::Type(syn::Type::Path(arg))) = args.args.first() else {
        return Some(Principal::Any);
    };
    match arg
        .path
        .segments
        .last()
        .map(|s| s.ident.to_string())
        .as_deref()
    {
        Some("UserPrincipal") => Some(Principal::User),
        Some("ServicePrincipal") => Some(Principal::Service),
        _ => Some(Principal::Any),
    }
}
