//! The rules of `#[routes]`, `#[route]` and `#[init]`, each reported at the user's tokens.

use std::collections::HashMap;

use super::parse::{Kind, Method, Model, Principal, Receiver, RouteArgs};
use crate::common::{Errors, closest};

pub(crate) const METHODS: &[&str] = &["get", "post", "put", "delete", "patch", "head", "options"];
const AUTH_VALUES: &[&str] = &["unauthenticated", "user-cookie"];
const OPTIONS: &[&str] = &["auth"];

/// The route's auth policy as the runtime names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    Default,
    Unauthenticated,
    UserCookie,
}

/// The `auth` option of a route, if valid.
pub(crate) fn auth(args: &RouteArgs) -> Auth {
    for (name, value) in &args.options {
        if let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) = value
            && name == "auth"
        {
            match s.value().as_str() {
                "unauthenticated" => return Auth::Unauthenticated,
                "user-cookie" => return Auth::UserCookie,
                _ => {}
            }
        }
    }
    Auth::Default
}

pub(crate) fn validate(model: &mut Model) -> syn::Result<()> {
    let mut errors = Errors::default();
    for error in model.errors.drain(..) {
        errors.push(error);
    }
    if !model.attr.is_empty() {
        errors.at(&model.attr, "#[routes] takes no arguments; write `#[routes]` and put the details on each `#[route(...)]`");
    }
    let item = &model.item;
    if let Some((path, _)) = &item.trait_ {
        errors.at(
            path,
            "#[routes] goes on an inherent impl block (`impl MyPlugin { ... }`), not a trait impl",
        );
    }
    if let Some(param) = item.generics.params.first() {
        errors.at(
            param,
            "#[routes] goes on the impl block of a plugin struct, which cannot be generic",
        );
    }

    let mut seen: HashMap<(String, String), &syn::LitStr> = HashMap::new();
    let mut init: Option<&syn::Ident> = None;
    for method in &model.methods {
        check_signature(method, &mut errors);
        match &method.kind {
            Kind::Init(_) => {
                if let Some(first) = init {
                    errors.at(
                        &method.ident,
                        format!("a plugin has one #[init] function, and `{first}` is already it; merge the two"),
                    );
                } else {
                    init = Some(&method.ident);
                }
                for param in &method.params {
                    if !param.inject {
                        errors.at(
                            &param.ty,
                            "parameters of #[init] are services: mark the parameter `#[inject]`",
                        );
                    }
                }
            }
            Kind::Route(args, _) => {
                let method_name = args.method.to_string();
                if !METHODS.contains(&method_name.as_str()) {
                    let hint = match closest(&method_name, METHODS) {
                        Some(c) => format!("; did you mean `{c}`?"),
                        None => String::new(),
                    };
                    errors.at(
                        &args.method,
                        format!(
                            "unknown HTTP method `{method_name}`: a route's method is one of get, post, put, delete, patch, head, options{hint}"
                        ),
                    );
                }
                check_path(&args.path, &mut errors);
                check_path_params(args, method, &mut errors);
                check_options(args, &mut errors);
                let key = (method_name.to_ascii_uppercase(), args.path.value());
                if let Some(first) = seen.get(&key) {
                    errors.at(
                        &args.path,
                        format!(
                            "the route {} {} is declared twice in this block; remove one",
                            key.0, key.1
                        ),
                    );
                    errors.at(
                        *first,
                        format!("the route {} {} is first declared here", key.0, key.1),
                    );
                } else {
                    seen.insert(key, &args.path);
                }
                if auth(args) == Auth::Unauthenticated {
                    for param in &method.params {
                        let principal = match param.credentials {
                            Some(Principal::User) => "UserPrincipal",
                            Some(Principal::Service) => "ServicePrincipal",
                            _ => continue,
                        };
                        errors.at(
                            &param.ty,
                            format!(
                                "an `auth = \"unauthenticated\"` route can be called without credentials, so it cannot require `Credentials<{principal}>`; take `Credentials` (which may be none) or remove `auth = \"unauthenticated\"`"
                            ),
                        );
                    }
                }
            }
        }
    }
    errors.finish()
}

fn check_signature(method: &Method, errors: &mut Errors) {
    let what = match method.kind {
        Kind::Route(..) => "route handler",
        Kind::Init(_) => "#[init] function",
    };
    if method.asyncness.is_none() {
        errors.at(
            method.fn_token,
            format!("a {what} must be async; write `async fn {}`", method.ident),
        );
    }
    match method.receiver {
        Receiver::Ref => {}
        Receiver::Other(span) => errors.span(
            span,
            format!("a {what} takes `&self`: the plugin is shared by every request; write `&self`"),
        ),
        Receiver::Missing => errors.at(
            &method.ident,
            format!(
                "a {what} takes `&self` as its first parameter; write `async fn {}(&self, ...)`",
                method.ident
            ),
        ),
    }
    if let Some(param) = method.generics.params.first() {
        errors.at(
            param,
            format!("a {what} cannot be generic: the backend calls it with concrete types"),
        );
    }
}

/// The path must be an axum path: starts with `/`, `{name}` and `{*rest}` segments.
fn check_path(lit: &syn::LitStr, errors: &mut Errors) {
    let path = lit.value();
    if !path.starts_with('/') {
        let fixed: Vec<String> = path
            .split('/')
            .map(|s| match s.strip_prefix(':') {
                Some(name) => format!("{{{name}}}"),
                None => s.to_owned(),
            })
            .collect();
        errors.at(
            lit,
            format!("route paths start with '/'; write \"/{}\"", fixed.join("/")),
        );
        return;
    }
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for (i, segment) in segments.iter().enumerate() {
        if let Some(name) = segment.strip_prefix(':') {
            errors.at(
                lit,
                format!("route paths use axum syntax, not Express's: write `{{{name}}}` instead of `:{name}`"),
            );
        } else if let Some(name) = segment.strip_prefix('*') {
            errors.at(
                lit,
                format!("wildcards are written `{{*{name}}}`, not `*{name}`"),
            );
        } else if segment.contains('{') || segment.contains('}') {
            let inner = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}'));
            let name = inner.map(|n| n.strip_prefix('*').unwrap_or(n));
            let valid = name.is_some_and(|n| {
                !n.is_empty()
                    && n.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    && !n.contains(['{', '}'])
            });
            if !valid {
                errors.at(
                    lit,
                    format!(
                        "`{segment}` is not a path parameter: write `{{name}}` as a whole segment"
                    ),
                );
            } else if inner.is_some_and(|n| n.starts_with('*')) && i + 1 != segments.len() {
                errors.at(
                    lit,
                    "a wildcard `{*rest}` can only be the last segment of a path",
                );
            }
        }
    }
}

/// A path with `{params}` needs a `Path` extractor, and a `Path` extractor needs a parameter.
fn check_path_params(args: &RouteArgs, method: &Method, errors: &mut Errors) {
    let path = args.path.value();
    let params: Vec<&str> = path
        .split('/')
        .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
        .map(|s| s.trim_start_matches('*'))
        .collect();
    if path
        .split('/')
        .any(|s| s.starts_with(':') || s.starts_with('*'))
    {
        return; // already reported: the path is not in axum's syntax
    }
    let extractor = method.params.iter().find(|p| p.path_extractor && !p.inject);

    match (params.first(), extractor) {
        (Some(first), None) => errors.at(
            &args.path,
            format!(
                "the route path has the parameter `{{{first}}}`, but the handler takes no `Path` extractor; add a parameter like `Path({first}): Path<String>`"
            ),
        ),
        (None, Some(param)) => errors.at(
            &param.ty,
            format!("this handler extracts `Path`, but its route \"{path}\" has no `{{param}}` segment; add one to the path or remove the parameter"),
        ),
        _ => {}
    }
}

fn check_options(args: &RouteArgs, errors: &mut Errors) {
    let mut seen_auth = false;
    for (name, value) in &args.options {
        let name_text = name.to_string();
        if name_text != "auth" {
            let hint = match closest(&name_text, OPTIONS) {
                Some(c) => format!("; did you mean `{c}`?"),
                None => String::new(),
            };
            errors.at(
                name,
                format!(
                    "unknown route option `{name_text}`: the only option is `auth = \"...\"`{hint}"
                ),
            );
            continue;
        }
        if seen_auth {
            errors.at(name, "`auth` is given twice; a route has one auth policy");
        }
        seen_auth = true;
        match value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => {
                let text = s.value();
                if !AUTH_VALUES.contains(&text.as_str()) {
                    let hint = match closest(&text, AUTH_VALUES) {
                        Some(c) => format!("; did you mean \"{c}\"?"),
                        None => String::new(),
                    };
                    errors.at(
                        s,
                        format!(
                            "unknown auth policy \"{text}\": write `auth = \"unauthenticated\"` or `auth = \"user-cookie\"`, or leave `auth` out for the secure default (user or service credentials){hint}"
                        ),
                    );
                }
            }
            other => errors.at(
                other,
                "the auth policy is a string: `auth = \"unauthenticated\"`",
            ),
        }
    }
}
