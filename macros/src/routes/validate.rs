//! The rules of `#[routes]`, `#[route]` and `#[init]`, each reported at the user's tokens.

use std::collections::HashMap;

use super::parse::{ActionArgs, Kind, Method, Model, Principal, Receiver, RouteArgs};
use crate::common::{Errors, closest};

pub(crate) const METHODS: &[&str] = &["get", "post", "put", "delete", "patch", "head", "options"];
const AUTH_VALUES: &[&str] = &["unauthenticated", "user-cookie"];
const OPTIONS: &[&str] = &["auth", "audit", "severity"];
const SEVERITIES: &[&str] = &["low", "medium", "high", "critical"];

/// The route's auth policy as the runtime names it.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Auth {
    Default,
    Unauthenticated,
    UserCookie,
}

const ACTION_OPTIONS: &[&str] = &["name", "title", "read_only", "destructive", "idempotent"];

/// An action's options, read from its attribute (after validation, every one is well-formed).
pub(crate) struct ActionOptions {
    pub(crate) name: Option<syn::LitStr>,
    pub(crate) title: Option<syn::LitStr>,
    /// `read_only`, `destructive`, `idempotent` as given.
    pub(crate) flags: Vec<(String, bool)>,
}

pub(crate) fn action_options(args: &ActionArgs) -> ActionOptions {
    let mut options = ActionOptions {
        name: None,
        title: None,
        flags: Vec::new(),
    };
    for (name, value) in &args.options {
        let syn::Expr::Lit(syn::ExprLit { lit, .. }) = value else {
            continue;
        };
        match (name.to_string().as_str(), lit) {
            ("name", syn::Lit::Str(s)) => options.name = Some(s.clone()),
            ("title", syn::Lit::Str(s)) => options.title = Some(s.clone()),
            (flag @ ("read_only" | "destructive" | "idempotent"), syn::Lit::Bool(b)) => {
                options.flags.push((flag.to_owned(), b.value));
            }
            _ => {}
        }
    }
    options
}

/// The `T` of a return type written `Result<T>` (or `Result<T, E>`).
pub(crate) fn result_ok_type(output: &syn::ReturnType) -> Option<&syn::Type> {
    let syn::ReturnType::Type(_, ty) = output else {
        return None;
    };
    let syn::Type::Path(path) = &**ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        syn::GenericArgument::Type(ty) => Some(ty),
        _ => None,
    }
}

/// `create_todo`, `CreateTodo`, `Create Todo` -> `create-todo`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars() {
        if c.is_ascii_uppercase() {
            if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
        } else if c.is_ascii_alphanumeric() {
            out.push(c);
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    out.trim_end_matches('-').to_owned()
}

fn valid_action_name(name: &str) -> bool {
    !name.is_empty()
        && name.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
}

/// The rules of one `#[action]`: its options, its description, one input, `Result<T>`.
fn check_action(
    args: &ActionArgs,
    attr: &syn::Attribute,
    description: &str,
    method: &Method,
    errors: &mut Errors,
) {
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in &args.options {
        let text = name.to_string();
        if !ACTION_OPTIONS.contains(&text.as_str()) {
            let hint = match closest(&text, ACTION_OPTIONS) {
                Some(c) => format!("; did you mean `{c}`?"),
                None => String::new(),
            };
            errors.at(
                name,
                format!(
                    "unknown action option `{text}`: an action takes `name`, `title`, `read_only`, `destructive` and `idempotent`{hint}"
                ),
            );
            continue;
        }
        if seen.contains(&text) {
            errors.at(name, format!("`{text}` is given twice"));
        }
        seen.push(text.clone());
        let lit = match value {
            syn::Expr::Lit(syn::ExprLit { lit, .. }) => Some(lit),
            _ => None,
        };
        match text.as_str() {
            "name" | "title" if !matches!(lit, Some(syn::Lit::Str(_))) => {
                errors.at(value, format!("`{text}` is a string: `{text} = \"...\"`"));
            }
            "read_only" | "destructive" | "idempotent"
                if !matches!(lit, Some(syn::Lit::Bool(_))) =>
            {
                errors.at(value, format!("`{text}` is `true` or `false`"));
            }
            _ => {}
        }
    }
    let options = action_options(args);
    match &options.name {
        Some(name) if !valid_action_name(&name.value()) => errors.at(
            name,
            format!(
                "an action's name is lowercase words joined by dashes; write `name = \"{}\"`",
                kebab(&name.value())
            ),
        ),
        None if !seen.iter().any(|s| s == "name") => errors.at(
            attr,
            format!(
                "an action needs a name: `#[action(name = \"{}\", title = \"...\")]`",
                kebab(&method.ident.to_string())
            ),
        ),
        _ => {}
    }
    if options.title.is_none() && !seen.iter().any(|s| s == "title") {
        errors.at(
            attr,
            "an action needs a title, a short phrase agents show: `title = \"Create a todo\"`",
        );
    }
    if description.is_empty() {
        errors.at(
            &method.ident,
            "an action's doc comment is its description, which agents read to choose it; write `/// What it does.` above it",
        );
    }
    let inputs: Vec<_> = method
        .params
        .iter()
        .filter(|p| !p.inject && p.credentials.is_none())
        .collect();
    for extra in inputs.iter().skip(1) {
        errors.at(
            &extra.ty,
            "an action takes one input (a type that is `Deserialize + JsonSchema`), and may take `Credentials` and `#[inject]` services; put the fields of its input in one struct",
        );
    }
    if result_ok_type(&method.output).is_none() {
        match &method.output {
            syn::ReturnType::Type(_, ty) => errors.at(
                ty,
                "an action returns `Result<T>`, where `T` is its output (`Serialize + JsonSchema`)",
            ),
            syn::ReturnType::Default => errors.at(
                &method.ident,
                "an action returns `Result<T>`, where `T` is its output (`Serialize + JsonSchema`); add `-> Result<T>`",
            ),
        }
    }
}

/// The `audit` event id and `severity` of a route, if it is audited.
pub(crate) fn audit(args: &RouteArgs) -> Option<(syn::LitStr, String)> {
    let text = |wanted: &str| {
        args.options.iter().find_map(|(name, value)| match value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) if name == wanted => Some(s.clone()),
            _ => None,
        })
    };
    let event = text("audit")?;
    let severity = text("severity").map_or_else(|| "low".to_owned(), |s| s.value());
    Some((event, severity))
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
    let mut actions: HashMap<String, syn::LitStr> = HashMap::new();
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
            Kind::Action(args, attr, description) => {
                check_action(args, attr, description, method, &mut errors);
                if let Some(name) = action_options(args).name {
                    if let Some(first) = actions.get(&name.value()) {
                        errors.at(
                            &name,
                            format!(
                                "the action \"{}\" is declared twice in this block; give one another name",
                                name.value()
                            ),
                        );
                        errors.at(
                            first,
                            format!("the action \"{}\" is first declared here", name.value()),
                        );
                    } else {
                        actions.insert(name.value(), name);
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
        Kind::Action(..) => "action",
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
    let mut seen: Vec<String> = Vec::new();
    for (name, value) in &args.options {
        let name_text = name.to_string();
        if !OPTIONS.contains(&name_text.as_str()) {
            let hint = match closest(&name_text, OPTIONS) {
                Some(c) => format!("; did you mean `{c}`?"),
                None => String::new(),
            };
            errors.at(
                name,
                format!(
                    "unknown route option `{name_text}`: a route takes `auth = \"...\"`, `audit = \"<eventId>\"` and `severity = \"...\"`{hint}"
                ),
            );
            continue;
        }
        if seen.contains(&name_text) {
            errors.at(name, format!("`{name_text}` is given twice; give it once"));
        }
        seen.push(name_text.clone());
        let syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(s),
            ..
        }) = value
        else {
            errors.at(
                value,
                format!("`{name_text}` is a string: `{name_text} = \"...\"`"),
            );
            continue;
        };
        let text = s.value();
        let (allowed, rule) = match name_text.as_str() {
            "auth" => (
                AUTH_VALUES,
                "write `auth = \"unauthenticated\"` or `auth = \"user-cookie\"`, or leave `auth` out for the secure default (user or service credentials)",
            ),
            "severity" => (
                SEVERITIES,
                "an audit event's severity is \"low\" (the default), \"medium\", \"high\" or \"critical\"",
            ),
            _ => {
                if text.trim().is_empty() || text.chars().any(char::is_whitespace) {
                    errors.at(
                        s,
                        "the audit event id names what happened, without spaces: `audit = \"item-delete\"`",
                    );
                }
                continue;
            }
        };
        if !allowed.contains(&text.as_str()) {
            let hint = match closest(&text, allowed) {
                Some(c) => format!("; did you mean \"{c}\"?"),
                None => String::new(),
            };
            let what = if name_text == "auth" {
                "auth policy"
            } else {
                "severity"
            };
            errors.at(s, format!("unknown {what} \"{text}\": {rule}{hint}"));
        }
    }
    if let Some((name, _)) = args.options.iter().find(|(n, _)| n == "severity")
        && !args.options.iter().any(|(n, _)| n == "audit")
    {
        errors.at(
            name,
            "`severity` is the severity of the route's audit event; add `audit = \"<eventId>\"` or remove `severity`",
        );
    }
}
