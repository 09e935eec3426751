//! `#[backend_plugin(id = "...")]`.

use proc_macro2::TokenStream;
use quote::quote;

mod expand;
mod parse;
mod validate;

pub(crate) fn backend_plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    let model = match parse::parse(attr, item.clone()) {
        Ok(model) => model,
        Err(error) => {
            let error = error.to_compile_error();
            return quote! { #error #item };
        }
    };
    match validate::validate(&model) {
        Ok(()) => expand::expand(&model),
        Err(error) => {
            let error = error.to_compile_error();
            let item = expand::item_only(&model);
            quote! { #error #item }
        }
    }
}
