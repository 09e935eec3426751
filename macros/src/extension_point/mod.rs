//! `#[extension_point(plugin = "...")]`: a type a plugin exposes to its modules.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::Parser;

use crate::common::{Errors, check_id};
use crate::structs::{Arg, check_names, string_arg};

pub(crate) fn extension_point(attr: TokenStream, item: TokenStream) -> TokenStream {
    let parsed =
        syn::punctuated::Punctuated::<Arg, syn::Token![,]>::parse_terminated.parse2(attr.clone());
    let item_parsed: syn::Result<syn::DeriveInput> = syn::parse2(item.clone());
    let (args, input) = match (parsed, item_parsed) {
        (Ok(args), Ok(input)) => (args.into_iter().collect::<Vec<_>>(), input),
        (Err(e), _) => {
            let error =
                syn::Error::new(e.span(), "expected `plugin = \"carmen\"`").to_compile_error();
            return quote! { #error #item };
        }
        (_, Err(_)) => {
            let error = syn::Error::new_spanned(
                &item,
                "#[extension_point] goes on a struct or enum that the plugin shares with its modules",
            )
            .to_compile_error();
            return quote! { #error #item };
        }
    };
    match validate(&args, &attr, &input) {
        Ok(settings) => expand(&input, &settings),
        Err(error) => {
            let stubs = if input.generics.params.is_empty() {
                crate::fallback::extension_point(&input.ident)
            } else {
                quote!()
            };
            crate::fallback::with_stubs(error, &input, stubs)
        }
    }
}

struct Settings {
    plugin: String,
    module: Option<String>,
    id: Option<String>,
}

fn validate(args: &[Arg], attr: &TokenStream, input: &syn::DeriveInput) -> syn::Result<Settings> {
    let mut errors = Errors::default();
    let unknown = check_names(
        args,
        &["plugin", "module", "id"],
        "extension_point",
        "the arguments are `plugin = \"...\"`, `module = \"...\"` and `id = \"...\"`",
        &mut errors,
    );
    let plugin = string_arg(args, "plugin", &mut errors);
    let module = string_arg(args, "module", &mut errors);
    let id = string_arg(args, "id", &mut errors);
    if let Some(plugin) = plugin {
        check_id(plugin, "plugin", "plugin", &mut errors);
    }
    if let Some(module) = module {
        check_id(module, "module", "module", &mut errors);
    }
    if plugin.is_none() && !unknown && !args.iter().any(|a| a.name == "plugin") {
        let message = "#[extension_point] needs the id of the plugin that owns it: `#[extension_point(plugin = \"carmen\")]`";
        if attr.is_empty() {
            errors.at(&input.ident, message)
        } else {
            errors.at(attr, message)
        }
    }
    if let Some(param) = input.generics.params.first() {
        errors.at(
            param,
            "an extension point cannot be generic: each plugin has exactly one instance of it",
        );
    }
    errors.finish().map(|()| Settings {
        plugin: plugin.map(syn::LitStr::value).unwrap_or_default(),
        module: module.map(syn::LitStr::value),
        id: id.map(syn::LitStr::value),
    })
}

fn expand(input: &syn::DeriveInput, settings: &Settings) -> TokenStream {
    let p = quote!(::backstage::__private);
    let ident = &input.ident;
    let name = ident.to_string();
    let plugin = &settings.plugin;
    let id = match &settings.id {
        Some(id) => quote!(#id),
        None => quote!(::core::concat!(::core::module_path!(), "::", #name)),
    };
    let module = match &settings.module {
        Some(module) => quote!(::core::option::Option::Some(#module)),
        None => quote!(::core::option::Option::None),
    };
    let wrong_plugin = format!(
        "`{name}` is an extension point of plugin '{plugin}': only that plugin and its modules (`#[backend_module(plugin = \"{plugin}\", ...)]`) can inject it"
    );
    // `Clone + Default` is what makes one shared instance per plugin; the bound is spanned on
    // the type so a missing derive is reported there.
    let inject_impl = quote_spanned!(ident.span()=> impl #p::Inject for #ident);
    let made = quote_spanned!(ident.span()=> ::std::boxed::Box::pin(ctx.extension_point::<Self>()));
    quote! {
        #input

        const _: () = {
            #[automatically_derived]
            #inject_impl {
                const ID: &'static str = #id;
                const OWNER_PLUGIN: ::core::option::Option<&'static str> = ::core::option::Option::Some(#plugin);
                const WRONG_PLUGIN: &'static str = #wrong_plugin;

                fn inject<'a>(
                    ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<Self>> {
                    #made
                }
            }

            #p::inventory::submit! {
                #p::ExtensionPointRegistration {
                    id: <#ident as #p::Inject>::ID,
                    plugin_id: #plugin,
                    module_id: #module,
                }
            }
        };
    }
}
