//! `#[service_factory]` on `async fn(#[inject] deps...) -> Result<S>`: replaces the default
//! factory of service `S` in every backend that links the crate. Parse (the signature only,
//! the body stays tokens) -> validate -> expand; on error the function is emitted as written.

use proc_macro2::TokenStream;
use quote::quote;

mod expand;
mod parse;
mod validate;

pub(crate) fn service_factory(attr: TokenStream, item: TokenStream) -> TokenStream {
    let model = match parse::parse(attr, item.clone()) {
        Ok(model) => model,
        Err(error) => {
            let error = error.to_compile_error();
            return quote! { #error #item };
        }
    };
    match validate::validate(&model) {
        Ok(factory) => expand::expand(&model, &factory),
        Err(error) => {
            let error = error.to_compile_error();
            let function = &model.function;
            quote! { #error #function }
        }
    }
}
