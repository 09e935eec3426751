//! The rule for plugin and module ids, shared by the macros and by `cargo backstage` (which
//! includes this file), so that both refuse the same ids with the same words. Only `std` here.

/// Whether `id` is lowercase words joined by dashes: `carmen`, `carmen-items`, `v2-api`.
pub(crate) fn is_valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.split('-').all(|word| {
            !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        })
        && id.starts_with(|c: char| c.is_ascii_lowercase())
}

/// `id` rewritten as lowercase words joined by dashes.
pub(crate) fn suggest_id(id: &str) -> String {
    let mut out = String::new();
    let mut previous_lower = false;
    for c in id.chars() {
        if c.is_ascii_uppercase() {
            if previous_lower {
                out.push('-');
            }
            out.push(c.to_ascii_lowercase());
            previous_lower = false;
        } else if c.is_ascii_lowercase() || c.is_ascii_digit() {
            out.push(c);
            previous_lower = true;
        } else {
            if !out.ends_with('-') && !out.is_empty() {
                out.push('-');
            }
            previous_lower = false;
        }
    }
    let trimmed = out.trim_matches('-').to_owned();
    if trimmed.is_empty() {
        "my-plugin".to_owned()
    } else {
        trimmed
    }
}

/// The rule, as the first half of an error message: `"plugin ids are lowercase words joined by
/// dashes (they appear in URLs: /api/<id>)"`.
pub(crate) fn rule(what: &str) -> String {
    let place = if what == "plugin" {
        " (they appear in URLs: /api/<id>)"
    } else {
        ""
    };
    format!("{what} ids are lowercase words joined by dashes{place}")
}
