//! Generates the replacement factory and its registration.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::Model;
use super::validate::Factory;

pub(crate) fn expand(model: &Model, factory: &Factory) -> TokenStream {
    let p = quote!(::backstage::__private);
    let name = &model.function.sig.ident;
    let function = &model.function;
    let (service, fallible) = (&factory.service, factory.fallible);
    let lets = model.params.iter().enumerate().map(|(i, param)| {
        let ty = &param.ty;
        let var = format_ident!("__inject{}", i);
        let value = quote_spanned!(ty.span()=> <#ty as #p::Inject>::inject(ctx).await?);
        quote! { let #var: #ty = #value; }
    });
    let args = (0..model.params.len()).map(|i| format_ident!("__inject{}", i));
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
