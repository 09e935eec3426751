//! The `permissionsRegistry` service: a plugin's permissions, resource types and rules, which
//! Backstage's permission backend reads and applies through the plugin's endpoints.

use std::any::{Any, TypeId};
use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, RwLock};

use schemars::JsonSchema;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value};

use super::conditions::{PermissionCondition, PermissionCriteria};
use super::{Decision, Permission};
use crate::error::{Error, ErrorKind, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service, ServiceContext};

type Apply<R> = dyn Fn(&R, &Map<String, Value>) -> Result<bool> + Send + Sync;
type ToQuery<Q> = dyn Fn(&Map<String, Value>) -> Result<Q> + Send + Sync;
type Load<R> = dyn Fn(Vec<String>) -> BoxFuture<'static, Result<Vec<Option<R>>>> + Send + Sync;

/// A permission rule: whether a resource of type `R` meets a condition, given typed params
/// (whose JSON Schema is published), and optionally the condition as a query `Q` (a filter
/// for a database, say) for listing only what the caller may see.
///
/// ```
/// use backstage::permissions::PermissionRule;
///
/// struct Todo { author: String }
///
/// /// Who wrote it.
/// #[derive(serde::Deserialize, schemars::JsonSchema)]
/// struct IsAuthor {
///     /// The author's entity ref.
///     author: String,
/// }
///
/// let rule: PermissionRule<Todo, String> =
///     PermissionRule::new("is-author", "Allow the todo's author", |todo: &Todo, p: &IsAuthor| {
///         todo.author == p.author
///     })
///     .query(|p: IsAuthor| format!("author = '{}'", p.author));
/// ```
pub struct PermissionRule<R, Q = ()> {
    name: String,
    description: String,
    params_schema: Option<Value>,
    apply: Arc<Apply<R>>,
    to_query: Option<Arc<ToQuery<Q>>>,
}

impl<R, Q> Clone for PermissionRule<R, Q> {
    fn clone(&self) -> Self {
        PermissionRule {
            name: self.name.clone(),
            description: self.description.clone(),
            params_schema: self.params_schema.clone(),
            apply: self.apply.clone(),
            to_query: self.to_query.clone(),
        }
    }
}

/// Reads a rule's params as `P`: Backstage's "Parameters to rule are invalid" when they do not
/// fit.
fn params<P: DeserializeOwned>(rule: &str, params: &Map<String, Value>) -> Result<P> {
    P::deserialize(Value::Object(params.clone())).map_err(|e| {
        Error::new(ErrorKind::Input, "Parameters to rule are invalid").with_fields(vec![(
            "cause",
            serde_json::json!({ "name": "Error", "message": format!("rule '{rule}': {e}") }),
        )])
    })
}

impl<R: 'static, Q: 'static> PermissionRule<R, Q> {
    /// A rule named `name` (unique within its resource type) that holds for a resource when
    /// `apply` says so. `P` is its params: `()` for none, else a `Deserialize + JsonSchema`
    /// struct whose schema is published as the rule's `paramsSchema`.
    pub fn new<P, F>(name: impl Into<String>, description: impl Into<String>, apply: F) -> Self
    where
        P: DeserializeOwned + JsonSchema + 'static,
        F: Fn(&R, &P) -> bool + Send + Sync + 'static,
    {
        let name = name.into();
        let no_params = TypeId::of::<P>() == TypeId::of::<()>();
        let rule = name.clone();
        let apply: Arc<Apply<R>> = if no_params {
            Arc::new(move |resource: &R, _: &Map<String, Value>| {
                let unit =
                    P::deserialize(Value::Null).map_err(|e| Error::internal(e.to_string()))?;
                Ok(apply(resource, &unit))
            })
        } else {
            Arc::new(move |resource: &R, given: &Map<String, Value>| {
                Ok(apply(resource, &params::<P>(&rule, given)?))
            })
        };
        PermissionRule {
            name,
            description: description.into(),
            params_schema: (!no_params).then(crate::json_schema::draft07::<P>),
            apply,
            to_query: None,
        }
    }

    /// The rule as a query: `to_query` turns its params into a `Q`.
    #[must_use]
    pub fn query<P, F>(mut self, to_query: F) -> Self
    where
        P: DeserializeOwned + 'static,
        F: Fn(P) -> Q + Send + Sync + 'static,
    {
        let rule = self.name.clone();
        self.to_query = Some(Arc::new(move |given: &Map<String, Value>| {
            Ok(to_query(params::<P>(&rule, given)?))
        }));
        self
    }

    /// The rule's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// A resource type of the plugin: its permissions, its rules, and how to load resources by
/// ref so that Backstage's permission backend can have conditions applied to them.
///
/// ```
/// use backstage::permissions::{Permission, PermissionRule, ResourceType};
///
/// #[derive(Clone)]
/// struct Todo { author: String }
///
/// let todos: ResourceType<Todo> = ResourceType::new("todo-item")
///     .permission(Permission::resource("todo.item.read", "todo-item").action("read"))
///     .rule(PermissionRule::new("is-author", "Allow the todo's author", |todo: &Todo, _: &()| {
///         !todo.author.is_empty()
///     }))
///     .loader(|refs: Vec<String>| async move {
///         Ok(refs.iter().map(|r| Some(Todo { author: r.clone() })).collect())
///     });
/// ```
pub struct ResourceType<R, Q = ()> {
    name: String,
    permissions: Vec<Permission>,
    rules: Vec<PermissionRule<R, Q>>,
    load: Option<Arc<Load<R>>>,
}

impl<R, Q> Clone for ResourceType<R, Q> {
    fn clone(&self) -> Self {
        ResourceType {
            name: self.name.clone(),
            permissions: self.permissions.clone(),
            rules: self.rules.clone(),
            load: self.load.clone(),
        }
    }
}

impl<R: Send + Sync + 'static, Q: 'static> ResourceType<R, Q> {
    /// A resource type named `name` (`todo-item`), with no rules yet.
    pub fn new(name: impl Into<String>) -> Self {
        ResourceType {
            name: name.into(),
            permissions: Vec::new(),
            rules: Vec::new(),
            load: None,
        }
    }

    /// Adds a permission about this resource type.
    #[must_use]
    pub fn permission(mut self, permission: Permission) -> Self {
        self.permissions.push(permission);
        self
    }

    /// Adds a rule.
    #[must_use]
    pub fn rule(mut self, rule: PermissionRule<R, Q>) -> Self {
        self.rules.push(rule);
        self
    }

    /// How to load resources: one answer per ref, in order, `None` where there is none.
    #[must_use]
    pub fn loader<F, Fut>(mut self, load: F) -> Self
    where
        F: Fn(Vec<String>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Vec<Option<R>>>> + Send + 'static,
    {
        self.load = Some(Arc::new(move |refs| Box::pin(load(refs))));
        self
    }

    /// The resource type's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    fn rule_named(&self, condition: &PermissionCondition) -> Result<&PermissionRule<R, Q>> {
        self.rules
            .iter()
            .find(|rule| rule.name == condition.rule && condition.resource_type == self.name)
            .ok_or_else(|| {
                Error::internal(format!(
                    "Permission rule '{}' does not exist for resource type '{}'",
                    condition.rule, self.name
                ))
            })
    }

    /// Whether `resource` meets `criteria`, by this type's rules.
    pub fn applies(
        &self,
        criteria: &PermissionCriteria<PermissionCondition>,
        resource: &R,
    ) -> Result<bool> {
        criteria.evaluate(&mut |condition| {
            let rule = self.rule_named(condition)?;
            (rule.apply)(resource, condition.params.as_ref().unwrap_or(&Map::new()))
        })
    }

    /// Whether a decision from [`super::Permissions::authorize_conditional`] lets `resource`
    /// through: allowed, denied, or its conditions applied here.
    pub fn is_allowed(&self, decision: &Decision, resource: &R) -> Result<bool> {
        match decision {
            Decision::Allow => Ok(true),
            Decision::Deny => Ok(false),
            Decision::Conditional {
                resource_type,
                conditions,
                ..
            } => {
                if *resource_type != self.name {
                    return Err(Error::input(format!(
                        "the decision is about resource type '{resource_type}', not '{}'",
                        self.name
                    )));
                }
                self.applies(&criteria(conditions)?, resource)
            }
        }
    }

    /// The conditions as a query over `Q`: each condition turned by its rule's query form.
    pub fn to_query(
        &self,
        criteria: &PermissionCriteria<PermissionCondition>,
    ) -> Result<PermissionCriteria<Q>> {
        criteria.try_map(&mut |condition| {
            let rule = self.rule_named(condition)?;
            let to_query = rule.to_query.as_ref().ok_or_else(|| {
                Error::not_implemented(format!("permission rule '{}' has no query form", rule.name))
            })?;
            to_query(condition.params.as_ref().unwrap_or(&Map::new()))
        })
    }
}

/// Conditions as the permission backend sent them, read.
pub(crate) fn criteria(conditions: &Value) -> Result<PermissionCriteria<PermissionCondition>> {
    let criteria: PermissionCriteria<PermissionCondition> =
        serde_json::from_value(conditions.clone())
            .map_err(|e| Error::input(format!("conditions are not permission criteria: {e}")))?;
    criteria.check()?;
    Ok(criteria)
}

/// A rule as the metadata endpoint lists it.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct RuleMetadata {
    name: String,
    description: String,
    resource_type: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    params_schema: Option<Value>,
}

/// A resource type with its `R` and `Q` erased, as the registry keeps it.
pub(crate) trait Resources: Send + Sync {
    fn rules(&self) -> Vec<RuleMetadata>;
    /// Applies `criteria` to each of `refs` (loaded once each): `true` where allowed.
    fn decide(
        &self,
        requests: Vec<(Vec<String>, PermissionCriteria<PermissionCondition>)>,
    ) -> BoxFuture<'static, Result<Vec<Vec<bool>>>>;
    fn as_any(&self) -> &dyn Any;
}

impl<R: Send + Sync + 'static, Q: 'static> Resources for ResourceType<R, Q> {
    fn rules(&self) -> Vec<RuleMetadata> {
        self.rules
            .iter()
            .map(|rule| RuleMetadata {
                name: rule.name.clone(),
                description: rule.description.clone(),
                resource_type: self.name.clone(),
                params_schema: rule.params_schema.clone(),
            })
            .collect()
    }

    fn decide(
        &self,
        requests: Vec<(Vec<String>, PermissionCriteria<PermissionCondition>)>,
    ) -> BoxFuture<'static, Result<Vec<Vec<bool>>>> {
        let this = self.clone();
        Box::pin(async move {
            let Some(load) = &this.load else {
                return Err(Error::not_implemented(format!(
                    "This plugin does not expose any permission rule or can't evaluate the conditions request for {}",
                    this.name
                )));
            };
            let mut refs: Vec<String> = requests.iter().flat_map(|(r, _)| r.clone()).collect();
            refs.sort();
            refs.dedup();
            let loaded = load(refs.clone()).await?;
            let by_ref: BTreeMap<&str, Option<&R>> = refs
                .iter()
                .map(String::as_str)
                .zip(
                    loaded
                        .iter()
                        .map(Option::as_ref)
                        .chain(std::iter::repeat(None)),
                )
                .collect();
            requests
                .iter()
                .map(|(refs, criteria)| {
                    refs.iter()
                        .map(|r| match by_ref.get(r.as_str()).copied().flatten() {
                            // A resource that does not exist meets no condition.
                            None => Ok(false),
                            Some(resource) => this.applies(criteria, resource),
                        })
                        .collect()
                })
                .collect()
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The `permissionsRegistry` service of one plugin: what it publishes at
/// `/.well-known/backstage/permissions/metadata`, and the resource types whose conditions
/// Backstage's permission backend applies through `.../apply-conditions`.
///
/// ```
/// use backstage::prelude::*;
/// use backstage::permissions::{Permission, PermissionRule, PermissionsRegistry, ResourceType};
///
/// #[derive(Clone)]
/// pub struct Todo { author: String }
///
/// #[backend_plugin(id = "todo")]
/// pub struct TodoPlugin {
///     #[inject]
///     registry: PermissionsRegistry,
/// }
///
/// #[routes]
/// impl TodoPlugin {
///     #[init]
///     async fn init(&self) -> Result<()> {
///         self.registry.add_permissions([Permission::basic("todo.item.create").action("create")])?;
///         self.registry.add_resource_type(
///             ResourceType::<Todo>::new("todo-item")
///                 .rule(PermissionRule::new("is-mine", "The caller's own", |t: &Todo, _: &()| !t.author.is_empty()))
///                 .loader(|refs: Vec<String>| async move { Ok(vec![None; refs.len()]) }),
///         )
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Clone, Default)]
pub struct PermissionsRegistry {
    inner: Arc<RwLock<Registered>>,
}

#[derive(Default)]
struct Registered {
    /// By name, in the order first registered.
    permissions: Vec<Permission>,
    resource_types: Vec<(String, Arc<dyn Resources>)>,
}

impl std::fmt::Debug for PermissionsRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let registered = self.inner.read().unwrap_or_else(|p| p.into_inner());
        f.debug_struct("PermissionsRegistry")
            .field("permissions", &registered.permissions.len())
            .field("resource_types", &registered.resource_types.len())
            .finish()
    }
}

impl PermissionsRegistry {
    /// Publishes `permissions` (a permission registered again under its name replaces the
    /// first).
    pub fn add_permissions(&self, permissions: impl IntoIterator<Item = Permission>) -> Result<()> {
        let mut registered = self.inner.write().unwrap_or_else(|p| p.into_inner());
        for permission in permissions {
            match registered
                .permissions
                .iter_mut()
                .find(|p| p.name == permission.name)
            {
                Some(existing) => *existing = permission,
                None => registered.permissions.push(permission),
            }
        }
        Ok(())
    }

    /// Publishes a resource type with its permissions and rules; a second resource type of
    /// the same name, or two rules of one name, are refused as Backstage refuses them.
    pub fn add_resource_type<R: Send + Sync + 'static, Q: 'static>(
        &self,
        resource_type: ResourceType<R, Q>,
    ) -> Result<()> {
        let name = resource_type.name.clone();
        for (i, rule) in resource_type.rules.iter().enumerate() {
            if resource_type.rules[..i].iter().any(|r| r.name == rule.name) {
                return Err(Error::conflict(format!(
                    "Refused to add permission rule for type '{name}' with name '{}' because it already exists",
                    rule.name
                )));
            }
        }
        let permissions = resource_type.permissions.clone();
        {
            let mut registered = self.inner.write().unwrap_or_else(|p| p.into_inner());
            if registered.resource_types.iter().any(|(n, _)| *n == name) {
                return Err(Error::conflict(format!(
                    "Refused to add permission resource with type '{name}' because it already exists"
                )));
            }
            registered
                .resource_types
                .push((name, Arc::new(resource_type)));
        }
        self.add_permissions(permissions)
    }

    /// The resource type `name` as registered with `R` and `Q`, to apply conditions locally.
    pub fn resource_type<R: Send + Sync + 'static, Q: 'static>(
        &self,
        name: &str,
    ) -> Option<ResourceType<R, Q>> {
        let registered = self.inner.read().unwrap_or_else(|p| p.into_inner());
        registered
            .resource_types
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, r)| r.as_any().downcast_ref::<ResourceType<R, Q>>())
            .cloned()
    }

    /// `{permissions, rules}`, as the metadata endpoint serves it.
    pub(crate) fn metadata(&self) -> Value {
        let registered = self.inner.read().unwrap_or_else(|p| p.into_inner());
        let rules: Vec<RuleMetadata> = registered
            .resource_types
            .iter()
            .flat_map(|(_, r)| r.rules())
            .collect();
        serde_json::json!({ "permissions": registered.permissions, "rules": rules })
    }

    pub(crate) fn resources(&self, name: &str) -> Option<Arc<dyn Resources>> {
        let registered = self.inner.read().unwrap_or_else(|p| p.into_inner());
        registered
            .resource_types
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| r.clone())
    }
}

impl Service for PermissionsRegistry {
    type Scope = PluginScoped;
    const ID: &'static str = "core.permissionsRegistry";
    fn create<'a>(_ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async { Ok(PermissionsRegistry::default()) })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[derive(Clone)]
    struct Todo {
        author: String,
    }

    #[derive(serde::Deserialize, JsonSchema)]
    #[serde(deny_unknown_fields)]
    struct IsAuthor {
        author: String,
    }

    fn todos() -> ResourceType<Todo, String> {
        ResourceType::new("todo-item").rule(
            PermissionRule::new("is-author", "The author", |t: &Todo, p: &IsAuthor| {
                t.author == p.author
            })
            .query(|p: IsAuthor| format!("author={}", p.author)),
        )
    }

    #[test]
    fn a_conditional_decision_is_applied_locally_and_as_a_query() {
        let decision = Decision::Conditional {
            plugin_id: "todo".into(),
            resource_type: "todo-item".into(),
            conditions: json!({"rule": "is-author", "resourceType": "todo-item", "params": {"author": "ada"}}),
        };
        let todos = todos();
        let ada = Todo {
            author: "ada".into(),
        };
        let bob = Todo {
            author: "bob".into(),
        };
        assert!(todos.is_allowed(&decision, &ada).unwrap());
        assert!(!todos.is_allowed(&decision, &bob).unwrap());
        assert!(todos.is_allowed(&Decision::Allow, &bob).unwrap());
        let Decision::Conditional { conditions, .. } = &decision else {
            unreachable!()
        };
        let query = todos.to_query(&criteria(conditions).unwrap()).unwrap();
        assert_eq!(
            query,
            PermissionCriteria::Condition("author=ada".to_owned())
        );
    }

    #[test]
    fn bad_params_and_unknown_rules_are_errors() {
        let todos = todos();
        let ada = Todo {
            author: "ada".into(),
        };
        let bad = criteria(
            &json!({"rule": "is-author", "resourceType": "todo-item", "params": {"who": 1}}),
        )
        .unwrap();
        let error = todos.applies(&bad, &ada).unwrap_err();
        assert_eq!(
            (error.status().as_u16(), error.message()),
            (400, "Parameters to rule are invalid")
        );
        let unknown = criteria(&json!({"rule": "is-nobody", "resourceType": "todo-item"})).unwrap();
        assert_eq!(
            todos.applies(&unknown, &ada).unwrap_err().message(),
            "Permission rule 'is-nobody' does not exist for resource type 'todo-item'"
        );
    }

    #[test]
    fn the_registry_refuses_duplicates_and_publishes_schemas() {
        let registry = PermissionsRegistry::default();
        registry.add_resource_type(todos()).unwrap();
        let again = registry.add_resource_type(todos()).unwrap_err();
        assert_eq!(
            again.message(),
            "Refused to add permission resource with type 'todo-item' because it already exists"
        );
        let metadata = registry.metadata();
        assert_eq!(
            metadata["rules"][0]["paramsSchema"]["required"],
            json!(["author"])
        );
        assert!(
            registry
                .resource_type::<Todo, String>("todo-item")
                .is_some()
        );
        assert!(
            registry
                .resource_type::<String, String>("todo-item")
                .is_none()
        );
    }
}
