//! The rules of `#[backend_plugin]`, each reported at the user's tokens.

use crate::common::{Errors, check_id};
use crate::structs::{Model, check_names, string_arg, validate_struct};

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
    let unknown = check_names(
        &model.args,
        &["id"],
        "backend_plugin",
        "the only argument is `id = \"my-plugin\"`",
        &mut errors,
    );
    match string_arg(&model.args, "id", &mut errors) {
        Some(id) => check_id(id, "plugin", "id", &mut errors),
        None if !unknown && !model.args.iter().any(|a| a.name == "id") => errors.span(
            model.attr_span,
            "#[backend_plugin] needs the plugin's id: `#[backend_plugin(id = \"my-plugin\")]`",
        ),
        None => {}
    }
    validate_struct(model, "plugin", &mut errors);
    errors.finish()
}
