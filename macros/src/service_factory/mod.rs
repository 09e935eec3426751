//! `#[service_factory]` on `async fn(#[inject] deps...) -> Result<S>`: replaces the default
//! factory of service `S` in every backend that links the crate.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use crate::common::Errors;

pub(crate) fn service_factory(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut function: syn::ItemFn = match syn::parse2(item.clone()) {
        Ok(function) => function,
        Err(_) => {
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[service_factory] goes on an `async fn` that returns the replacement service: `async fn user_info(#[inject] config: RootConfig) -> Result<UserInfo>`",
            )
            .to_compile_error();
            return quote! { #error #item };
        }
    };
    // parse: which parameters are injected, and what is made
    let mut params = Vec::new();
    let mut errors = Errors::default();
    for input in &mut function.sig.inputs {
        match input {
            syn::FnArg::Receiver(r) => errors.at(
                r,
                "a service factory is a free function: it takes no `self`",
            ),
            syn::FnArg::Typed(pat_type) => {
                let inject = pat_type.attrs.iter().any(|a| a.path().is_ident("inject"));
                pat_type.attrs.retain(|a| !a.path().is_ident("inject"));
                if !inject {
                    errors.at(&pat_type.ty, "parameters of a service factory are its dependencies: mark the parameter `#[inject]`");
                }
                params.push((*pat_type.ty).clone());
            }
        }
    }
    // validate
    if !attr.is_empty() {
        errors.at(
            &attr,
            "#[service_factory] takes no arguments: the return type names the service it replaces",
        );
    }
    if function.sig.asyncness.is_none() {
        errors.at(
            function.sig.fn_token,
            format!(
                "a service factory must be async; write `async fn {}`",
                function.sig.ident
            ),
        );
    }
    if let Some(param) = function.sig.generics.params.first() {
        errors.at(param, "a service factory cannot be generic");
    }
    let made = match &function.sig.output {
        syn::ReturnType::Default => {
            errors.at(
                &function.sig.ident,
                "a service factory returns the service it replaces: `-> Result<UserInfo>`",
            );
            None
        }
        syn::ReturnType::Type(_, ty) => Some(made_type(ty)),
    };
    if let Err(error) = errors.finish() {
        let error = error.to_compile_error();
        return quote! { #error #function };
    }
    let Some((service, fallible)) = made else {
        return quote!(#function);
    };

    // expand
    let p = quote!(::backstage::__private);
    let name = &function.sig.ident;
    let lets = params.iter().enumerate().map(|(i, ty)| {
        let var = format_ident!("__inject{}", i);
        let value = quote_spanned!(ty.span()=> <#ty as #p::Inject>::inject(ctx).await?);
        quote! { let #var: #ty = #value; }
    });
    let args = (0..params.len()).map(|i| format_ident!("__inject{}", i));
    let call = if fallible {
        quote!(#name(#(#args),*).await?)
    } else {
        quote!(#name(#(#args),*).await)
    };
    let check = quote_spanned!(service.span()=>
        const _: () = ::core::assert!(
            <#service as #p::Service>::OVERRIDABLE,
            "this service cannot be replaced: `PluginMetadata` is what tells a plugin who it is"
        );
    );
    quote! {
        #function

        const _: () = {
            fn __backstage_override<'a>(
                ctx: &'a #p::ServiceContext<'_>,
            ) -> #p::BoxFuture<'a, #p::Result<::std::sync::Arc<dyn ::core::any::Any + ::core::marker::Send + ::core::marker::Sync>>> {
                ::std::boxed::Box::pin(async move {
                    #(#lets)*
                    let made: #service = #call;
                    ::core::result::Result::Ok(#p::override_item(made))
                })
            }

            #check

            #p::inventory::submit! {
                #p::OverrideRegistration {
                    service: ::core::any::TypeId::of::<#service>,
                    service_id: <#service as #p::Service>::ID,
                    overridable: <#service as #p::Service>::OVERRIDABLE,
                    create: __backstage_override,
                    file: ::core::file!(),
                    line: ::core::line!(),
                }
            }
        };
    }
}

/// `Result<S>` -> (`S`, true); `S` -> (`S`, false).
fn made_type(ty: &syn::Type) -> (syn::Type, bool) {
    if let syn::Type::Path(path) = ty
        && let Some(last) = path.path.segments.last()
        && last.ident == "Result"
        && let syn::PathArguments::AngleBracketed(args) = &last.arguments
        && let Some(syn::GenericArgument::Type(inner)) = args.args.first()
    {
        return (inner.clone(), true);
    }
    (ty.clone(), false)
}
