//! HTTP: the root router, plugin routers, auth policies, error bodies and security headers.
//!
//! Plugins are served under `/api/<pluginId>`. Each request passes, in order, what Backstage's
//! root router puts it through: the security headers (helmet's defaults), CORS
//! (`backend.cors`; preflights are answered there), compression, the request log and rate
//! limits, the dispatch by plugin id (unknown plugin: 404 with an empty body), the route's auth
//! policy (secure by default: user or service credentials, else 401), the handler, and the
//! error layer that writes Backstage's error body with the request's method and URL as the
//! plugin's router sees it. A panicking handler answers 500 and the server keeps serving. An
//! unknown path or method inside a plugin is, past its auth policy, 404 with an empty body.
//!
//! Auth policies: a `#[route]` carries its own policy, for exactly its method and path. Routers
//! added by hand through [`HttpRouter::use_router`] are guarded by the plugin's path policies
//! ([`HttpRouter::add_auth_policy`]), which match as Backstage's do: a policy path matches
//! itself and every path below it, segment by segment, `{param}` matching any one segment,
//! letters compared case-insensitively; `/` matches everything.
//!
//! `user-cookie` routes accept what default routes accept, and also a user's limited token in
//! the `backstage-auth` cookie. Every plugin also serves Backstage's auth endpoints:
//! `/.backstage/auth/v1/jwks.json` (its public keys, open to all) and
//! `/.backstage/auth/v1/cookie` (GET issues the user cookie, DELETE clears it).

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Root, Service, ServiceContext};

mod compression;
pub(crate) mod connection;
pub(crate) mod cors;
pub(crate) mod dispatch;
pub(crate) mod gate;
mod joined_writes;
mod json;
mod path_policy;
pub(crate) mod policies;
pub(crate) mod rate_limit;
mod request_heads;
mod sections;
mod security_headers;
pub(crate) mod serve;
mod timer;

pub use crate::plugin::AuthPolicyKind;
pub use json::Json;
pub use path_policy::PathPolicy;

/// What a path policy allows, as in Backstage's `addAuthPolicy({ path, allow })`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Allow {
    /// No credentials needed.
    Unauthenticated,
    /// A user cookie is enough.
    UserCookie,
}

/// The `httpRouter` service: lets a plugin serve hand-written axum routers next to its
/// `#[routes]`, and open paths with auth policies.
///
/// ```
/// use backstage::prelude::*;
/// use backstage::http::Allow;
///
/// #[backend_plugin(id = "legacy")]
/// pub struct Legacy {
///     #[inject]
///     router: HttpRouter,
/// }
///
/// #[routes]
/// impl Legacy {
///     #[init]
///     async fn init(&self) -> Result<()> {
///         let router = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
///         self.router.use_router(router);
///         self.router.add_auth_policy("/ping", Allow::Unauthenticated)
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Clone)]
pub struct HttpRouter {
    state: Arc<Mutex<RouterParts>>,
}

#[derive(Default)]
pub(crate) struct RouterParts {
    pub(crate) routers: Vec<axum::Router>,
    pub(crate) policies: Vec<PathPolicy>,
}

impl fmt::Debug for HttpRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HttpRouter")
    }
}

impl HttpRouter {
    /// Serves `router` under the plugin's base path, guarded by the plugin's path policies.
    pub fn use_router(&self, router: axum::Router) {
        self.lock().routers.push(router);
    }

    /// Opens `path` (and everything below it) for `allow`.
    pub fn add_auth_policy(&self, path: &str, allow: Allow) -> Result<()> {
        let policy = PathPolicy::new(path, allow)?;
        self.lock().policies.push(policy);
        Ok(())
    }

    pub(crate) fn take(&self) -> RouterParts {
        std::mem::take(&mut *self.lock())
    }

    pub(crate) fn policies(&self) -> Vec<PathPolicy> {
        self.lock().policies.clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, RouterParts> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Service for HttpRouter {
    type Scope = PluginScoped;
    const ID: &'static str = "core.httpRouter";
    fn create<'a>(_ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async {
            Ok(HttpRouter {
                state: Arc::default(),
            })
        })
    }
}

/// The `rootHttpRouter` service: serves routers outside `/api`, at a path of the backend's.
///
/// ```
/// # async fn example(root: backstage::RootHttpRouter) -> backstage::Result<()> {
/// root.use_router("/metrics", axum::Router::new().route("/", axum::routing::get(|| async { "up 1" })))?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RootHttpRouter {
    routers: Arc<Mutex<Vec<(String, axum::Router)>>>,
}

impl fmt::Debug for RootHttpRouter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RootHttpRouter")
    }
}

impl RootHttpRouter {
    /// Serves `router` at `path`. Paths under `/api/` and `/.backstage/` belong to the backend.
    pub fn use_router(&self, path: &str, router: axum::Router) -> Result<()> {
        if !path.starts_with('/') {
            return Err(Error::input(format!(
                "root router paths start with '/'; write '/{path}'"
            )));
        }
        if path == "/api" || path.starts_with("/api/") || path.starts_with("/.backstage") {
            return Err(Error::input(format!(
                "the root router path '{path}' is reserved for plugins and health checks"
            )));
        }
        self.routers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((path.to_owned(), router));
        Ok(())
    }

    pub(crate) fn take(&self) -> Vec<(String, axum::Router)> {
        std::mem::take(&mut *self.routers.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl Service for RootHttpRouter {
    type Scope = Root;
    const ID: &'static str = "core.rootHttpRouter";
    fn create<'a>(_ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async {
            Ok(RootHttpRouter {
                routers: Arc::default(),
            })
        })
    }
}

crate::plugin::register!(HttpRouter, root RootHttpRouter);
