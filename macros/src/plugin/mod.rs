//! `#[backend_plugin(id = "...")]`.

use proc_macro2::TokenStream;
use quote::quote;

use crate::{fallback, structs};

mod expand;
mod validate;

pub(crate) fn backend_plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    let model = match structs::parse(attr, item.clone(), "backend_plugin", "id = \"my-plugin\"") {
        Ok(model) => model,
        Err(error) => {
            let error = error.to_compile_error();
            return quote! { #error #item };
        }
    };
    match validate::validate(&model) {
        Ok(()) => expand::expand(&model),
        Err(error) => {
            let stubs = if model.item.generics.params.is_empty() {
                fallback::plugin(&model.item.ident)
            } else {
                quote!()
            };
            fallback::with_stubs(error, &model.item, stubs)
        }
    }
}
