//! The `lifecycle`, `rootLifecycle` and `rootHealth` services: start-up and shutdown hooks,
//! and the health endpoints' state.
//!
//! Order at start-up: every plugin initialises, then each plugin's start-up hooks run, then
//! the root start-up hooks, then readiness turns 200. At shutdown readiness turns 503 first,
//! then plugin shutdown hooks run, then root shutdown hooks. A failing shutdown hook is logged
//! and the others still run.

use std::fmt;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::plugin::{BoxFuture, PluginScoped, Root, Service, ServiceContext};

type Hook = Box<dyn FnOnce() -> BoxFuture<'static, Result<()>> + Send>;

#[derive(Default)]
pub(crate) struct Hooks {
    startup: Mutex<Vec<Hook>>,
    shutdown: Mutex<Vec<Hook>>,
}

impl Hooks {
    fn add(list: &Mutex<Vec<Hook>>, hook: Hook) {
        list.lock().unwrap_or_else(|p| p.into_inner()).push(hook);
    }

    pub(crate) fn take_startup(&self) -> Vec<Hook> {
        std::mem::take(&mut *self.startup.lock().unwrap_or_else(|p| p.into_inner()))
    }

    pub(crate) fn take_shutdown(&self) -> Vec<Hook> {
        std::mem::take(&mut *self.shutdown.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

fn boxed<F, Fut>(hook: F) -> Hook
where
    F: FnOnce() -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<()>> + Send + 'static,
{
    Box::new(move || Box::pin(hook()))
}

macro_rules! lifecycle_service {
    ($(#[$doc:meta])* $name:ident, $scope:ty, $id:literal) => {
        $(#[$doc])*
        #[derive(Clone, Default)]
        pub struct $name {
            pub(crate) hooks: Arc<Hooks>,
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(stringify!($name))
            }
        }

        impl $name {
            /// Runs `hook` once the backend has started.
            pub fn add_startup_hook<F, Fut>(&self, hook: F)
            where
                F: FnOnce() -> Fut + Send + 'static,
                Fut: std::future::Future<Output = Result<()>> + Send + 'static,
            {
                Hooks::add(&self.hooks.startup, boxed(hook));
            }

            /// Runs `hook` when the backend shuts down.
            pub fn add_shutdown_hook<F, Fut>(&self, hook: F)
            where
                F: FnOnce() -> Fut + Send + 'static,
                Fut: std::future::Future<Output = Result<()>> + Send + 'static,
            {
                Hooks::add(&self.hooks.shutdown, boxed(hook));
            }
        }

        impl Service for $name {
            type Scope = $scope;
            const ID: &'static str = $id;
            fn create<'a>(_ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
                Box::pin(async { Ok(Self::default()) })
            }
        }
    };
}

lifecycle_service!(
    /// The `lifecycle` service of one plugin.
    ///
    /// ```
    /// let lifecycle = backstage::Lifecycle::default();
    /// lifecycle.add_shutdown_hook(|| async { Ok(()) });
    /// ```
    Lifecycle, PluginScoped, "core.lifecycle"
);
lifecycle_service!(
    /// The `rootLifecycle` service: hooks of the whole backend.
    ///
    /// ```
    /// let lifecycle = backstage::RootLifecycle::default();
    /// lifecycle.add_startup_hook(|| async { Ok(()) });
    /// ```
    RootLifecycle, Root, "core.rootLifecycle"
);

const STARTED: u8 = 1;
const STOPPING: u8 = 2;

/// What a plugin's own health route answers, as Backstage's template plugin does:
/// `{"status":"ok"}`.
///
/// ```
/// use backstage::prelude::*;
///
/// #[backend_plugin(id = "carmen")]
/// pub struct Carmen;
///
/// #[routes]
/// impl Carmen {
///     #[route(get, "/health", auth = "unauthenticated")]
///     async fn health(&self) -> Json<Health> {
///         Json(Health::ok())
///     }
/// }
/// assert_eq!(serde_json::to_string(&Health::ok()).unwrap(), r#"{"status":"ok"}"#);
/// ```
#[derive(
    Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, schemars::JsonSchema,
)]
pub struct Health {
    /// `"ok"` when healthy.
    pub status: String,
}

impl Health {
    /// `{"status":"ok"}`.
    pub fn ok() -> Self {
        Health {
            status: "ok".to_owned(),
        }
    }
}

/// The `rootHealth` service: what `/.backstage/health/v1/readiness` answers.
///
/// ```
/// let health = backstage::RootHealth::default();
/// assert_eq!(health.readiness().0, 503);
/// ```
#[derive(Clone, Default)]
pub struct RootHealth {
    state: Arc<AtomicU8>,
}

impl fmt::Debug for RootHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RootHealth")
            .field("readiness", &self.readiness().0)
            .finish()
    }
}

impl RootHealth {
    /// The readiness status code and body, as Backstage answers them.
    pub fn readiness(&self) -> (u16, &'static str) {
        match self.state.load(Ordering::Acquire) {
            STARTED => (200, r#"{"status":"ok"}"#),
            STOPPING => (
                503,
                r#"{"message":"Backend is shuttting down","status":"error"}"#,
            ),
            _ => (
                503,
                r#"{"message":"Backend has not started yet","status":"error"}"#,
            ),
        }
    }

    /// The liveness status code and body.
    pub fn liveness(&self) -> (u16, &'static str) {
        (200, r#"{"status":"ok"}"#)
    }

    pub(crate) fn set_started(&self) {
        self.state.store(STARTED, Ordering::Release);
    }

    pub(crate) fn set_stopping(&self) {
        self.state.store(STOPPING, Ordering::Release);
    }
}

impl Service for RootHealth {
    type Scope = Root;
    const ID: &'static str = "core.rootHealth";
    fn create<'a>(_ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async { Ok(RootHealth::default()) })
    }
}

crate::plugin::register!(Lifecycle, root RootLifecycle, root RootHealth);
