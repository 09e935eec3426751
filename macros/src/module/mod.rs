//! `#[backend_module(plugin = "...", id = "...")]`: a module that extends a plugin.

use proc_macro2::TokenStream;
use quote::quote;

use crate::common::{Errors, check_id};
use crate::fallback;
use crate::structs::{
    self, Model, check_names, constructor, dependency_table, owner_checks, string_arg,
    validate_struct,
};

pub(crate) fn backend_module(attr: TokenStream, item: TokenStream) -> TokenStream {
    let model = match structs::parse(
        attr,
        item.clone(),
        "backend_module",
        "plugin = \"carmen\", id = \"my-module\"",
    ) {
        Ok(model) => model,
        Err(error) => {
            let error = error.to_compile_error();
            return quote! { #error #item };
        }
    };
    match validate(&model) {
        Ok((plugin, id)) => expand(&model, &plugin, &id),
        Err(error) => {
            let stubs = if model.item.generics.params.is_empty() {
                fallback::module(&model.item.ident)
            } else {
                quote!()
            };
            fallback::with_stubs(error, &model.item, stubs)
        }
    }
}

/// The rules: both ids given, each lowercase words joined by dashes.
fn validate(model: &Model) -> syn::Result<(String, String)> {
    let mut errors = Errors::default();
    let unknown = check_names(
        &model.args,
        &["plugin", "id"],
        "backend_module",
        "the arguments are `plugin = \"...\"` and `id = \"...\"`",
        &mut errors,
    );
    let plugin = string_arg(&model.args, "plugin", &mut errors);
    let id = string_arg(&model.args, "id", &mut errors);
    if let Some(plugin) = plugin {
        check_id(plugin, "plugin", "plugin", &mut errors);
    }
    if let Some(id) = id {
        check_id(id, "module", "id", &mut errors);
    }
    if (plugin.is_none() || id.is_none()) && !unknown {
        errors.span(
            model.attr_span,
            "#[backend_module] needs the id of the plugin it extends and its own id: `#[backend_module(plugin = \"carmen\", id = \"my-module\")]`",
        );
    }
    validate_struct(model, "module", &mut errors);
    let (plugin, id) = (plugin.map(syn::LitStr::value), id.map(syn::LitStr::value));
    errors
        .finish()
        .map(|()| (plugin.unwrap_or_default(), id.unwrap_or_default()))
}

fn expand(model: &Model, plugin: &str, id: &str) -> TokenStream {
    let p = quote!(::backstage::__private);
    let item = &model.item;
    let ident = &item.ident;
    let companions = crate::companions::routes_owner(ident, plugin);
    let dependencies = dependency_table(model);
    let build = constructor(model);
    let owner_checks = owner_checks(model, plugin);
    quote! {
        #item

        const _: () = {
            #[automatically_derived]
            impl #p::BackendModule for #ident {
                const PLUGIN_ID: &'static str = #plugin;
                const MODULE_ID: &'static str = #id;

                fn create<'a>(
                    ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<Self>> {
                    ::std::boxed::Box::pin(async move { ::core::result::Result::Ok(#build) })
                }

                fn registration() -> &'static #p::ModuleRegistration {
                    static REGISTRATION: #p::ModuleRegistration =
                        #p::ModuleRegistration::of::<#ident>(#dependencies, ::core::file!(), ::core::line!());
                    &REGISTRATION
                }
            }

            #p::inventory::submit! {
                #p::ModuleRegistration::of::<#ident>(#dependencies, ::core::file!(), ::core::line!())
            }


        };

        #companions

        #owner_checks
    }
}
