//! Generates the plugin's `BackendPlugin` impl, its dependency table and its registration.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::{Model, Shape};

/// Only the struct (used beside errors).
pub(crate) fn item_only(model: &Model) -> TokenStream {
    let item = &model.item;
    quote! { #item }
}

pub(crate) fn expand(model: &Model) -> TokenStream {
    let item = &model.item;
    let ident = &item.ident;
    let id = super::validate::id(model).unwrap_or_default();
    let p = quote!(::backstage::__private);

    let (dependencies, build) = match &model.shape {
        Shape::Named(fields) => {
            let dependencies = fields.iter().filter(|f| f.inject).map(|f| {
                let name = f.ident.to_string();
                let ty = &f.ty;
                let line = quote_spanned!(f.ident.span()=> ::core::line!());
                quote! {
                    #p::Dependency {
                        field: #name,
                        service: <#ty as #p::Inject>::ID,
                        file: ::core::file!(),
                        line: #line,
                    }
                }
            });
            let inits = fields.iter().map(|f| {
                let field = &f.ident;
                let ty = &f.ty;
                if f.inject {
                    let value = quote_spanned!(ty.span()=> <#ty as #p::Inject>::inject(ctx).await?);
                    quote! { #field: #value }
                } else {
                    let value =
                        quote_spanned!(ty.span()=> <#ty as #p::FieldDefault>::field_default());
                    quote! { #field: #value }
                }
            });
            (quote!(#(#dependencies,)*), quote!(Self { #(#inits,)* }))
        }
        _ => (quote!(), quote!(Self)),
    };

    quote! {
        #item

        const _: () = {
            #[automatically_derived]
            impl #p::BackendPlugin for #ident {
                const ID: &'static str = #id;
                const DEPENDENCIES: &'static [#p::Dependency] = &[#dependencies];

                fn create<'a>(
                    ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<Self>> {
                    ::std::boxed::Box::pin(async move { ::core::result::Result::Ok(#build) })
                }

                fn registration() -> &'static #p::PluginRegistration {
                    static REGISTRATION: #p::PluginRegistration =
                        #p::PluginRegistration::of::<#ident>(::core::file!(), ::core::line!());
                    &REGISTRATION
                }
            }

            #p::inventory::submit! {
                #p::PluginRegistration::of::<#ident>(::core::file!(), ::core::line!())
            }
        };
    }
}
