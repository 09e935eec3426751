//! What a backend serves, as a table: every route with its method, full path and auth policy.
//!
//! Read from the `#[routes]` registrations of the selected plugins and modules, plus the
//! endpoints the backend itself adds to every plugin, so it is known before anything starts
//! (`--list-routes`) and logged at debug level once the backend serves. Routers added by hand
//! with [`crate::HttpRouter::use_router`] are opaque axum routers: their paths are guarded by
//! the plugin's path policies and are not listed.

use std::fmt::Write as _;

use crate::http::AuthPolicyKind;
use crate::plugin::registry::routes_of;
use crate::plugin::{ModuleRegistration, PluginRegistration, Service};

/// One route a backend serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct MountedRoute {
    /// `GET`, `POST`, ...
    pub(crate) method: &'static str,
    /// The full path, `/api/<pluginId>/items/{id}`.
    pub(crate) path: String,
    /// The route's auth policy.
    pub(crate) auth: AuthPolicyKind,
    /// Where it comes from: the handler and its `file:line`, or "backend".
    pub(crate) source: String,
}

/// The backend's own endpoints outside `/api`.
const ROOT_ENDPOINTS: &[(&str, &str)] = &[
    ("GET", "/.backstage/health/v1/liveness"),
    ("GET", "/.backstage/health/v1/readiness"),
];

/// Every route of `plugins` and `modules`, plugin by plugin (sorted by id), each plugin's own
/// routes first, then its modules', then the backend's endpoints; the health checks last.
pub(crate) fn mounted_routes(
    plugins: &[&'static PluginRegistration],
    modules: &[&'static ModuleRegistration],
) -> Vec<MountedRoute> {
    let mut table = Vec::new();
    for plugin in plugins {
        let base = format!("/api/{}", plugin.id);
        let owners = std::iter::once((plugin.type_id)()).chain(
            modules
                .iter()
                .filter(|m| m.plugin_id == plugin.id)
                .map(|m| (m.type_id)()),
        );
        let mut actions = false;
        for owner in owners {
            for block in routes_of(owner) {
                actions |= block.actions.is_some();
                for route in block.routes {
                    table.push(MountedRoute {
                        method: route.method,
                        path: format!("{base}{}", route.path),
                        auth: route.auth,
                        source: format!("{} ({}:{})", route.handler, route.file, route.line),
                    });
                }
            }
        }
        let injects = |id: &str| plugin.dependencies.iter().any(|d| d.service == id);
        let actions = if actions || injects(<crate::actions::ActionsRegistry as Service>::ID) {
            crate::actions::endpoints::ENDPOINTS
        } else {
            &[]
        };
        let permissions = if injects(<crate::permissions::PermissionsRegistry as Service>::ID) {
            crate::permissions::endpoints::ENDPOINTS
        } else {
            &[]
        };
        let openapi = if crate::openapi::served_by_routes(plugin.id, (plugin.type_id)()) {
            &[]
        } else {
            crate::openapi::ENDPOINTS
        };
        let endpoints = crate::auth::endpoints::ENDPOINTS
            .iter()
            .chain(crate::scheduler::endpoints::ENDPOINTS)
            .chain(actions)
            .chain(permissions)
            .chain(openapi);
        for (method, path, auth) in endpoints {
            table.push(MountedRoute {
                method,
                path: format!("{base}{path}"),
                auth: *auth,
                source: "backend".to_owned(),
            });
        }
    }
    for (method, path) in ROOT_ENDPOINTS {
        table.push(MountedRoute {
            method,
            path: (*path).to_owned(),
            auth: AuthPolicyKind::Unauthenticated,
            source: "backend".to_owned(),
        });
    }
    table
}

/// The table as aligned text, one route per line under a header.
pub(crate) fn render(routes: &[MountedRoute]) -> String {
    let path_width = routes
        .iter()
        .map(|r| r.path.len())
        .max()
        .unwrap_or(0)
        .max("PATH".len());
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<7} {:<path_width$} {:<15} SOURCE",
        "METHOD", "PATH", "AUTH"
    );
    for route in routes {
        let _ = writeln!(
            out,
            "{:<7} {:<path_width$} {:<15} {}",
            route.method,
            route.path,
            route.auth.as_str(),
            route.source
        );
    }
    out.push_str(
        "\nRouters added with HttpRouter::use_router are not listed: their paths follow the plugin's auth policies (HttpRouter::add_auth_policy).\n",
    );
    out
}

/// Logs every route at debug level, one line each.
pub(crate) fn log(routes: &[MountedRoute]) {
    if !tracing::enabled!(tracing::Level::DEBUG) {
        return;
    }
    for route in routes {
        tracing::debug!(
            "Route {} {} (auth: {}) from {}",
            route.method,
            route.path,
            route.auth.as_str(),
            route.source
        );
    }
}
