//! The rules of `#[service_factory]`: no arguments, a free `async fn` that is not generic,
//! every parameter injected, and a return type that names the service.

use super::parse::Model;
use crate::common::Errors;

/// What the factory makes: the service, and whether the function returns a `Result` of it.
pub(crate) struct Factory {
    pub(crate) service: syn::Type,
    pub(crate) fallible: bool,
}

pub(crate) fn validate(model: &Model) -> syn::Result<Factory> {
    let mut errors = Errors::default();
    let sig = &model.function.sig;
    if !model.attr.is_empty() {
        errors.at(
            &model.attr,
            "#[service_factory] takes no arguments: the return type names the service it replaces",
        );
    }
    if let Some(span) = model.receiver {
        errors.span(
            span,
            "a service factory is a free function: it takes no `self`",
        );
    }
    for param in model.params.iter().filter(|p| !p.inject) {
        errors.at(
            &param.ty,
            "parameters of a service factory are its dependencies: mark the parameter `#[inject]`",
        );
    }
    if sig.asyncness.is_none() {
        errors.at(
            sig.fn_token,
            format!(
                "a service factory must be async; write `async fn {}`",
                sig.ident
            ),
        );
    }
    if let Some(param) = sig.generics.params.first() {
        errors.at(param, "a service factory cannot be generic");
    }
    let made = match &sig.output {
        syn::ReturnType::Default => {
            errors.at(
                &sig.ident,
                "a service factory returns the service it replaces: `-> Result<UserInfo>`",
            );
            None
        }
        syn::ReturnType::Type(_, ty) => Some(made_type(ty)),
    };
    errors.finish()?;
    // With no return type there is an error above.
    let (service, fallible) = made.unwrap_or_else(|| (syn::parse_quote!(()), false));
    Ok(Factory { service, fallible })
}

/// `Result<S>` -> (`S`, true); `S` -> (`S`, false).
fn made_type(ty: &syn::Type) -> (syn::Type, bool) {
    if let syn::Type::Path(path) = ty
        && let Some(last) = path.path.segments.last()
        && last.ident == "Result"
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
    {
        return (inner.clone(), true);
    }
    (ty.clone(), false)
}
