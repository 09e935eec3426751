//! Generates the `Service` impl, the scope checks and the registration of a custom service.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::spanned::Spanned;

use super::validate::Settings;
use crate::structs::{Model, constructor, injected};

pub(crate) fn expand(model: &Model, settings: &Settings) -> TokenStream {
    let p = quote!(::backstage::__private);
    let item = &model.item;
    let ident = &item.ident;
    let name = ident.to_string();
    let id = match &settings.id {
        Some(id) => quote!(#id),
        None => quote!(::core::concat!(::core::module_path!(), "::", #name)),
    };
    let scope = if settings.root {
        quote!(#p::Root)
    } else {
        quote!(#p::PluginScoped)
    };
    let dependencies = injected(model).map(|f| {
        let ty = &f.ty;
        quote!(<#ty as #p::Inject>::ID)
    });
    let build = constructor(model);
    let finish = match &settings.init {
        Some(init) => {
            quote_spanned!(init.span()=> #p::InitOutput::into_init_result(Self::#init(&mut service).await)?;)
        }
        None => quote!(),
    };
    // A root service may inject only root services; each check is spanned on the field's type.
    let root_parts = if settings.root {
        let checks = injected(model).map(|f| {
            let ty = &f.ty;
            quote_spanned!(ty.span()=> #p::assert_root_injectable::<#ty, #ident>();)
        });
        quote! {
            impl<C> #p::RootInjectable<C> for #ident {}
            #[allow(dead_code)]
            fn __backstage_scope_checks() { #(#checks)* }
        }
    } else {
        quote!()
    };
    let service_impl = quote_spanned!(ident.span()=> impl #p::Service for #ident);
    let registration = if settings.root && !settings.lazy {
        quote!(eager)
    } else {
        quote!(of)
    };
    let provides = match &settings.provides {
        None => quote!(),
        Some(target) => {
            // The coercion to the provided type is written here, in the user's crate, where
            // the compiler can check that the service implements it.
            let coerce = quote_spanned!(target.span()=> ::std::sync::Arc::new(service) as ::std::sync::Arc<#target>);
            quote! {
                fn __backstage_provide<'a>(
                    ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<::std::boxed::Box<dyn ::core::any::Any + ::core::marker::Send>>> {
                    ::std::boxed::Box::pin(async move {
                        let service = ctx.get::<#ident>().await?;
                        ::core::result::Result::Ok(#p::multiton_item(#coerce))
                    })
                }

                #p::inventory::submit! {
                    #p::MultitonRegistration {
                        target: ::core::any::TypeId::of::<#target>,
                        service: <#ident as #p::Service>::ID,
                        create: __backstage_provide,
                    }
                }
            }
        }
    };

    quote! {
        #item

        const _: () = {
            #[automatically_derived]
            #service_impl {
                type Scope = #scope;
                const ID: &'static str = #id;
                const DEPENDENCIES: &'static [&'static str] = &[#(#dependencies),*];

                fn create<'a>(
                    ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<Self>> {
                    ::std::boxed::Box::pin(async move {
                        #[allow(unused_mut)]
                        let mut service = #build;
                        #finish
                        ::core::result::Result::Ok(service)
                    })
                }
            }

            #root_parts

            #p::inventory::submit! {
                #p::ServiceRegistration::#registration::<#ident>(::core::file!(), ::core::line!())
            }

            #provides
        };
    }
}
