//! A `#[service_factory]` function as written: its signature, which parameters are injected,
//! and its body as tokens.

use proc_macro2::TokenStream;
use syn::spanned::Spanned;

use crate::item_fn::FnItem;

/// One parameter: its type, and the span of its `#[inject]` when it has one.
pub(crate) struct Param {
    pub(crate) ty: syn::Type,
    pub(crate) inject: bool,
}

pub(crate) struct Model {
    pub(crate) attr: TokenStream,
    /// The function as it is emitted: `#[inject]` removed from its parameters.
    pub(crate) function: FnItem,
    pub(crate) params: Vec<Param>,
    /// A `self` parameter, which a factory cannot have.
    pub(crate) receiver: Option<proc_macro2::Span>,
}

pub(crate) fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<Model> {
    let mut function: FnItem = syn::parse2(item).map_err(|e| {
        syn::Error::new(
            e.span(),
            "#[service_factory] goes on an `async fn` that returns the replacement service: `async fn user_info(#[inject] config: RootConfig) -> Result<UserInfo>`",
        )
    })?;
    let mut params = Vec::new();
    let mut receiver = None;
    for input in &mut function.sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => receiver = Some(r.span()),
            syn::FnArg::Typed(pat_type) => {
                let inject = pat_type.attrs.iter().any(|a| a.path().is_ident("inject"));
                pat_type.attrs.retain(|a| !a.path().is_ident("inject"));
                params.push(Param {
                    ty: (*pat_type.ty).clone(),
                    inject,
                });
            }
        }
    }
    Ok(Model {
        attr,
        function,
        params,
        receiver,
    })
}
