//! The rules of `#[backend_plugin]`, each reported at the user's tokens.

use crate::common::{Errors, closest, is_valid_id, suggest_id};
use crate::structs::{Model, validate_struct};

/// The validated plugin id.
pub(crate) fn id(model: &Model) -> Option<String> {
    model
        .args
        .iter()
        .find(|a| a.name == "id")
        .and_then(|a| match &a.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s.value()),
            _ => None,
        })
}

pub(crate) fn validate(model: &Model) -> syn::Result<()> {
    let mut errors = Errors::default();
    let mut seen_id = false;
    let mut unknown = false;
    for arg in &model.args {
        if arg.name == "id" {
            if seen_id {
                errors.at(&arg.name, "`id` is given twice; a plugin has one id");
            }
            seen_id = true;
            match &arg.value {
                syn::Expr::Lit(syn::ExprLit {
                    lit: syn::Lit::Str(s),
                    ..
                }) => {
                    let id = s.value();
                    if !is_valid_id(&id) {
                        errors.at(
                            s,
                            format!(
                                "plugin ids are lowercase words joined by dashes (they appear in URLs: /api/<id>); write `id = \"{}\"`",
                                suggest_id(&id)
                            ),
                        );
                    }
                }
                other => errors.at(
                    other,
                    "the plugin id is a string literal: `id = \"my-plugin\"`",
                ),
            }
        } else {
            let hint = match closest(&arg.name.to_string(), &["id"]) {
                Some(c) => format!("; did you mean `{c}`?"),
                None => String::new(),
            };
            unknown = true;
            errors.at(&arg.name, format!("unknown argument `{}` of #[backend_plugin]: the only argument is `id = \"my-plugin\"`{hint}", arg.name));
        }
    }
    if !seen_id && !unknown {
        errors.span(
            model.attr_span,
            "#[backend_plugin] needs the plugin's id: `#[backend_plugin(id = \"my-plugin\")]`",
        );
    }
    validate_struct(model, "plugin", &mut errors);
    errors.finish()
}
