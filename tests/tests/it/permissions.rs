//! The permissions registry: a plugin publishes its permissions, resource types and rules,
//! Backstage's permission backend has conditions applied to its resources, and conditional
//! decisions are applied in the plugin.

use backstage::permissions::{
    Decision, Permission, PermissionRule, Permissions, PermissionsRegistry, ResourceType,
};
use backstage::prelude::*;
use backstage::testing::{TestBackend, json, mock};
use serde_json::Value;

#[derive(Clone)]
pub struct Todo {
    id: u32,
    author: &'static str,
}

const TODOS: [Todo; 2] = [
    Todo {
        id: 1,
        author: "user:default/ada",
    },
    Todo {
        id: 2,
        author: "user:default/bob",
    },
];

#[derive(serde::Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IsAuthor {
    /// The author's entity ref
    author: String,
}

fn todo_items() -> ResourceType<Todo, String> {
    ResourceType::new("todo-item")
        .permission(Permission::resource("todo.item.read", "todo-item").action("read"))
        .rule(
            PermissionRule::new(
                "is-author",
                "Allow the todo items of an author",
                |todo: &Todo, p: &IsAuthor| todo.author == p.author,
            )
            .query(|p: IsAuthor| format!("author = {}", p.author)),
        )
        .loader(|refs: Vec<String>| async move {
            Ok(refs
                .iter()
                .map(|r| {
                    TODOS
                        .iter()
                        .find(|t| format!("todo:{}", t.id) == *r)
                        .cloned()
                })
                .collect())
        })
}

#[backend_plugin(id = "todo")]
pub struct TodoPlugin {
    #[inject]
    registry: PermissionsRegistry,
    #[inject]
    permissions: Permissions,
}

#[routes]
impl TodoPlugin {
    #[init]
    async fn init(&self) -> Result<()> {
        self.registry.add_resource_type(todo_items())
    }

    /// The ids of the todo items the caller may read: a conditional decision applied here.
    #[route(get, "/todos")]
    async fn list(&self, creds: Credentials) -> Result<Json<Vec<u32>>> {
        let read = Permission::resource("todo.item.read", "todo-item").action("read");
        let decision = self
            .permissions
            .authorize_conditional(&[read], &creds)
            .await?
            .remove(0);
        let items = self
            .registry
            .resource_type::<Todo, String>("todo-item")
            .ok_or_else(|| Error::internal("todo-item is not registered"))?;
        let mut visible = Vec::new();
        for todo in &TODOS {
            if items.is_allowed(&decision, todo)? {
                visible.push(todo.id);
            }
        }
        Ok(Json(visible))
    }
}

/// A plugin that does not use the registry.
#[backend_plugin(id = "plain")]
pub struct Plain;

#[routes]
impl Plain {}

const METADATA: &str = "/.well-known/backstage/permissions/metadata";
const APPLY: &str = "/api/todo/.well-known/backstage/permissions/apply-conditions";

fn ada_only() -> Value {
    json!({"anyOf": [{"rule": "is-author", "resourceType": "todo-item", "params": {"author": "user:default/ada"}}]})
}

async fn start() -> TestBackend {
    TestBackend::builder()
        .plugin::<TodoPlugin>()
        .plugin::<Plain>()
        .start()
        .await
        .unwrap()
}

#[backstage::test]
async fn the_metadata_lists_permissions_and_rules_with_their_schemas() {
    let backend = start().await;
    let path = format!("/api/todo{METADATA}");
    assert_eq!(backend.get(&path).send().await.status(), 401);
    let res = backend
        .get(&path)
        .credentials(mock::service("rbac"))
        .send()
        .await;
    assert_eq!(
        res.json::<Value>(),
        json!({
            "permissions": [{"type": "resource", "name": "todo.item.read", "attributes": {"action": "read"}, "resourceType": "todo-item"}],
            "rules": [{
                "name": "is-author",
                "description": "Allow the todo items of an author",
                "resourceType": "todo-item",
                "paramsSchema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "properties": {"author": {"type": "string", "description": "The author's entity ref"}},
                    "required": ["author"],
                    "additionalProperties": false,
                },
            }],
        })
    );
    let res = backend
        .get(&format!("/api/plain{METADATA}"))
        .credentials(mock::service("rbac"))
        .send()
        .await;
    assert_eq!(
        res.status(),
        404,
        "a plugin without the registry serves no metadata"
    );
}

#[backstage::test]
async fn conditions_are_applied_to_the_plugins_resources() {
    let backend = start().await;
    let res = backend
        .post(APPLY)
        .credentials(mock::service("permission"))
        .json(&json!({"items": [
            {"id": "a", "resourceRef": "todo:1", "resourceType": "todo-item", "conditions": ada_only()},
            {"id": "b", "resourceRef": "todo:2", "resourceType": "todo-item", "conditions": ada_only()},
            {"id": "c", "resourceRef": ["todo:2", "todo:1", "todo:404"], "resourceType": "todo-item",
             "conditions": {"not": ada_only()}},
        ]}))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(
        res.json::<Value>(),
        json!({"items": [
            {"id": "a", "result": "ALLOW"},
            {"id": "b", "result": "DENY"},
            // A resource that does not exist meets no condition, not even a negated one.
            {"id": "c", "result": ["ALLOW", "DENY", "DENY"]},
        ]})
    );
}

#[backstage::test]
async fn apply_conditions_refuses_what_backstage_refuses() {
    let backend = start().await;
    let apply = |body: Value| {
        backend
            .post(APPLY)
            .credentials(mock::service("permission"))
            .json(&body)
            .send()
    };
    let res = apply(json!({"items": [
        {"id": "a", "resourceRef": "x", "resourceType": "thing", "conditions": ada_only()},
        {"id": "b", "resourceRef": "y", "resourceType": "gadget", "conditions": ada_only()},
    ]}))
    .await;
    assert_eq!(
        res.error(),
        (
            "InputError".into(),
            "Unexpected resource types: thing, gadget.".into()
        )
    );
    let res = apply(json!({"items": [{"id": "a", "resourceRef": "todo:1", "resourceType": "todo-item",
        "conditions": {"rule": "is-author", "resourceType": "todo-item", "params": {"name": "ada"}}}]}))
    .await;
    assert_eq!(
        res.error(),
        ("InputError".into(), "Parameters to rule are invalid".into())
    );
    let res = apply(json!({"items": "all"})).await;
    assert_eq!(res.status(), 400);
    // A user calling directly, not through the permission backend, is refused.
    let res = backend
        .post(APPLY)
        .credentials(mock::user("user:default/ada"))
        .json(&json!({"items": []}))
        .send()
        .await;
    assert_eq!(res.status(), 403);
}

#[backstage::test]
async fn a_conditional_decision_is_applied_in_the_plugin() {
    let ada_only_policy = Permissions::from_policy(|_, _, principal| match principal {
        Principal::User(user) if user.user_entity_ref == "user:default/admin" => Decision::Allow,
        _ => Decision::Conditional {
            plugin_id: "todo".into(),
            resource_type: "todo-item".into(),
            conditions: ada_only(),
        },
    });
    let backend = TestBackend::builder()
        .plugin::<TodoPlugin>()
        .service(ada_only_policy)
        .start()
        .await
        .unwrap();
    let list = |who: &str| {
        backend
            .get("/api/todo/todos")
            .credentials(mock::user(who))
            .send()
    };
    assert_eq!(list("user:default/bob").await.json::<Vec<u32>>(), [1]);
    assert_eq!(list("user:default/admin").await.json::<Vec<u32>>(), [1, 2]);
}

#[test]
fn a_conditional_decision_becomes_a_query() {
    let decision = backstage::permissions::PermissionCriteria::Condition(
        backstage::permissions::PermissionCondition {
            rule: "is-author".into(),
            resource_type: "todo-item".into(),
            params: json!({"author": "user:default/ada"}).as_object().cloned(),
        },
    );
    let query = todo_items().to_query(&decision).unwrap();
    assert_eq!(
        query,
        backstage::permissions::PermissionCriteria::Condition(
            "author = user:default/ada".to_owned()
        )
    );
}

/// Backstage's permission backend from npm answers CONDITIONAL for the Rust plugin's resource
/// type: with a resource ref it has the Rust plugin apply the conditions (on the user's behalf);
/// without one the Rust plugin applies them itself. And the Rust plugin's metadata is the same
/// as a TypeScript plugin's with the same registrations.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn backstages_permission_backend_and_the_rust_plugin_apply_conditions() {
    use crate::interop::{Node, free_port, installed, node_backend};
    let Some(dir) = installed().await else { return };
    let token = "permission-static-token-0123456789";
    let external = json!([{"type": "static", "options": {"token": token, "subject": "ci-bot"}}]);
    let node_port = free_port();
    // The Rust backend also stands in for Backstage's auth backend: it publishes the key of
    // the users' tokens, which the TypeScript backend verifies them with.
    let rust = backstage::Backend::builder()
        .plugin::<TodoPlugin>()
        .plugin::<crate::auth::FakeAuthBackend>()
        .config_value(json!({
            "backend": {
                "listen": {"host": "127.0.0.1", "port": 0},
                "auth": {"externalAccess": external},
            },
            "permission": {"enabled": true},
            "discovery": {"endpoints": [{
                "target": format!("http://127.0.0.1:{node_port}/api/{{{{pluginId}}}}"),
                "plugins": ["permission", "tstodo"],
            }]},
        }))
        .start()
        .await
        .unwrap();
    let rust_port = rust.local_addr().port();
    let _node = Node::start(
        &dir,
        "permission.js",
        &json!({
            "backend": node_backend(&dir, "permission", node_port, &external, json!({})),
            "permission": {"enabled": true},
            "discovery": {"endpoints": [{
                "target": format!("http://127.0.0.1:{rust_port}/api/{{{{pluginId}}}}"),
                "plugins": ["todo", "auth"],
            }]},
        }),
        "/.backstage/health/v1/readiness",
    )
    .await;
    let client = reqwest::Client::new();
    let bob = crate::auth::user_token("user:default/bob", None);

    // With resource refs: the permission backend has the Rust plugin apply the conditions.
    let read = json!({"type": "resource", "name": "todo.item.read", "attributes": {"action": "read"}, "resourceType": "todo-item"});
    let res = client
        .post(format!(
            "http://127.0.0.1:{node_port}/api/permission/authorize"
        ))
        .bearer_auth(&bob)
        .json(&json!({"items": [
            {"id": "1", "permission": read, "resourceRef": "todo:1"},
            {"id": "2", "permission": read, "resourceRef": "todo:2"},
        ]}))
        .send()
        .await
        .unwrap();
    let decided: Value = res.json().await.unwrap();
    assert_eq!(
        decided,
        json!({"items": [{"id": "1", "result": "ALLOW"}, {"id": "2", "result": "DENY"}]})
    );

    // Without: the Rust plugin asks for a conditional decision and applies it itself.
    let res = client
        .get(format!("http://127.0.0.1:{rust_port}/api/todo/todos"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    assert_eq!(res.json::<Vec<u32>>().await.unwrap(), [1]);

    let metadata = |base: String| {
        let request = client.get(format!("{base}{METADATA}")).bearer_auth(token);
        async move { request.send().await.unwrap().json::<Value>().await.unwrap() }
    };
    let rust_metadata = metadata(format!("http://127.0.0.1:{rust_port}/api/todo")).await;
    let ts_metadata = metadata(format!("http://127.0.0.1:{node_port}/api/tstodo")).await;
    assert_eq!(rust_metadata, ts_metadata);
    rust.stop().await.unwrap();
}
