//! `#[routes]` on a plugin's impl block, with `#[route(...)]` and `#[init]` inside.

use proc_macro2::TokenStream;
use quote::quote;

mod ast;
mod expand;
mod parse;
mod validate;

pub(crate) fn routes(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut model = match parse::parse(attr, item.clone()) {
        Ok(model) => model,
        Err(error) => {
            let error = error.to_compile_error();
            return quote! { #error #item };
        }
    };
    match validate::validate(&mut model) {
        Ok(()) => expand::expand(&model),
        Err(error) => {
            let error = error.to_compile_error();
            let item = &model.item;
            quote! { #error #item }
        }
    }
}
