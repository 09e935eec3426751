//! The names a plugin or module id gives: crate, Rust identifier, struct.

/// `todo` -> `todo-backend`: the plugin's package, as Backstage names it `plugin-todo-backend`.
pub(crate) fn plugin_crate(plugin_id: &str) -> String {
    format!("{plugin_id}-backend")
}

/// `todo`, `audit` -> `todo-backend-module-audit`.
pub(crate) fn module_crate(plugin_id: &str, module_id: &str) -> String {
    format!("{plugin_id}-backend-module-{module_id}")
}

/// A package name as Rust code names the crate: `todo-backend` -> `todo_backend`.
pub(crate) fn crate_ident(package: &str) -> String {
    package.replace('-', "_")
}

/// `my-thing` -> `MyThing`.
pub(crate) fn pascal(id: &str) -> String {
    id.split('-')
        .map(|word| {
            let mut chars = word.chars();
            match chars.next() {
                Some(first) => first.to_ascii_uppercase().to_string() + chars.as_str(),
                None => String::new(),
            }
        })
        .collect()
}

/// `todo` -> `TodoPlugin`, as Backstage names it `todoPlugin`.
pub(crate) fn plugin_struct(plugin_id: &str) -> String {
    format!("{}Plugin", pascal(plugin_id))
}

/// `todo`, `audit` -> `TodoModuleAudit`, as Backstage names it `todoModuleAudit`.
pub(crate) fn module_struct(plugin_id: &str, module_id: &str) -> String {
    format!("{}Module{}", pascal(plugin_id), pascal(module_id))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_backstage_conventions_in_rust_spelling() {
        assert_eq!(plugin_crate("todo"), "todo-backend");
        assert_eq!(
            module_crate("catalog", "git-hub"),
            "catalog-backend-module-git-hub"
        );
        assert_eq!(
            crate_ident("catalog-backend-module-git-hub"),
            "catalog_backend_module_git_hub"
        );
        assert_eq!(plugin_struct("my-thing2"), "MyThing2Plugin");
        assert_eq!(module_struct("catalog", "v2-api"), "CatalogModuleV2Api");
    }
}
