//! What a macro emits beside its errors: the item as written, and impls of the traits the
//! expansion would have implemented, with bodies that never run. Code elsewhere that injects
//! the service or names the plugin then still type-checks, so one mistake is one error
//! (thiserror's `fallback.rs` does the same).

use proc_macro2::TokenStream;
use quote::{ToTokens, quote};

/// `error` beside `item` and `stubs`.
pub(crate) fn with_stubs(
    error: syn::Error,
    item: &impl ToTokens,
    stubs: TokenStream,
) -> TokenStream {
    let error = error.to_compile_error();
    quote! {
        #error
        #item
        #stubs
    }
}

/// A stand-in `Service` impl for a `#[service]` whose arguments are wrong: root-scoped, so
/// injectable anywhere, root or plugin, without further errors.
pub(crate) fn service(ident: &syn::Ident) -> TokenStream {
    let p = quote!(::backstage::__private);
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::Service for #ident {
                type Scope = #p::Root;
                const ID: &'static str = "";
                fn create<'a>(
                    _ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<Self>> {
                    ::core::unreachable!()
                }
            }
            impl<C> #p::RootInjectable<C> for #ident {}
        };
    }
}

/// A stand-in `BackendPlugin` impl for a `#[backend_plugin]` whose arguments are wrong.
pub(crate) fn plugin(ident: &syn::Ident) -> TokenStream {
    let p = quote!(::backstage::__private);
    let companions = crate::companions::plugin(ident, "");
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::BackendPlugin for #ident {
                const ID: &'static str = "";
                const DEPENDENCIES: &'static [#p::Dependency] = &[];
                fn create<'a>(
                    _ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<Self>> {
                    ::core::unreachable!()
                }
                fn registration() -> &'static #p::PluginRegistration {
                    ::core::unreachable!()
                }
            }
        };
        #companions
    }
}

/// A stand-in `BackendModule` impl for a `#[backend_module]` whose arguments are wrong.
pub(crate) fn module(ident: &syn::Ident) -> TokenStream {
    let p = quote!(::backstage::__private);
    let companions = crate::companions::routes_owner(ident, "");
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::BackendModule for #ident {
                const PLUGIN_ID: &'static str = "";
                const MODULE_ID: &'static str = "";
                fn create<'a>(
                    _ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<Self>> {
                    ::core::unreachable!()
                }
                fn registration() -> &'static #p::ModuleRegistration {
                    ::core::unreachable!()
                }
            }
        };
        #companions
    }
}

/// A stand-in `Inject` impl for an `#[extension_point]` whose arguments are wrong.
pub(crate) fn extension_point(ident: &syn::Ident) -> TokenStream {
    let p = quote!(::backstage::__private);
    quote! {
        const _: () = {
            #[automatically_derived]
            impl #p::Inject for #ident {
                const ID: &'static str = "";
                fn inject<'a>(
                    _ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<Self>> {
                    ::core::unreachable!()
                }
            }
        };
    }
}
