//! The `permissions` service: asks Backstage's permission backend whether a principal may do
//! something, as Backstage's `PermissionsService` does.
//!
//! With `permission.enabled` unset or `false` every request is allowed without a call, as in
//! Backstage. With it `true`, requests made by a service (not on a user's behalf) are allowed
//! without a call, and the rest go to `POST <permission plugin>/authorize` (found through
//! discovery) with a plugin token on behalf of the caller. Answers are checked: a response
//! that does not answer every item is an error, never a silent allow.
//!
//! A plugin publishes its permissions, resource types and rules through
//! [`PermissionsRegistry`]: it then serves `/.well-known/backstage/permissions/metadata` (for
//! RBAC tools) and `/.well-known/backstage/permissions/apply-conditions` (where the permission
//! backend has a conditional decision applied to the plugin's resources), as Backstage's
//! `createPermissionIntegrationRouter` does. [`ResourceType::is_allowed`] applies a conditional
//! decision locally, and [`ResourceType::to_query`] turns it into a query.
//!
//! ```no_run
//! use backstage::prelude::*;
//! use backstage::permissions::{Permission, Permissions};
//!
//! #[backend_plugin(id = "carmen")]
//! pub struct Carmen {
//!     #[inject]
//!     permissions: Permissions,
//! }
//!
//! #[routes]
//! impl Carmen {
//!     #[route(delete, "/items/{id}")]
//!     async fn delete(&self, Path(id): Path<i64>, creds: Credentials) -> Result<StatusCode> {
//!         let delete = Permission::basic("carmen.item.delete").action("delete");
//!         if !self.permissions.is_allowed(&delete, None, &creds).await? {
//!             return Err(Error::not_allowed(format!("you may not delete item {id}")));
//!         }
//!         Ok(StatusCode::NO_CONTENT)
//!     }
//! }
//! # fn main() {}
//! ```

mod conditions;
pub(crate) mod endpoints;
mod registry;

pub use conditions::{PermissionCondition, PermissionCriteria};
pub use registry::{PermissionRule, PermissionsRegistry, ResourceType};

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::auth::{Auth, Credentials, Principal, PrincipalType};
use crate::discovery::Discovery;
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service, ServiceContext};

/// The plugin id of Backstage's permission backend.
///
/// ```
/// assert_eq!(backstage::permissions::PERMISSION_PLUGIN, "permission");
/// ```
pub const PERMISSION_PLUGIN: &str = "permission";

/// A permission: a name, an optional action, and for resource permissions the resource type.
///
/// ```
/// use backstage::permissions::Permission;
/// let read = Permission::resource("catalog.entity.read", "catalog-entity").action("read");
/// assert_eq!(
///     serde_json::to_value(&read).unwrap(),
///     serde_json::json!({ "type": "resource", "name": "catalog.entity.read",
///                         "attributes": { "action": "read" }, "resourceType": "catalog-entity" })
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Permission {
    /// `basic` or `resource`.
    #[serde(rename = "type")]
    pub kind: String,
    /// The permission's name, like `catalog.entity.read`.
    pub name: String,
    /// `{ "action": "create" | "read" | "update" | "delete" }`, when the permission has one.
    pub attributes: Attributes,
    /// The resource type of a resource permission.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_type: Option<String>,
}

/// A permission's attributes.
///
/// ```
/// use backstage::permissions::Permission;
/// let read = Permission::basic("carmen.item.read").action("read");
/// assert_eq!(read.attributes.action.as_deref(), Some("read"));
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attributes {
    /// `create`, `read`, `update` or `delete`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
}

impl Permission {
    /// A basic permission (not about one resource).
    pub fn basic(name: impl Into<String>) -> Permission {
        Permission {
            kind: "basic".to_owned(),
            name: name.into(),
            attributes: Attributes::default(),
            resource_type: None,
        }
    }

    /// A permission about resources of `resource_type`.
    pub fn resource(name: impl Into<String>, resource_type: impl Into<String>) -> Permission {
        Permission {
            kind: "resource".to_owned(),
            resource_type: Some(resource_type.into()),
            ..Permission::basic(name)
        }
    }

    /// Sets the action attribute.
    #[must_use]
    pub fn action(mut self, action: impl Into<String>) -> Permission {
        self.attributes.action = Some(action.into());
        self
    }
}

/// The answer to one request.
///
/// ```
/// use backstage::Credentials;
/// use backstage::permissions::{Decision, Permission, Permissions};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let decisions = Permissions::deny_all()
///     .authorize(&[(Permission::basic("carmen.item.read"), None)], &Credentials::user("user:default/ada"))
///     .await
///     .unwrap();
/// assert_eq!(decisions, [Decision::Deny]);
/// # });
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Allowed.
    Allow,
    /// Denied.
    Deny,
    /// Allowed for the resources that meet `conditions` (only from
    /// [`Permissions::authorize_conditional`]).
    Conditional {
        /// The plugin that owns the resource type.
        plugin_id: String,
        /// The resource type.
        resource_type: String,
        /// The conditions, as the permission backend sent them.
        conditions: Value,
    },
}

type Policy = dyn Fn(&Permission, Option<&str>, &Principal) -> Decision + Send + Sync;

/// The `permissions` service of one plugin. See the [module docs](self).
#[derive(Clone)]
pub struct Permissions {
    inner: Arc<Inner>,
}

enum Inner {
    /// `permission.enabled` is not true: everything is allowed.
    Disabled,
    Remote {
        auth: Auth,
        discovery: Discovery,
        http: reqwest::Client,
    },
    /// A policy in code (tests).
    Local(Box<Policy>),
}

impl fmt::Debug for Permissions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match &*self.inner {
            Inner::Disabled => "Permissions(disabled)",
            Inner::Remote { .. } => "Permissions(remote)",
            Inner::Local(_) => "Permissions(local policy)",
        })
    }
}

impl Permissions {
    /// Permissions decided by `policy` in this process: for tests and for backends without a
    /// permission plugin. The policy sees the permission, the resource ref and the principal.
    ///
    /// ```
    /// use backstage::Credentials;
    /// use backstage::permissions::{Decision, Permission, Permissions};
    /// # tokio::runtime::Runtime::new().unwrap().block_on(async {
    /// let permissions = Permissions::from_policy(|permission, _resource, _principal| {
    ///     if permission.name.ends_with(".read") { Decision::Allow } else { Decision::Deny }
    /// });
    /// let alice = Credentials::user("user:default/alice");
    /// assert!(permissions.is_allowed(&Permission::basic("carmen.item.read"), None, &alice).await.unwrap());
    /// assert!(!permissions.is_allowed(&Permission::basic("carmen.item.delete"), None, &alice).await.unwrap());
    /// # });
    /// ```
    pub fn from_policy<F>(policy: F) -> Permissions
    where
        F: Fn(&Permission, Option<&str>, &Principal) -> Decision + Send + Sync + 'static,
    {
        Permissions {
            inner: Arc::new(Inner::Local(Box::new(policy))),
        }
    }

    /// Allows everything.
    pub fn allow_all() -> Permissions {
        Permissions::from_policy(|_, _, _| Decision::Allow)
    }

    /// Denies everything.
    pub fn deny_all() -> Permissions {
        Permissions::from_policy(|_, _, _| Decision::Deny)
    }

    /// Whether `credentials` may use `permission` (on the resource `resource_ref`, for a
    /// resource permission). A conditional answer counts as not allowed here; use
    /// [`Permissions::authorize_conditional`] to apply conditions.
    pub async fn is_allowed<P: PrincipalType>(
        &self,
        permission: &Permission,
        resource_ref: Option<&str>,
        credentials: &Credentials<P>,
    ) -> Result<bool> {
        let decisions = self
            .definitive(&[(permission, resource_ref)], credentials)
            .await?;
        Ok(decisions.first() == Some(&Decision::Allow))
    }

    /// Decides each `(permission, resource ref)`: [`Decision::Allow`] or [`Decision::Deny`],
    /// in the order asked.
    pub async fn authorize<P: PrincipalType>(
        &self,
        requests: &[(Permission, Option<String>)],
        credentials: &Credentials<P>,
    ) -> Result<Vec<Decision>> {
        let requests: Vec<_> = requests.iter().map(|(p, r)| (p, r.as_deref())).collect();
        self.definitive(&requests, credentials).await
    }

    /// Decides resource permissions without a resource: allow, deny, or the conditions that
    /// the resources must meet (Backstage's `authorizeConditional`).
    pub async fn authorize_conditional<P: PrincipalType>(
        &self,
        permissions: &[Permission],
        credentials: &Credentials<P>,
    ) -> Result<Vec<Decision>> {
        let requests: Vec<_> = permissions.iter().map(|p| (p, None)).collect();
        self.decide(&requests, credentials).await
    }

    /// [`Permissions::decide`], where a conditional answer is the permission backend's mistake.
    async fn definitive<P: PrincipalType>(
        &self,
        requests: &[(&Permission, Option<&str>)],
        credentials: &Credentials<P>,
    ) -> Result<Vec<Decision>> {
        let decisions = self.decide(requests, credentials).await?;
        if decisions
            .iter()
            .any(|d| matches!(d, Decision::Conditional { .. }))
        {
            return Err(Error::internal(
                "the permission backend answered a definitive request with conditions",
            ));
        }
        Ok(decisions)
    }

    async fn decide<P: PrincipalType>(
        &self,
        requests: &[(&Permission, Option<&str>)],
        credentials: &Credentials<P>,
    ) -> Result<Vec<Decision>> {
        match &*self.inner {
            Inner::Disabled => Ok(vec![Decision::Allow; requests.len()]),
            Inner::Local(policy) => Ok(requests
                .iter()
                .map(|(permission, resource)| policy(permission, *resource, credentials.any()))
                .collect()),
            Inner::Remote { .. } if matches!(credentials.any(), Principal::Service(_)) => {
                Ok(vec![Decision::Allow; requests.len()])
            }
            Inner::Remote {
                auth,
                discovery,
                http,
            } => remote(auth, discovery, http, requests, credentials).await,
        }
    }
}

#[derive(Deserialize)]
struct Answers {
    items: Vec<Answer>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Answer {
    id: String,
    result: String,
    plugin_id: Option<String>,
    resource_type: Option<String>,
    conditions: Option<Value>,
}

async fn remote<P: PrincipalType>(
    auth: &Auth,
    discovery: &Discovery,
    http: &reqwest::Client,
    requests: &[(&Permission, Option<&str>)],
    credentials: &Credentials<P>,
) -> Result<Vec<Decision>> {
    let ids: Vec<String> = requests
        .iter()
        .map(|_| uuid::Uuid::new_v4().to_string())
        .collect();
    let items: Vec<Value> = requests
        .iter()
        .zip(&ids)
        .map(|((permission, resource_ref), id)| {
            let mut item = json!({ "id": id, "permission": permission });
            if let Some(resource_ref) = resource_ref {
                item["resourceRef"] = Value::from(*resource_ref);
            }
            item
        })
        .collect();
    let url = format!("{}/authorize", discovery.base_url(PERMISSION_PLUGIN));
    let mut request = http.post(&url).json(&json!({ "items": items }));
    if !matches!(credentials.any(), Principal::None) {
        let token = auth
            .plugin_request_token(credentials, PERMISSION_PLUGIN)
            .await?;
        if !token.token.is_empty() {
            request = request.bearer_auth(token.token);
        }
    }
    let unreachable = |e: reqwest::Error| {
        Error::service_unavailable(format!(
            "the permission backend at {url} did not answer: {e}"
        ))
    };
    let response = request.send().await.map_err(unreachable)?;
    let status = response.status();
    let body = response.bytes().await.map_err(unreachable)?;
    if !status.is_success() {
        return Err(Error::internal(format!(
            "the permission backend at {url} answered {status}: {}",
            String::from_utf8_lossy(&body[..body.len().min(512)])
        )));
    }
    let answers: Answers = serde_json::from_slice(&body).map_err(|e| {
        Error::internal(format!(
            "the permission backend at {url} sent an unreadable answer: {e}"
        ))
    })?;
    ids.iter()
        .map(|id| {
            let answer = answers.items.iter().find(|a| &a.id == id).ok_or_else(|| {
                Error::internal(format!(
                    "the permission backend at {url} did not answer request {id}"
                ))
            })?;
            match answer.result.as_str() {
                "ALLOW" => Ok(Decision::Allow),
                "DENY" => Ok(Decision::Deny),
                "CONDITIONAL" => Ok(Decision::Conditional {
                    plugin_id: answer.plugin_id.clone().unwrap_or_default(),
                    resource_type: answer.resource_type.clone().unwrap_or_default(),
                    conditions: answer.conditions.clone().unwrap_or(Value::Null),
                }),
                other => Err(Error::internal(format!(
                    "the permission backend at {url} answered '{other}', not ALLOW, DENY or CONDITIONAL"
                ))),
            }
        })
        .collect()
}

impl Service for Permissions {
    type Scope = PluginScoped;
    const ID: &'static str = "core.permissions";
    const DEPENDENCIES: &'static [&'static str] = crate::plugin::dependencies!(
        crate::config::RootConfig,
        crate::auth::Auth,
        crate::discovery::Discovery
    );

    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let enabled: Option<bool> = ctx.config().get_optional("permission.enabled")?;
            if enabled != Some(true) {
                return Ok(Permissions {
                    inner: Arc::new(Inner::Disabled),
                });
            }
            let shared = ctx.get::<crate::auth::tokens::SharedAuth>().await?;
            Ok(Permissions {
                inner: Arc::new(Inner::Remote {
                    auth: ctx.get::<Auth>().await?,
                    discovery: shared.0.discovery.clone(),
                    http: shared.0.http.clone(),
                }),
            })
        })
    }
}

crate::plugin::register!(Permissions, PermissionsRegistry);

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn disabled_permissions_allow_everything() {
        let permissions = Permissions {
            inner: Arc::new(Inner::Disabled),
        };
        let decisions = permissions
            .authorize(
                &[
                    (Permission::basic("a"), None),
                    (Permission::basic("b"), Some("x".into())),
                ],
                &Credentials::user("user:default/alice"),
            )
            .await
            .unwrap();
        assert_eq!(decisions, vec![Decision::Allow, Decision::Allow]);
    }

    #[tokio::test]
    async fn a_local_policy_sees_the_request() {
        let permissions = Permissions::from_policy(|permission, resource, principal| {
            match (permission.name.as_str(), resource, principal) {
                ("read", Some("item:1"), Principal::User(_)) => Decision::Allow,
                _ => Decision::Deny,
            }
        });
        let alice = Credentials::user("user:default/alice");
        let read = Permission::basic("read");
        assert!(
            permissions
                .is_allowed(&read, Some("item:1"), &alice)
                .await
                .unwrap()
        );
        assert!(
            !permissions
                .is_allowed(&read, Some("item:2"), &alice)
                .await
                .unwrap()
        );
        let service = Credentials::service("plugin:catalog");
        assert!(
            !permissions
                .is_allowed(&read, Some("item:1"), &service)
                .await
                .unwrap()
        );
        assert!(
            !Permissions::deny_all()
                .is_allowed(&read, None, &alice)
                .await
                .unwrap()
        );
        assert!(
            Permissions::allow_all()
                .is_allowed(&read, None, &alice)
                .await
                .unwrap()
        );
    }
}
