//! Backstage backend plugins in Rust.
//!
//! A plugin is a struct with [`backend_plugin`]; its `#[inject]` fields are its dependencies.
//! Its routes are `async` methods in a [`routes`] block. Linking the plugin's crate into a binary
//! whose `main` calls [`start`] is all it takes to serve it under `/api/<pluginId>`, with
//! Backstage's auth, error bodies, health checks and config files.
//!
//! ```
//! use backstage::prelude::*;
//! use serde::Serialize;
//!
//! #[derive(Serialize)]
//! pub struct Health { status: &'static str }
//!
//! /// The carmen plugin.
//! #[backend_plugin(id = "carmen")]
//! pub struct Carmen {
//!     #[inject]
//!     logger: Logger,
//! }
//!
//! #[routes]
//! impl Carmen {
//!     #[route(get, "/health", auth = "unauthenticated")]
//!     async fn health(&self) -> Json<Health> {
//!         self.logger.info("PONG!");
//!         Json(Health { status: "ok" })
//!     }
//!
//!     #[route(get, "/items/{id}")]                      // secure by default
//!     async fn item(&self, Path(id): Path<i64>, _creds: Credentials) -> Result<String> {
//!         Err(Error::not_found(format!("no item {id}")))
//!     }
//! }
//! # fn main() {}
//! ```
//!
//! See the README for a tour of the DSL and `DESIGN.md` for the architecture.

#![cfg_attr(not(test), warn(clippy::unwrap_used))]

pub mod actions;
mod answer;
pub mod auditor;
pub mod auth;
pub mod backend;
pub mod cache;
pub mod config;
pub mod database;
pub mod dev;
pub mod discovery;
mod error;
pub mod http;
mod json_schema;
pub mod lifecycle;
pub mod logging;
pub mod openapi;
pub mod permissions;
pub mod plugin;
pub mod scheduler;
pub mod testing;
pub mod url_reader;

pub use auditor::Auditor;
pub use auth::AuthenticateOptions;
pub use auth::{
    AccessRestrictions, Auth, Authenticator, BackstageUserInfo, Credentials, HttpAuth,
    PluginClient, PluginRequestToken, Principal, ServicePrincipal, StaticTokens, UserCookie,
    UserInfo, UserPrincipal,
};
pub use backend::{Backend, BackendBuilder, InstanceMetadata, start};
pub use backstage_macros::{
    action, backend_module, backend_plugin, extension_point, init, migrate, route, routes, service,
    service_factory, test,
};
pub use cache::Cache;
pub use config::{PluginConfig, RootConfig, Secret};
pub use database::Database;
pub use discovery::{Discovery, PluginMetadata};
pub use error::{Error, ErrorKind, Result};
pub use http::{HttpRouter, Json, RootHttpRouter};
pub use lifecycle::{Health, Lifecycle, RootHealth, RootLifecycle};
pub use logging::{Logger, RootLogger};
pub use permissions::Permissions;
pub use plugin::Multi;
pub use scheduler::Scheduler;
/// sqlx, as this crate uses it: write queries against [`Database::pool`] with this one.
pub use sqlx;
pub use url_reader::UrlReader;

/// With the feature `jemalloc`, which a backend binary turns on (`cargo backstage new app`'s
/// does), the program's memory allocator is jemalloc: a request allocates a few dozen times,
/// and jemalloc's allocations cost a fraction of the system allocator's. Plugin crates leave it
/// off, so that the program chooses. (With MSVC, which jemalloc does not build with, the
/// feature leaves the system allocator.)
#[cfg(all(
    feature = "jemalloc",
    not(feature = "mimalloc"),
    not(target_env = "msvc")
))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

/// With the feature `mimalloc`, the allocator of earlier versions' backends: mimalloc. Its Rust
/// binding asks for aligned memory on every allocation, which costs a `/health` request some
/// 900 instructions more than jemalloc.
#[cfg(all(feature = "mimalloc", not(feature = "jemalloc")))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(all(feature = "jemalloc", feature = "mimalloc"))]
compile_error!(
    "the `backstage` features `jemalloc` and `mimalloc` each choose the program's allocator: \
     turn on one of them (the backend `cargo backstage new app` writes turns on `jemalloc`)"
);

/// schemars, as this crate uses it: the JSON Schemas of actions' inputs and outputs. Derive
/// `JsonSchema` through it with `#[schemars(crate = "backstage::schemars")]`, or depend on
/// `schemars` 1 yourself.
pub use schemars;

/// axum, as this crate uses it: build hand-written routers and extractors with this one.
pub use axum;

/// What a plugin author needs in scope: the macros, the core services, `Error`/`Result`, and
/// axum's extractors and responses.
///
/// ```
/// use backstage::prelude::*;
/// fn not_found(id: i64) -> Result<Json<()>> {
///     Err(Error::not_found(format!("no item {id}")))
/// }
/// ```
pub mod prelude {
    pub use crate::Database;
    pub use crate::Json;
    pub use crate::axum;
    pub use crate::database::PortableRow;
    pub use crate::permissions::Permission;
    pub use crate::scheduler::TaskSchedule;
    pub use crate::{
        Auditor, Auth, Cache, Credentials, Discovery, Error, ErrorKind, Health, HttpAuth,
        HttpRouter, Lifecycle, Logger, Permissions, PluginClient, PluginConfig, PluginMetadata,
        Principal, Result, RootConfig, RootHealth, RootHttpRouter, RootLifecycle, RootLogger,
        Scheduler, Secret, ServicePrincipal, UrlReader, UserInfo, UserPrincipal, action,
        backend_module, backend_plugin, extension_point, init, route, routes, service,
        service_factory,
    };
    pub use axum::extract::{Path, Query};
    pub use axum::http::{HeaderMap, StatusCode};
    pub use axum::response::IntoResponse;
}

/// What the macros' generated code uses. Not a public API: it changes without notice.
#[doc(hidden)]
pub mod __private {
    pub use crate::database::{InlineColumns, InlineRow};
    pub use crate::http::AuthPolicyKind;
    pub use crate::http::gate::{Gate, Respond, from_parts, from_request, respond};
    pub use crate::plugin::{
        AnyPlugin, BackendModule, BackendPlugin, BoxFuture, Dependency, ExtensionPointRegistration,
        InitRegistration, Inject, ModuleRegistration, MultitonRegistration, OverrideRegistration,
        PluginRegistration, PluginScoped, Root, RootInjectable, RouteInfo, RoutesRegistration,
        Service, ServiceContext, ServiceRegistration,
    };
    pub use sqlx;

    /// Fails compilation when an injected extension point belongs to a plugin other than
    /// `plugin`; generated per `#[inject]` of plugins and modules, spanned on the field's type.
    pub const fn check_owner(owner: Option<&str>, wrong_plugin: &str, plugin: &str) {
        if let Some(owner) = owner
            && !str_eq(owner, plugin)
        {
            panic!("{}", wrong_plugin);
        }
    }

    const fn str_eq(a: &str, b: &str) -> bool {
        let (a, b) = (a.as_bytes(), b.as_bytes());
        if a.len() != b.len() {
            return false;
        }
        let mut i = 0;
        while i < a.len() {
            if a[i] != b[i] {
                return false;
            }
            i += 1;
        }
        true
    }

    /// Boxes a multiton implementation as what `Multi<T>` collects.
    pub fn multiton_item<T: ?Sized + Send + Sync + 'static>(
        item: std::sync::Arc<T>,
    ) -> std::boxed::Box<dyn std::any::Any + Send> {
        std::boxed::Box::new(item)
    }

    /// Type-erases a replacement service.
    pub fn override_item<T: Service>(item: T) -> std::sync::Arc<dyn std::any::Any + Send + Sync> {
        std::sync::Arc::new(item)
    }

    /// Requires `T` to be injectable into the root service `C`; generated per field of a root
    /// service, spanned on the field's type.
    pub const fn assert_root_injectable<T: RootInjectable<C>, C>() {}

    pub use crate::actions::{Action, ActionsRegistry, NoInput, action_input, action_output};
    pub use crate::auditor::{AuditRequest, Auditor, Severity};
    pub use crate::plugin::{Operation, RoutesOwner};

    /// What the typed clients `#[routes]` generates are made of.
    pub mod client {
        pub use crate::auth::routes_client::{
            ClientProbe, ReadOther, ReadTyped, WriteOther, WriteTyped, bytes, send, text,
        };
        pub use crate::auth::{PluginClient, PrincipalType};
        pub use axum::http::{Method, StatusCode};
    }
    pub use serde_json;

    /// The probes the `describe` functions `#[routes]` generates call.
    pub mod openapi {
        pub use crate::openapi::{
            DescribeOpen, DescribeOther, DescribeTyped, Probe, RespondOpen, RespondOther,
            RespondTyped, document,
        };
    }
    pub use crate::{Credentials, Principal, ServicePrincipal, UserPrincipal};
    pub use crate::{Error, Result};
    pub use axum;
    pub use inventory;
    pub use tokio;

    /// The plugin instance behind a type-erased handle.
    pub fn downcast<P: Send + Sync + 'static>(plugin: AnyPlugin) -> Result<std::sync::Arc<P>> {
        plugin.downcast::<P>().map_err(|_| {
            Error::internal(format!(
                "the plugin instance is not a {}",
                std::any::type_name::<P>()
            ))
        })
    }

    /// What an `#[init]` function may return: `()` or `backstage::Result<()>`.
    #[diagnostic::on_unimplemented(
        message = "an #[init] function returns `()` or `backstage::Result<()>`, not `{Self}`",
        label = "not `()` or `Result<()>`"
    )]
    pub trait InitOutput {
        /// The result the backend acts on.
        fn into_init_result(self) -> Result<()>;
    }
    impl InitOutput for () {
        fn into_init_result(self) -> Result<()> {
            Ok(())
        }
    }
    impl InitOutput for Result<()> {
        fn into_init_result(self) -> Result<()> {
            self
        }
    }

    /// Fields of a plugin without `#[inject]` are built with `Default`.
    #[diagnostic::on_unimplemented(
        message = "the field type `{Self}` has no `#[inject]` and does not implement `Default`",
        label = "neither injected nor `Default`",
        note = "fields of a plugin are either `#[inject]` services or built with `Default::default()`: mark the field `#[inject]` or implement `Default` for `{Self}`"
    )]
    pub trait FieldDefault: Sized {
        /// The default value.
        fn field_default() -> Self;
    }
    impl<T: Default> FieldDefault for T {
        fn field_default() -> Self {
            T::default()
        }
    }

    /// Builds a `MethodFilter` from a method name the macro validated.
    pub fn method_filter(method: &str) -> axum::routing::MethodFilter {
        use axum::routing::MethodFilter;
        match method {
            "GET" => MethodFilter::GET,
            "POST" => MethodFilter::POST,
            "PUT" => MethodFilter::PUT,
            "DELETE" => MethodFilter::DELETE,
            "PATCH" => MethodFilter::PATCH,
            "HEAD" => MethodFilter::HEAD,
            "OPTIONS" => MethodFilter::OPTIONS,
            _ => MethodFilter::TRACE,
        }
    }
}
