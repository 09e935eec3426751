//! The rules of `#[backend_plugin]`, each reported at the user's tokens.

use crate::common::{Errors, check_id, closest};
use crate::structs::{Model, validate_struct};

/// The plugin id, if given as a string.
pub(crate) fn id(model: &Model) -> Option<String> {
    model
        .args
        .iter()
        .find(|a| a.name == "id")
        .and_then(|a| a.value.str())
        .map(syn::LitStr::value)
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
            match arg.value.str() {
                Some(s) => check_id(s, "plugin", "id", &mut errors),
                None => errors.at(
                    &arg.name,
                    "the plugin id is a string literal: `id = \"my-plugin\"`",
                ),
            }
        } else {
            let hint = match closest(&arg.name.to_string(), &["id"]) {
                Some(c) => format!("; did you mean `{c}`?"),
                None => String::new(),
            };
            unknown = true;
            errors.at(
                &arg.name,
                format!("unknown argument `{}` of #[backend_plugin]: the only argument is `id = \"my-plugin\"`{hint}", arg.name),
            );
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
