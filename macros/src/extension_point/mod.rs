//! `#[extension_point(plugin = "...")]`: a type a plugin exposes to its modules.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::parse::Parser;

use crate::common::{Errors, check_id, closest};
use crate::structs::{Arg, Value};

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
            let error = syn::Error::new(
                proc_macro2::Span::call_site(),
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
    let mut settings = Settings {
        plugin: String::new(),
        module: None,
        id: None,
    };
    let mut has_plugin = false;
    for arg in args {
        let name = arg.name.to_string();
        match (name.as_str(), &arg.value) {
            ("plugin", Value::Str(s)) => {
                check_id(s, "plugin", "plugin", &mut errors);
                settings.plugin = s.value();
                has_plugin = true;
            }
            ("module", Value::Str(s)) => {
                check_id(s, "module", "module", &mut errors);
                settings.module = Some(s.value());
            }
            ("id", Value::Str(s)) => settings.id = Some(s.value()),
            ("plugin" | "module" | "id", _) => errors.at(
                &arg.name,
                format!("`{name}` takes a string: `{name} = \"...\"`"),
            ),
            _ => {
                let hint = match closest(&name, &["plugin", "module", "id"]) {
                    Some(c) => format!("; did you mean `{c}`?"),
                    None => String::new(),
                };
                errors.at(
                    &arg.name,
                    format!("unknown argument `{name}` of #[extension_point]: the arguments are `plugin = \"...\"`, `module = \"...\"` and `id = \"...\"`{hint}"),
                );
            }
        }
    }
    let unknown = args
        .iter()
        .any(|a| !["plugin", "module", "id"].contains(&a.name.to_string().as_str()));
    if !has_plugin && !unknown {
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
    errors.finish().map(|()| settings)
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
