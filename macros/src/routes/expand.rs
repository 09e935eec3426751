//! Generates the router builder, the `#[init]` runner and the registration of a `#[routes]`
//! block.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::{Kind, Method, Model};
use super::validate::{Auth, auth};

pub(crate) fn expand(model: &Model) -> TokenStream {
    let p = quote!(::backstage::__private);
    let item = &model.item;
    let self_ty = &item.self_ty;

    let mut route_infos = Vec::new();
    let mut route_builders = Vec::new();
    let mut init = quote!(::core::option::Option::None);
    let mut init_fn = quote!();

    for method in &model.methods {
        match &method.kind {
            Kind::Route(args, attr) => {
                let method_upper = args.method.to_string().to_ascii_uppercase();
                let path = &args.path;
                let handler = method.ident.to_string();
                let policy = match auth(args) {
                    Auth::Default => quote!(#p::AuthPolicyKind::Default),
                    Auth::Unauthenticated => quote!(#p::AuthPolicyKind::Unauthenticated),
                    Auth::UserCookie => quote!(#p::AuthPolicyKind::UserCookie),
                };
                let line = quote_spanned!(attr.span()=> ::core::line!());
                route_infos.push(quote! {
                    #p::RouteInfo {
                        method: #method_upper,
                        path: #path,
                        auth: #policy,
                        handler: #handler,
                        file: ::core::file!(),
                        line: #line,
                    }
                });
                route_builders.push(route_builder(method, self_ty, &method_upper, path, &policy));
            }
            Kind::Init(attr) => {
                let name = method.ident.to_string();
                let line = quote_spanned!(attr.span()=> ::core::line!());
                init = quote! {
                    ::core::option::Option::Some(#p::InitRegistration {
                        run: __backstage_init,
                        name: #name,
                        file: ::core::file!(),
                        line: #line,
                    })
                };
                let ident = &method.ident;
                let injected = injections(method);
                let args = (0..method.params.len()).map(|i| format_ident!("__inject{}", i));
                init_fn = quote! {
                    fn __backstage_init<'a>(
                        plugin: #p::AnyPlugin,
                        ctx: &'a #p::ServiceContext<'_>,
                    ) -> #p::BoxFuture<'a, #p::Result<()>> {
                        ::std::boxed::Box::pin(async move {
                            let this = #p::downcast::<#self_ty>(plugin)?;
                            #injected
                            #p::InitOutput::into_init_result(<#self_ty>::#ident(&this, #(#args),*).await)
                        })
                    }
                };
            }
        }
    }

    quote! {
        #item

        const _: () = {
            fn __backstage_build<'a>(
                plugin: #p::AnyPlugin,
                ctx: &'a #p::ServiceContext<'_>,
            ) -> #p::BoxFuture<'a, #p::Result<#p::axum::Router>> {
                ::std::boxed::Box::pin(async move {
                    let this = #p::downcast::<#self_ty>(plugin)?;
                    let gate = #p::Gate::for_plugin(ctx).await?;
                    let router = #p::axum::Router::new();
                    #(let router = #route_builders;)*
                    let _ = (&this, &gate);
                    ::core::result::Result::Ok(router)
                })
            }

            #init_fn

            #p::inventory::submit! {
                #p::RoutesRegistration {
                    plugin: ::core::any::TypeId::of::<#self_ty>,
                    plugin_type: ::core::any::type_name::<#self_ty>,
                    routes: &[#(#route_infos),*],
                    init: #init,
                    build: __backstage_build,
                    file: ::core::file!(),
                    line: ::core::line!(),
                }
            }
        };
    }
}

/// `let __injectN = <T as Inject>::inject(ctx).await?;` for each `#[inject]` parameter, spanned
/// on the user's type so a type that is not a service is reported there.
fn injections(method: &Method) -> TokenStream {
    let p = quote!(::backstage::__private);
    let lets = method
        .params
        .iter()
        .enumerate()
        .filter(|(_, param)| param.inject)
        .map(|(i, param)| {
            let name = format_ident!("__inject{}", i);
            let ty = &param.ty;
            let value = quote_spanned!(ty.span()=> <#ty as #p::Inject>::inject(ctx).await?);
            quote! { let #name: #ty = #value; }
        });
    quote!(#(#lets)*)
}

fn route_builder(
    method: &Method,
    self_ty: &syn::Type,
    method_upper: &str,
    path: &syn::LitStr,
    policy: &TokenStream,
) -> TokenStream {
    let p = quote!(::backstage::__private);
    let ident = &method.ident;
    let injected = injections(method);
    let injected_names: Vec<_> = method
        .params
        .iter()
        .enumerate()
        .filter(|(_, param)| param.inject)
        .map(|(i, _)| format_ident!("__inject{}", i))
        .collect();
    let extracted: Vec<usize> = method
        .params
        .iter()
        .enumerate()
        .filter(|(_, param)| !param.inject)
        .map(|(i, _)| i)
        .collect();

    let mut extraction = Vec::new();
    for (n, &i) in extracted.iter().enumerate() {
        let name = format_ident!("__arg{}", i);
        let ty = &method.params[i].ty;
        if n + 1 == extracted.len() {
            extraction.push(quote! {
                let #name: #ty = match #p::from_request::<#ty, _>(#p::axum::extract::Request::from_parts(parts, body)).await {
                    ::core::result::Result::Ok(value) => value,
                    ::core::result::Result::Err(response) => return response,
                };
            });
        } else {
            extraction.push(quote! {
                let #name: #ty = match #p::from_parts::<#ty>(&mut parts).await {
                    ::core::result::Result::Ok(value) => value,
                    ::core::result::Result::Err(response) => return response,
                };
            });
        }
    }
    if extracted.is_empty() {
        extraction.push(quote! { let _ = (parts, body); });
    }
    let args = method.params.iter().enumerate().map(|(i, param)| {
        if param.inject {
            format_ident!("__inject{}", i)
        } else {
            format_ident!("__arg{}", i)
        }
    });
    let call = quote_spanned!(method.ident.span()=> #p::respond(<#self_ty>::#ident(&this, #(#args),*).await));

    quote! {
        {
            #injected
            let this = ::core::clone::Clone::clone(&this);
            let gate = ::core::clone::Clone::clone(&gate);
            router.route(
                #path,
                #p::axum::routing::on(
                    #p::method_filter(#method_upper),
                    move |request: #p::axum::extract::Request| {
                        let this = ::core::clone::Clone::clone(&this);
                        let gate = ::core::clone::Clone::clone(&gate);
                        #(let #injected_names = ::core::clone::Clone::clone(&#injected_names);)*
                        async move {
                            let (mut parts, body) = request.into_parts();
                            if let ::core::result::Result::Err(response) = gate.check(#policy, &mut parts).await {
                                return response;
                            }
                            #(#extraction)*
                            #call
                        }
                    },
                ),
            )
        }
    }
}
