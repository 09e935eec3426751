//! The rules of `#[service]`.

use crate::common::Errors;
use crate::structs::{Model, Value, check_names, validate_struct};

/// What the arguments say.
pub(crate) struct Settings {
    pub(crate) root: bool,
    pub(crate) id: Option<String>,
    /// `provides = dyn Trait`: the service is one implementation of that multiton.
    pub(crate) provides: Option<syn::Type>,
    /// `lazy`: a root service made on first use instead of at start-up.
    pub(crate) lazy: bool,
    /// `init = method`: an `async fn(&mut self)` that finishes the service after injection.
    pub(crate) init: Option<syn::Ident>,
}

const ARGUMENTS: &[&str] = &["scope", "id", "provides", "lazy", "init"];

pub(crate) fn validate(model: &Model) -> syn::Result<Settings> {
    let mut errors = Errors::default();
    let mut settings = Settings {
        root: false,
        id: None,
        provides: None,
        lazy: false,
        init: None,
    };
    check_names(
        &model.args,
        ARGUMENTS,
        "service",
        "the arguments are `scope = \"plugin\" | \"root\"`, `id = \"...\"`, `provides = dyn Trait`, `lazy` and `init = method`",
        &mut errors,
    );
    for arg in &model.args {
        let name = arg.name.to_string();
        match (name.as_str(), &arg.value) {
            ("scope", Value::Str(s)) => match s.value().as_str() {
                "plugin" => settings.root = false,
                "root" => settings.root = true,
                other => errors.at(
                    s,
                    format!("unknown service scope \"{other}\": write `scope = \"plugin\"` (one instance per plugin) or `scope = \"root\"` (one per backend)"),
                ),
            },
            ("id", Value::Str(s)) => {
                let id = s.value();
                if id.is_empty() || id.chars().any(char::is_whitespace) {
                    errors.at(s, "a service id is a non-empty string without whitespace, like `carmen.greeter`");
                }
                settings.id = Some(id);
            }
            ("provides", Value::Type(ty)) => settings.provides = Some((**ty).clone()),
            ("lazy", Value::Flag) => settings.lazy = true,
            ("init", Value::Type(ty)) => match ty.as_ref() {
                syn::Type::Path(path) if path.qself.is_none() && path.path.get_ident().is_some() => {
                    settings.init = path.path.get_ident().cloned();
                }
                other => errors.at(other, "`init` names a method of the service: `init = connect` for `async fn connect(&mut self) -> Result<()>`"),
            },
            ("init", _) => errors.at(&arg.name, "`init` names a method of the service: `init = connect`"),
            ("scope" | "id", _) => errors.at(&arg.name, format!("`{name}` takes a string: `{name} = \"...\"`")),
            ("provides", _) => errors.at(&arg.name, "`provides` takes the type it implements: `provides = dyn MyTrait`"),
            ("lazy", _) => errors.at(&arg.name, "`lazy` takes no value: write `lazy`"),
            // Unknown names are reported by `check_names`.
            _ => {}
        }
    }
    if settings.lazy
        && !settings.root
        && let Some(arg) = model.args.iter().find(|a| a.name == "lazy")
    {
        errors.at(
            &arg.name,
            "`lazy` is for root services; plugin-scoped services are always made on first use",
        );
    }
    validate_struct(model, "service", &mut errors);
    errors.finish().map(|()| settings)
}
