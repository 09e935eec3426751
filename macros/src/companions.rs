//! What `#[backend_plugin]` and `#[backend_module]` generate beside their trait impls for the
//! `#[routes]` of their type: the plugin whose routes they are (`RoutesOwner`), the typed
//! client those routes get methods on (`<Name>Client`), and, for a plugin, its OpenAPI
//! document (`Name::openapi()`). Emitted by the fallbacks too, so that a mistake in the
//! attribute's arguments does not cascade into the `#[routes]` block.

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

/// `RoutesOwner` and the typed client, for a type whose routes belong to `plugin_id`.
pub(crate) fn routes_owner(ident: &syn::Ident, plugin_id: &str) -> TokenStream {
    let p = quote!(::backstage::__private);
    let client = format_ident!("{}Client", ident);
    quote! {
        const _: () = {
            impl #p::RoutesOwner for #ident {
                const PLUGIN_ID: &'static str = #plugin_id;
            }
        };

        /// A typed client of this plugin's routes, for other plugins: one method per route,
        /// called through discovery with a plugin token on behalf of the credentials given.
        /// Made from the calling plugin's `PluginClient`.
        #[derive(Clone, Debug)]
        #[allow(dead_code)]
        pub struct #client {
            client: #p::client::PluginClient,
        }

        #[allow(dead_code)]
        impl #client {
            /// A client that calls through `client` (the calling plugin's `PluginClient`).
            pub fn new(client: &#p::client::PluginClient) -> Self {
                #client { client: ::core::clone::Clone::clone(client) }
            }
        }
    }
}

/// Everything a plugin type gets: [`routes_owner`], and `Name::openapi()`.
pub(crate) fn plugin(ident: &syn::Ident, plugin_id: &str) -> TokenStream {
    let p = quote!(::backstage::__private);
    let owner = routes_owner(ident, plugin_id);
    quote! {
        #owner

        impl #ident {
            /// The plugin's OpenAPI 3.1 document, generated from its `#[routes]`, with the
            /// plugin's own paths (`backstage::openapi`).
            #[allow(dead_code)]
            pub fn openapi() -> #p::serde_json::Value {
                #p::openapi::document::<#ident>()
            }
        }
    }
}
