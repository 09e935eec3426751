//! Generates the router builder, the `#[init]` runner and the registration of a `#[routes]`
//! block.

use proc_macro2::TokenStream;
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::parse::{Kind, Method, Model, Principal};
use super::validate::{Auth, action_options, audit, auth, result_ok_type};

pub(crate) fn expand(model: &Model) -> TokenStream {
    let p = quote!(::backstage::__private);
    let item = &model.item;
    let self_ty = &item.self_ty;

    let mut route_infos = Vec::new();
    let mut route_builders = Vec::new();
    let mut init = quote!(::core::option::Option::None);
    let mut init_fn = quote!();
    let mut action_registrations = Vec::new();
    let mut client_methods = Vec::new();

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
                let (summary, description) = summary_and_description(&method.docs);
                let fallible = result_ok_type(&method.output).is_some();
                let narrowed = method.params.iter().any(|param| {
                    matches!(
                        param.credentials,
                        Some(Principal::User | Principal::Service)
                    )
                });
                let describe = describe(method);
                client_methods.push(client_method(method, self_ty, &method_upper, path));
                route_infos.push(quote! {
                    #p::RouteInfo {
                        method: #method_upper,
                        path: #path,
                        auth: #policy,
                        handler: #handler,
                        file: ::core::file!(),
                        line: #line,
                        summary: #summary,
                        description: #description,
                        fallible: #fallible,
                        narrowed: #narrowed,
                        describe: #describe,
                    }
                });
                let audited = audit(args);
                route_builders.push(route_builder(
                    method,
                    self_ty,
                    &method_upper,
                    path,
                    &policy,
                    audited.as_ref(),
                ));
            }
            Kind::Action(..) => action_registrations.push(action(method, self_ty)),
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

    let (actions, actions_fn) = if action_registrations.is_empty() {
        (quote!(::core::option::Option::None), quote!())
    } else {
        (
            quote!(::core::option::Option::Some(__backstage_actions)),
            quote! {
                fn __backstage_actions<'a>(
                    plugin: #p::AnyPlugin,
                    ctx: &'a #p::ServiceContext<'_>,
                ) -> #p::BoxFuture<'a, #p::Result<()>> {
                    ::std::boxed::Box::pin(async move {
                        let this = #p::downcast::<#self_ty>(plugin)?;
                        let registry = <#p::ActionsRegistry as #p::Inject>::inject(ctx).await?;
                        #(#action_registrations)*
                        ::core::result::Result::Ok(())
                    })
                }
            },
        )
    };

    let client = client_of(self_ty).map(|client| {
        quote! {
            #[allow(dead_code, private_interfaces, private_bounds, clippy::needless_lifetimes)]
            impl #client {
                #(#client_methods)*
            }
        }
    });

    quote! {
        #item

        #client

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

            #actions_fn

            #p::inventory::submit! {
                #p::RoutesRegistration {
                    plugin: ::core::any::TypeId::of::<#self_ty>,
                    plugin_type: ::core::any::type_name::<#self_ty>,
                    routes: &[#(#route_infos),*],
                    init: #init,
                    actions: #actions,
                    build: __backstage_build,
                    file: ::core::file!(),
                    line: ::core::line!(),
                }
            }
        };
    }
}

/// The typed client `#[backend_plugin]` or `#[backend_module]` made beside `self_ty`:
/// `<Name>Client`, by the same path (`super::Carmen` gives `super::CarmenClient`).
fn client_of(self_ty: &syn::Type) -> Option<syn::Path> {
    let syn::Type::Path(path) = self_ty else {
        return None;
    };
    let mut client = path.path.clone();
    let last = client.segments.last_mut()?;
    last.ident = format_ident!("{}Client", last.ident);
    last.arguments = syn::PathArguments::None;
    Some(client)
}

/// The `T` of `Name<T>` when `ty`'s last segment is one of `names`.
fn extractor_arg<'t>(ty: &'t syn::Type, names: &[&str]) -> Option<&'t syn::Type> {
    let syn::Type::Path(path) = ty else {
        return None;
    };
    let last = path.path.segments.last()?;
    if !names.iter().any(|name| last.ident == name) {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first() {
        Some(syn::GenericArgument::Type(ty)) if args.args.len() == 1 => Some(ty),
        _ => None,
    }
}

/// One method of the typed client: the route's path values, query and body as typed
/// arguments, the caller's credentials last, and the answer read as its type says.
fn client_method(
    method: &Method,
    self_ty: &syn::Type,
    method_upper: &str,
    path: &syn::LitStr,
) -> TokenStream {
    let p = quote!(::backstage::__private);
    let ident = &method.ident;
    let http_method = format_ident!("{}", method_upper);
    let names: Vec<String> = path
        .value()
        .split('/')
        .filter_map(|segment| {
            Some(
                segment
                    .strip_prefix('{')?
                    .strip_suffix('}')?
                    .trim_start_matches('*')
                    .to_owned(),
            )
        })
        .collect();
    let mut args = Vec::new();
    let mut path_expr = quote!(::std::string::String::from(#path));
    let mut query = quote!();
    let mut body = quote!();
    for param in method.params.iter().filter(|param| !param.inject) {
        if let Some(ty) = extractor_arg(&param.ty, &["Path"]) {
            let idents: Option<Vec<syn::Ident>> = names
                .iter()
                .map(|name| syn::parse_str::<syn::Ident>(name).ok())
                .collect();
            match (ty, idents) {
                // A tuple: one argument per path parameter, named as the path names them.
                (syn::Type::Tuple(tuple), Some(idents))
                    if tuple.elems.len() == idents.len() && idents.len() > 1 =>
                {
                    let elems = tuple.elems.iter();
                    args.extend(
                        idents
                            .iter()
                            .zip(elems)
                            .map(|(name, ty)| quote!(#name: #ty)),
                    );
                    path_expr = quote!((&&&#p::client::ClientProbe::<#ty>::new()).path(#path, &(#(#idents),*))?);
                }
                (_, Some(idents)) if idents.len() == 1 => {
                    let name = &idents[0];
                    args.push(quote!(#name: #ty));
                    path_expr =
                        quote!((&&&#p::client::ClientProbe::<#ty>::new()).path(#path, &#name)?);
                }
                _ => {
                    args.push(quote!(path: #ty));
                    path_expr =
                        quote!((&&&#p::client::ClientProbe::<#ty>::new()).path(#path, &path)?);
                }
            }
        } else if let Some(ty) = extractor_arg(&param.ty, &["Query"]) {
            args.push(quote!(query: &#ty));
            query = quote!(let request = (&&&#p::client::ClientProbe::<#ty>::new()).query(request, query)?;);
        } else if let Some(ty) = extractor_arg(&param.ty, &["Json"]) {
            args.push(quote!(body: &#ty));
            body = quote!(let request = (&&&#p::client::ClientProbe::<#ty>::new()).body(request, body)?;);
        }
    }
    let answer = match &method.output {
        syn::ReturnType::Default => None,
        syn::ReturnType::Type(_, ty) => Some(result_ok_type(&method.output).unwrap_or(ty)),
    };
    let (output, read) = client_answer(answer);
    let doc = format!(
        "`{method_upper} {}` of the plugin ([`{}`]'s route `{ident}`).",
        path.value(),
        quote!(#self_ty).to_string().replace(' ', "")
    );
    quote! {
        #[doc = #doc]
        pub async fn #ident(
            &self,
            #(#args,)*
            credentials: &#p::Credentials<impl #p::client::PrincipalType>,
        ) -> #p::Result<#output> {
            #[allow(unused_imports)]
            use #p::client::{ReadOther as _, ReadTyped as _, WriteOther as _, WriteTyped as _};
            let path: ::std::string::String = #path_expr;
            let request = self
                .client
                .request(
                    #p::client::Method::#http_method,
                    <#self_ty as #p::RoutesOwner>::PLUGIN_ID,
                    &path,
                    credentials,
                )
                .await?;
            #query
            #body
            let response = #p::client::send(request).await?;
            #read
        }
    }
}

/// What a client method answers for a handler that returns `answer` (`Result` taken off), and
/// how it reads it: `Json<T>` and `(StatusCode, Json<T>)` as `T`, `StatusCode` as the status,
/// text as `String`, `()` as `()`, anything else as the body's bytes.
fn client_answer(answer: Option<&syn::Type>) -> (TokenStream, TokenStream) {
    let p = quote!(::backstage::__private);
    let json = |ty: &syn::Type| {
        (
            quote!(#ty),
            quote!((&&&#p::client::ClientProbe::<#ty>::new()).read(response).await),
        )
    };
    let Some(answer) = answer else {
        return (
            quote!(()),
            quote!({
                let _ = response;
                ::core::result::Result::Ok(())
            }),
        );
    };
    // A borrowed type cannot be read into (serde's `DeserializeOwned`): its bytes instead.
    let borrowed = |ty: &syn::Type| {
        quote!(#ty).into_iter().any(|token| {
            matches!(&token, proc_macro2::TokenTree::Punct(p) if p.as_char() == '&' || p.as_char() == '\'')
        })
    };
    let json = |ty: &syn::Type| {
        if borrowed(ty) {
            (
                quote!(#p::axum::body::Bytes),
                quote!(#p::client::bytes(response).await),
            )
        } else {
            json(ty)
        }
    };
    if let Some(ty) = extractor_arg(answer, &["Json"]) {
        return json(ty);
    }
    match answer {
        syn::Type::Tuple(tuple) if tuple.elems.is_empty() => (
            quote!(()),
            quote!({
                let _ = response;
                ::core::result::Result::Ok(())
            }),
        ),
        syn::Type::Tuple(tuple) if tuple.elems.len() == 2 => {
            match tuple
                .elems
                .iter()
                .nth(1)
                .and_then(|ty| extractor_arg(ty, &["Json"]))
            {
                Some(ty) => json(ty),
                None => (
                    quote!(#p::axum::body::Bytes),
                    quote!(#p::client::bytes(response).await),
                ),
            }
        }
        syn::Type::Path(path)
            if path
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "StatusCode") =>
        {
            (
                quote!(#p::client::StatusCode),
                quote!(::core::result::Result::Ok(response.status())),
            )
        }
        syn::Type::Path(path)
            if path
                .path
                .segments
                .last()
                .is_some_and(|s| s.ident == "String") =>
        {
            (
                quote!(::std::string::String),
                quote!(#p::client::text(response).await),
            )
        }
        syn::Type::Reference(reference) if matches!(&*reference.elem, syn::Type::Path(p) if p.path.is_ident("str")) => {
            (
                quote!(::std::string::String),
                quote!(#p::client::text(response).await),
            )
        }
        _ => (
            quote!(#p::axum::body::Bytes),
            quote!(#p::client::bytes(response).await),
        ),
    }
}

/// A doc comment's first paragraph (the summary) and the rest (the description).
fn summary_and_description(docs: &str) -> (String, String) {
    match docs.split_once("\n\n") {
        Some((summary, rest)) => (summary.replace('\n', " "), rest.trim().to_owned()),
        None => (docs.replace('\n', " "), String::new()),
    }
}

/// A function that describes the route's operation from its parameter and return types: each
/// type is probed for the most specific description that applies (see
/// `backstage::openapi::Probe`).
fn describe(method: &Method) -> TokenStream {
    let p = quote!(::backstage::__private);
    let params = method
        .params
        .iter()
        .filter(|param| !param.inject)
        .map(|param| &param.ty)
        .filter(|ty| !mentions_impl(ty))
        .map(|ty| quote!((&&&&#p::openapi::Probe::<#ty>::new()).describe(op);));
    let answer = match &method.output {
        syn::ReturnType::Default => Some(quote!(())),
        syn::ReturnType::Type(_, ty) => {
            let ty = result_ok_type(&method.output).unwrap_or(ty);
            (!mentions_impl(ty)).then(|| quote!(#ty))
        }
    };
    let respond = match answer {
        Some(ty) => quote!((&&&&#p::openapi::Probe::<#ty>::new()).respond(op);),
        None => quote!((&&&#p::openapi::Probe::<()>::new()).respond_other(op);),
    };
    quote! {{
        fn __describe(op: &mut #p::Operation<'_>) {
            #[allow(unused_imports)]
            use #p::openapi::{
                DescribeOpen as _, DescribeOther as _, DescribeTyped as _, RespondOpen as _,
                RespondOther as _, RespondTyped as _,
            };
            #(#params)*
            #respond
        }
        __describe
    }}
}

/// Whether `ty` is or holds an `impl Trait`, which cannot be named in a turbofish.
fn mentions_impl(ty: &syn::Type) -> bool {
    quote!(#ty)
        .into_iter()
        .any(|token| matches!(&token, proc_macro2::TokenTree::Ident(i) if i == "impl"))
}

/// The names [`injections`] binds: `__injectN` for each `#[inject]` parameter.
fn injected_names(method: &Method) -> Vec<syn::Ident> {
    method
        .params
        .iter()
        .enumerate()
        .filter(|(_, param)| param.inject)
        .map(|(i, _)| format_ident!("__inject{}", i))
        .collect()
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
    audited: Option<&(syn::LitStr, String)>,
) -> TokenStream {
    let p = quote!(::backstage::__private);
    let ident = &method.ident;
    let injected = injections(method);
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
    // An audited route records its event once the caller is known, and its outcome from the
    // answer, including answers to requests its parameters refused.
    let (auditor, answer) = match audited {
        Some((event, severity)) => (
            quote! {
                let __auditor = <#p::Auditor as #p::Inject>::inject(ctx).await?;
            },
            quote! {
                let __event = __auditor.create_event(
                    #event,
                    const { #p::Severity::named(#severity) },
                    #p::AuditRequest::of(&parts),
                    (),
                );
                let response: #p::axum::response::Response = async move {
                    #(#extraction)*
                    #call
                }
                .await;
                __event.finish(&response);
                response
            },
        ),
        None => (quote!(), quote! { #(#extraction)* #call }),
    };

    quote! {
        {
            #injected
            #auditor
            let this = ::core::clone::Clone::clone(&this);
            let gate = ::core::clone::Clone::clone(&gate);
            router.route(
                #path,
                #p::axum::routing::on(
                    #p::method_filter(#method_upper),
                    // axum copies this closure for each request and calls the copy once
                    // (`FnOnce`): what it captured moves into the request's future.
                    move |request: #p::axum::extract::Request| {
                        async move {
                            let (mut parts, body) = request.into_parts();
                            if let ::core::result::Result::Err(response) = gate.check(#policy, &mut parts).await {
                                return response;
                            }
                            #answer
                        }
                    },
                ),
            )
        }
    }
}

/// Registers one `#[action]` method with the plugin's actions registry: its input (the one
/// parameter that is neither a service nor `Credentials`, else no input), its output (the `T`
/// of `Result<T>`), and a handler that calls the method with the injected services and the
/// caller's credentials, narrowed to the principal the method asks for.
fn action(method: &Method, self_ty: &syn::Type) -> TokenStream {
    let p = quote!(::backstage::__private);
    let Kind::Action(args, _, description) = &method.kind else {
        return quote!();
    };
    let options = action_options(args);
    let (Some(name), Some(title)) = (options.name, options.title) else {
        return quote!();
    };
    let ident = &method.ident;
    let injected = injections(method);
    let injected_names = injected_names(method);
    let input_ty = method
        .params
        .iter()
        .find(|param| !param.inject && param.credentials.is_none())
        .map(|param| param.ty.clone());
    let input = match &input_ty {
        Some(ty) => quote!(#ty),
        None => quote!(#p::NoInput),
    };
    // The types are checked where the user wrote them, once.
    let input_parts = match &input_ty {
        Some(ty) => quote_spanned!(ty.span()=> #p::action_input::<#ty>()),
        None => quote!(#p::action_input::<#p::NoInput>()),
    };
    let Some(output_ty) = result_ok_type(&method.output) else {
        return quote!();
    };
    let output_parts = quote_spanned!(output_ty.span()=> #p::action_output::<#output_ty>());
    let args = method.params.iter().enumerate().map(|(i, param)| {
        if param.inject {
            let name = format_ident!("__inject{}", i);
            quote!(#name)
        } else if let Some(principal) = param.credentials {
            let ty = match principal {
                super::parse::Principal::User => quote!(#p::UserPrincipal),
                super::parse::Principal::Service => quote!(#p::ServicePrincipal),
                super::parse::Principal::Any => quote!(#p::Principal),
            };
            quote!(__credentials.narrow::<#ty>()?)
        } else {
            quote!(__input)
        }
    });
    let flags = options.flags.iter().map(|(flag, value)| {
        let flag = format_ident!("{}", flag);
        quote!(.#flag(#value))
    });
    let call = quote_spanned!(ident.span()=> <#self_ty>::#ident(&this, #(#args),*).await);
    quote! {
        {
            #injected
            let this = ::core::clone::Clone::clone(&this);
            registry.register(
                #p::Action::from_parts(
                    #name,
                    #title,
                    #description,
                    #input_parts,
                    #output_parts,
                    move |__input: #input, __credentials: #p::Credentials| {
                        let this = ::core::clone::Clone::clone(&this);
                        #(let #injected_names = ::core::clone::Clone::clone(&#injected_names);)*
                        async move {
                            let _ = &__input;
                            #call
                        }
                    },
                )
                #(#flags)*
            )?;
        }
    }
}
