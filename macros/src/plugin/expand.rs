//! Generates the plugin's `BackendPlugin` impl, its dependency table and its registration.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};

use crate::structs::{Model, constructor, injected};

pub(crate) fn expand(model: &Model) -> TokenStream {
    let item = &model.item;
    let ident = &item.ident;
    let id = super::validate::id(model).unwrap_or_default();
    let p = quote!(::backstage::__private);
    let dependencies = injected(model).map(|f| {
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
    let build = constructor(model);

    quote! {
        #item

        const _: () = {
            #[automatically_derived]
            impl #p::BackendPlugin for #ident {
                const ID: &'static str = #id;
                const DEPENDENCIES: &'static [#p::Dependency] = &[#(#dependencies,)*];

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
