//! Generates the plugin's `BackendPlugin` impl, its dependency table and its registration.

use proc_macro2::TokenStream;
use quote::quote;

use crate::structs::{Model, constructor, dependency_table, owner_checks};

pub(crate) fn expand(model: &Model) -> TokenStream {
    let item = &model.item;
    let ident = &item.ident;
    let id = super::validate::id(model).unwrap_or_default();
    let companions = crate::companions::plugin(ident, &id);
    let p = quote!(::backstage::__private);
    let dependencies = dependency_table(model);
    let build = constructor(model);
    let owner_checks = owner_checks(model, &id);

    quote! {
        #item

        const _: () = {
            #[automatically_derived]
            impl #p::BackendPlugin for #ident {
                const ID: &'static str = #id;
                const DEPENDENCIES: &'static [#p::Dependency] = #dependencies;

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

        #companions

        #owner_checks
    }
}
