//! The rules of `#[service]`.

use crate::common::{Errors, closest};
use crate::structs::{Model, validate_struct};

/// What the arguments say.
pub(crate) struct Settings {
    pub(crate) root: bool,
    pub(crate) id: Option<String>,
}

pub(crate) fn validate(model: &Model) -> syn::Result<Settings> {
    let mut errors = Errors::default();
    let mut settings = Settings {
        root: false,
        id: None,
    };
    let mut seen = Vec::new();
    for arg in &model.args {
        let name = arg.name.to_string();
        if seen.contains(&name) {
            errors.at(&arg.name, format!("`{name}` is given twice"));
        }
        seen.push(name.clone());
        let text = match &arg.value {
            syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) => Some(s),
            _ => None,
        };
        match (name.as_str(), text) {
            ("scope", Some(s)) => match s.value().as_str() {
                "plugin" => settings.root = false,
                "root" => settings.root = true,
                other => errors.at(
                    s,
                    format!("unknown service scope \"{other}\": write `scope = \"plugin\"` (one instance per plugin) or `scope = \"root\"` (one per backend)"),
                ),
            },
            ("id", Some(s)) => {
                let id = s.value();
                if id.is_empty() || id.chars().any(char::is_whitespace) {
                    errors.at(s, "a service id is a non-empty string without whitespace, like `carmen.greeter`");
                }
                settings.id = Some(id);
            }
            ("scope" | "id", None) => errors.at(&arg.value, format!("`{name}` takes a string: `{name} = \"...\"`")),
            _ => {
                let hint = match closest(&name, &["scope", "id"]) {
                    Some(c) => format!("; did you mean `{c}`?"),
                    None => String::new(),
                };
                errors.at(&arg.name, format!("unknown argument `{name}` of #[service]: the arguments are `scope = \"plugin\" | \"root\"` and `id = \"...\"`{hint}"));
            }
        }
    }
    validate_struct(model, "service", &mut errors);
    errors.finish().map(|()| settings)
}
