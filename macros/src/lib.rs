//! The procedural macros of backstage-rs. Use them through the `backstage` crate
//! (`use backstage::prelude::*;`), which re-exports them; generated code names only
//! `::backstage::__private`.
//!
//! Each macro is a pipeline: `parse` builds a small model that keeps the user's tokens for
//! their spans, `validate` holds every rule and reports all violations at once, `expand` only
//! generates code. On error the item is still emitted beside the errors, so one mistake does
//! not cascade into "cannot find" errors.

use proc_macro::TokenStream;

mod common;
mod companions;
mod extension_point;
mod fallback;
mod ids;
mod item_fn;
mod migrations;
mod module;
mod plugin;
mod portable_row;
mod routes;
mod service;
mod service_factory;
mod structs;

/// Declares a backend plugin: `#[backend_plugin(id = "carmen")]` on a struct whose
/// `#[inject]` fields are its dependencies. Other fields are built with `Default`.
#[proc_macro_attribute]
pub fn backend_plugin(attr: TokenStream, item: TokenStream) -> TokenStream {
    plugin::backend_plugin(attr.into(), item.into()).into()
}

/// Declares a plugin's routes and `#[init]`: `#[routes]` on an inherent `impl` block of the
/// plugin, with `#[route(get, "/path", auth = "...")]` on `async fn(&self, ...)` methods.
#[proc_macro_attribute]
pub fn routes(attr: TokenStream, item: TokenStream) -> TokenStream {
    routes::routes(attr.into(), item.into()).into()
}

/// Declares a custom service: `#[service(scope = "plugin")]` (once per plugin that injects it,
/// the default) or `#[service(scope = "root")]` (once per backend) on a `Clone` struct whose
/// `#[inject]` fields are its dependencies. Other fields are built with `Default`.
#[proc_macro_attribute]
pub fn service(attr: TokenStream, item: TokenStream) -> TokenStream {
    service::service(attr.into(), item.into()).into()
}

/// Declares a module: `#[backend_module(plugin = "carmen", id = "my-module")]` on a struct
/// whose `#[inject]` fields are its dependencies, which may include its plugin's extension
/// points. Its `#[routes]` block may have an `#[init]` and routes, served under the plugin.
#[proc_macro_attribute]
pub fn backend_module(attr: TokenStream, item: TokenStream) -> TokenStream {
    module::backend_module(attr.into(), item.into()).into()
}

/// Declares an extension point: `#[extension_point(plugin = "carmen")]` on a `Clone + Default`
/// type the plugin shares with its modules (one instance per plugin). `module = "..."` when a
/// module of the plugin provides it.
#[proc_macro_attribute]
pub fn extension_point(attr: TokenStream, item: TokenStream) -> TokenStream {
    extension_point::extension_point(attr.into(), item.into()).into()
}

/// Replaces a service's default factory in every backend that links the crate:
/// `#[service_factory] async fn user_info(#[inject] config: RootConfig) -> Result<UserInfo>`.
#[proc_macro_attribute]
pub fn service_factory(attr: TokenStream, item: TokenStream) -> TokenStream {
    service_factory::service_factory(attr.into(), item.into()).into()
}

/// An async test on the runtime backstage uses: `#[backstage::test] async fn it_works() {}`.
/// A plugin crate needs no other dev-dependency to test itself.
#[proc_macro_attribute]
pub fn test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let attr = proc_macro2::TokenStream::from(attr);
    let item = proc_macro2::TokenStream::from(item);
    let args = if attr.is_empty() {
        quote::quote!()
    } else {
        quote::quote!(#attr,)
    };
    quote::quote! {
        #[::backstage::__private::tokio::test(#args crate = "::backstage::__private::tokio")]
        #item
    }
    .into()
}

/// Marks a route handler. Only meaningful inside a `#[routes]` block, which reads it.
#[proc_macro_attribute]
pub fn route(_attr: TokenStream, item: TokenStream) -> TokenStream {
    common::outside_routes("route", item.into()).into()
}

/// Marks an action, a typed operation offered to AI agents and other plugins:
/// `#[action(name = "create-todo", title = "Create a todo")]` on an `async fn(&self, input: T,
/// creds: Credentials) -> Result<O>`, whose doc comment is its description. Only meaningful
/// inside a `#[routes]` block, which reads it.
#[proc_macro_attribute]
pub fn action(_attr: TokenStream, item: TokenStream) -> TokenStream {
    common::outside_routes("action", item.into()).into()
}

/// Marks a plugin's initialiser. Only meaningful inside a `#[routes]` block, which reads it.
#[proc_macro_attribute]
pub fn init(_attr: TokenStream, item: TokenStream) -> TokenStream {
    common::outside_routes("init", item.into()).into()
}

/// Embeds a plugin's SQL migrations: `backstage::migrate!("./migrations")`, relative to the
/// crate's `Cargo.toml`. Files are `<version>_<description>.sql`, or
/// `<version>_<description>.<engine>.sql` (`postgres`, `mysql`, `sqlite`) for one engine.
#[proc_macro]
pub fn migrate(input: TokenStream) -> TokenStream {
    migrations::migrate(input.into()).into()
}

/// A struct that `Database::fetch_all` and its siblings read on every engine:
/// `#[derive(PortableRow)]` implements sqlx's `FromRow` for the SQLite, PostgreSQL and MySQL row
/// types and `InlineRow` for reads on SQLite's calling thread. Fields are read by column name
/// (`#[sqlx(rename = "...")]` and `#[sqlx(rename_all = "...")]` as sqlx reads them), fields of
/// tuple structs by position.
#[proc_macro_derive(PortableRow, attributes(sqlx))]
pub fn portable_row(item: TokenStream) -> TokenStream {
    portable_row::derive(item.into()).into()
}
