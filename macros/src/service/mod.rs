//! `#[service(scope = "plugin" | "root")]`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::{fallback, structs};

mod expand;
mod validate;

pub(crate) fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    let model = match structs::parse(attr, item.clone(), "service", "scope = \"plugin\"") {
        Ok(model) => model,
        Err(error) => {
            let error = error.to_compile_error();
            return quote! { #error #item };
        }
    };
    match validate::validate(&model) {
        Ok(settings) => expand::expand(&model, &settings),
        Err(error) => {
            let stubs = if model.item.generics.params.is_empty() {
                fallback::service(&model.item.ident)
            } else {
                quote!()
            };
            fallback::with_stubs(error, &model.item, stubs)
        }
    }
}
