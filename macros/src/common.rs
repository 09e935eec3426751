//! Shared by the macros: error collection, id rules, suggestions.

use proc_macro2::{Span, TokenStream};
use quote::{ToTokens, quote};

use crate::ids;

/// Collects every error of an item so that they are reported together.
#[derive(Default)]
pub(crate) struct Errors {
    error: Option<syn::Error>,
}

impl Errors {
    pub(crate) fn push(&mut self, error: syn::Error) {
        match &mut self.error {
            Some(existing) => existing.combine(error),
            None => self.error = Some(error),
        }
    }

    pub(crate) fn at(&mut self, tokens: impl ToTokens, message: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens, message));
    }

    pub(crate) fn span(&mut self, span: Span, message: impl std::fmt::Display) {
        self.push(syn::Error::new(span, message));
    }

    pub(crate) fn finish(self) -> Result<(), syn::Error> {
        match self.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The candidate closest to `word`, if it is close enough to be a likely typo.
pub(crate) fn closest<'a>(word: &str, candidates: &[&'a str]) -> Option<&'a str> {
    candidates
        .iter()
        .map(|c| (levenshtein(&word.to_ascii_lowercase(), c), *c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance where swapping two neighbouring letters counts as one edit (`gte` -> `get`).
fn levenshtein(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

/// `#[route]` or `#[init]` used where no `#[routes]` block reads it.
pub(crate) fn outside_routes(name: &str, item: TokenStream) -> TokenStream {
    let message = format!(
        "#[{name}] only works on a method inside a `#[routes]` impl block; put `#[routes]` on the `impl` block of your plugin"
    );
    let error = syn::Error::new(Span::call_site(), message).to_compile_error();
    quote! { #error #item }
}

/// An error when `attr` looks like a misspelling of one of `ours` (`#[rout]` for `#[route]`).
pub(crate) fn misspelled(attr: &syn::Attribute, ours: &[&str]) -> Option<syn::Error> {
    let ident = attr.path().get_ident()?.to_string();
    if ours.contains(&ident.as_str()) || ident.len() < 3 {
        return None;
    }
    let near = ours.iter().find(|o| levenshtein(&ident, o) <= 2)?;
    Some(syn::Error::new_spanned(
        attr.path(),
        format!("unknown attribute `#[{ident}]`; did you mean `#[{near}]`?"),
    ))
}

/// Checks a plugin or module id given as `argument = "..."`: lowercase words joined by dashes,
/// with the fix spelled with the same argument.
pub(crate) fn check_id(lit: &syn::LitStr, what: &str, argument: &str, errors: &mut Errors) {
    let id = lit.value();
    if !ids::is_valid_id(&id) {
        errors.at(
            lit,
            format!(
                "{}; write `{argument} = \"{}\"`",
                ids::rule(what),
                ids::suggest_id(&id)
            ),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["carmen", "carmen-items", "v2-api", "a1"] {
            assert!(ids::is_valid_id(ok), "{ok}");
        }
        for bad in [
            "",
            "Carmen",
            "carmen_items",
            "-carmen",
            "carmen-",
            "car--men",
            "1abc",
            "carmen items",
        ] {
            assert!(!ids::is_valid_id(bad), "{bad}");
        }
        assert_eq!(ids::suggest_id("carmen_items"), "carmen-items");
        assert_eq!(ids::suggest_id("CarmenItems"), "carmen-items");
        assert_eq!(ids::suggest_id("Carmen"), "carmen");
        assert_eq!(ids::suggest_id("__"), "my-plugin");
    }

    #[test]
    fn suggestions() {
        assert_eq!(closest("gte", &["get", "post"]), Some("get"));
        assert_eq!(closest("auht", &["auth"]), Some("auth"));
        assert_eq!(closest("zzzzzz", &["get", "post"]), None);
        assert_eq!(closest("fetch", &["get", "patch"]), None);
        assert_eq!(
            closest("user_cookie", &["unauthenticated", "user-cookie"]),
            Some("user-cookie")
        );
    }
}
