//! Actions: declared with `#[action]`, listed and invoked as Backstage's actions registry
//! serves them, filtered by `backend.actions`, and called from Rust through `Actions`.

use backstage::actions::Actions;
use backstage::prelude::*;
use backstage::testing::{TestBackend, json, mock};
use serde_json::Value;

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct NewTodo {
    /// What to do.
    title: String,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Todo {
    id: u64,
    title: String,
    author: String,
}

#[backend_plugin(id = "todo")]
pub struct TodoPlugin {
    #[inject]
    logger: Logger,
}

#[routes]
impl TodoPlugin {
    /// Creates a todo item.
    #[action(name = "create-todo", title = "Create a todo", idempotent = false)]
    async fn create_todo(&self, input: NewTodo, creds: Credentials) -> Result<Todo> {
        if input.title.trim().is_empty() {
            return Err(Error::input("title must not be empty"));
        }
        self.logger.info(format!("creating {}", input.title));
        let author = match creds.any() {
            Principal::User(user) => user.user_entity_ref.clone(),
            Principal::Service(service) => service.subject.clone(),
            Principal::None => String::new(),
        };
        Ok(Todo {
            id: 7,
            title: input.title,
            author,
        })
    }

    /// Counts the todo items.
    #[action(name = "count-todos", title = "Count todos", read_only = true)]
    async fn count(&self, #[inject] config: RootConfig) -> Result<u64> {
        Ok(config.get_optional::<u64>("todo.count")?.unwrap_or(3))
    }

    /// Only users may archive.
    #[action(name = "archive", title = "Archive everything", destructive = true)]
    async fn archive(&self, creds: Credentials<UserPrincipal>) -> Result<String> {
        Ok(format!("archived by {}", creds.principal().user_entity_ref))
    }
}

/// A plugin that calls the others' actions through the `Actions` service.
#[backend_plugin(id = "agent")]
pub struct Agent {
    #[inject]
    actions: Actions,
}

#[routes]
impl Agent {
    #[route(get, "/tools")]
    async fn tools(&self, creds: Credentials) -> Result<Json<Vec<String>>> {
        let listed = self.actions.list(&creds).await?;
        Ok(Json(listed.into_iter().map(|a| a.id).collect()))
    }

    #[route(post, "/call/{id}")]
    async fn call(
        &self,
        Path(id): Path<String>,
        creds: Credentials,
        Json(input): Json<Value>,
    ) -> Result<Json<Value>> {
        Ok(Json(self.actions.invoke(&id, input, &creds).await?))
    }
}

async fn start(config: Value) -> TestBackend {
    TestBackend::builder()
        .plugin::<TodoPlugin>()
        .plugin::<Agent>()
        .config(config)
        .start()
        .await
        .unwrap()
}

const LIST: &str = "/api/todo/.backstage/actions/v1/actions";

#[backstage::test]
async fn actions_are_listed_with_their_schemas_and_attributes() {
    let backend = start(json!({})).await;
    let res = backend
        .get(LIST)
        .credentials(mock::service("tests"))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    let body: Value = res.json();
    let actions = body["actions"].as_array().unwrap();
    let ids: Vec<&str> = actions.iter().map(|a| a["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        ["todo:create-todo", "todo:count-todos", "todo:archive"]
    );
    let create = &actions[0];
    assert_eq!(create["name"], "create-todo");
    assert_eq!(create["title"], "Create a todo");
    assert_eq!(create["description"], "Creates a todo item.");
    assert_eq!(create["pluginId"], "todo");
    assert_eq!(
        create["attributes"],
        json!({"destructive": true, "idempotent": false, "readOnly": false})
    );
    let input = &create["schema"]["input"];
    assert_eq!(input["$schema"], "http://json-schema.org/draft-07/schema#");
    assert_eq!(input["type"], "object");
    assert_eq!(input["required"], json!(["title"]));
    assert_eq!(input["properties"]["title"]["description"], "What to do.");
    assert_eq!(
        create["schema"]["output"]["required"],
        json!(["id", "title", "author"])
    );
    let count = &actions[1];
    assert_eq!(
        count["attributes"],
        json!({"destructive": false, "idempotent": false, "readOnly": true})
    );
    assert_eq!(
        count["schema"]["input"],
        json!({"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "properties": {}, "additionalProperties": false})
    );
}

#[backstage::test]
async fn the_list_needs_credentials() {
    let backend = start(json!({})).await;
    let res = backend.get(LIST).send().await;
    assert_eq!(res.status(), 401);
}

#[backstage::test]
async fn the_status_tells_services_whether_the_plugin_has_actions() {
    let backend = start(json!({})).await;
    let status = "/api/todo/.backstage/actions/v1/status";
    let res = backend
        .get(status)
        .credentials(mock::service("tests"))
        .send()
        .await;
    assert_eq!(res.json::<Value>(), json!({"hasActions": true}));
    let res = backend
        .get(status)
        .credentials(mock::user("user:default/ada"))
        .send()
        .await;
    assert_eq!(res.status(), 403, "{}", res.text());
}

#[backstage::test]
async fn invoking_runs_the_action_with_the_callers_credentials() {
    let backend = start(json!({})).await;
    let res = backend
        .post("/api/todo/.backstage/actions/v1/actions/todo%3Acreate-todo/invoke")
        .credentials(mock::user("user:default/ada"))
        .json(&json!({"title": "write tests"}))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(
        res.json::<Value>(),
        json!({"output": {"id": 7, "title": "write tests", "author": "user:default/ada"}})
    );
    // v2: the input wrapped, with (no) secrets.
    let res = backend
        .post("/api/todo/.backstage/actions/v2/actions/todo:count-todos/invoke")
        .credentials(mock::service("tests"))
        .json(&json!({"input": {}}))
        .send()
        .await;
    assert_eq!(res.json::<Value>(), json!({"output": 3}));
}

#[backstage::test]
async fn invocation_errors_are_backstages() {
    let backend = start(json!({})).await;
    let invoke = |id: &str, body: Value| {
        backend
            .post(&format!(
                "/api/todo/.backstage/actions/v1/actions/{id}/invoke"
            ))
            .credentials(mock::service("tests"))
            .json(&body)
            .send()
    };
    let res = invoke("todo:nothing", json!({})).await;
    assert_eq!(res.status(), 404);
    assert_eq!(
        res.error(),
        (
            "NotFoundError".into(),
            "Action \"todo:nothing\" not found".into()
        )
    );
    let res = invoke("todo:create-todo", json!({"title": 5})).await;
    assert_eq!(res.status(), 400);
    let (name, message) = res.error();
    assert_eq!(name, "InputError");
    assert!(
        message.starts_with(
            "Invalid input to action \"todo:create-todo\"; caused by Error: title: invalid type"
        ),
        "{message}"
    );
    let body: Value = res.json();
    assert!(
        body["error"]["cause"]["message"]
            .as_str()
            .unwrap()
            .contains("title"),
        "{body}"
    );
    let res = invoke("todo:create-todo", json!({"title": " "})).await;
    assert_eq!(
        res.error(),
        ("InputError".into(), "title must not be empty".into())
    );
    // A user-only action refuses a service.
    let res = invoke("todo:archive", json!({})).await;
    assert_eq!(res.status(), 403, "{}", res.text());
    let res = backend
        .post("/api/todo/.backstage/actions/v2/actions/todo:count-todos/invoke")
        .credentials(mock::service("tests"))
        .json(&json!({"input": {}, "secrets": {"token": "x"}}))
        .send()
        .await;
    assert_eq!(
        res.error(),
        (
            "InputError".into(),
            "Action \"todo:count-todos\" does not accept secrets".into()
        )
    );
}

#[backstage::test]
async fn the_deployment_chooses_which_actions_are_offered() {
    let backend = start(json!({"backend": {"actions": {"filter": {
        "exclude": [{"attributes": {"destructive": true}}],
    }}}}))
    .await;
    let res = backend
        .get(LIST)
        .credentials(mock::service("tests"))
        .send()
        .await;
    let body: Value = res.json();
    let ids: Vec<&str> = body["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["todo:count-todos"]);
    let res = backend
        .post("/api/todo/.backstage/actions/v1/actions/todo:archive/invoke")
        .credentials(mock::user("user:default/ada"))
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(
        res.status(),
        404,
        "a filtered action cannot be invoked either"
    );

    let elsewhere = start(json!({"backend": {"actions": {"pluginSources": ["catalog"]}}})).await;
    let res = elsewhere
        .get(LIST)
        .credentials(mock::service("tests"))
        .send()
        .await;
    assert_eq!(res.json::<Value>(), json!({"actions": []}));
}

#[backstage::test]
async fn a_plugin_without_actions_serves_no_actions_endpoints() {
    let backend = start(json!({})).await;
    let res = backend
        .get("/api/agent/.backstage/actions/v1/actions")
        .credentials(mock::service("tests"))
        .send()
        .await;
    assert_eq!(res.status(), 404);
}

#[backstage::test]
async fn plugins_list_and_invoke_other_plugins_actions() {
    let backend = start(json!({"backend": {"actions": {"pluginSources": ["todo"]}}})).await;
    let res = backend
        .get("/api/agent/tools")
        .credentials(mock::user("user:default/ada"))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(
        res.json::<Vec<String>>(),
        ["todo:create-todo", "todo:count-todos", "todo:archive"]
    );
    let res = backend
        .post("/api/agent/call/todo:archive")
        .credentials(mock::user("user:default/ada"))
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(res.status(), 200, "{}", res.text());
    assert_eq!(res.json::<Value>(), json!("archived by user:default/ada"));
    // The callee's error arrives as what it is.
    let res = backend
        .post("/api/agent/call/todo:create-todo")
        .credentials(mock::user("user:default/ada"))
        .json(&json!({"title": ""}))
        .send()
        .await;
    assert_eq!(
        res.error(),
        ("InputError".into(), "title must not be empty".into())
    );
}

/// One JSON-RPC call to the MCP server of the TypeScript backend, answered as an event stream
/// or as JSON.
async fn mcp(node_port: u16, token: &str, method: &str, params: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("http://127.0.0.1:{node_port}/api/mcp-actions/v1"))
        .bearer_auth(token)
        .header("accept", "application/json, text/event-stream")
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{method}: {text}");
    let data = text
        .lines()
        .find_map(|line| line.strip_prefix("data: "))
        .unwrap_or(&text);
    serde_json::from_str(data).unwrap_or_else(|e| panic!("{method}: {e}: {text}"))
}

/// The static token of the MCP test, which both backends accept.
const MCP_TOKEN: &str = "mcp-static-token-0123456789";

fn mcp_external_access() -> Value {
    json!([{"type": "static", "options": {"token": MCP_TOKEN, "subject": "agent-tests"}}])
}

/// The Rust side of the MCP test: the todo and agent plugins, offering the actions of `todo`
/// and of the TypeScript plugin `tsactions` on `node_port`.
async fn rust_beside_typescript(node_port: u16) -> backstage::Backend {
    backstage::Backend::builder()
        .plugin::<TodoPlugin>()
        .plugin::<Agent>()
        .config_value(json!({
            "backend": {
                "listen": {"host": "127.0.0.1", "port": 0},
                "auth": {"externalAccess": mcp_external_access()},
                "actions": {"pluginSources": ["todo", "tsactions"]},
            },
            "discovery": {"endpoints": [{
                "target": format!("http://127.0.0.1:{node_port}/api/{{{{pluginId}}}}"),
                "plugins": ["tsactions", "mcp-actions"],
            }]},
        }))
        .start()
        .await
        .unwrap()
}

/// Backstage's MCP actions backend (`tests/interop/mcp.js`) on `node_port`, with the Rust
/// plugins on `rust_port`.
async fn typescript_mcp_server(
    dir: &std::path::Path,
    node_port: u16,
    rust_port: u16,
) -> crate::interop::Node {
    use crate::interop::{Node, node_backend};
    let sources = json!({"actions": {"pluginSources": ["todo", "tsactions"]}});
    let config = json!({
        "backend": node_backend(dir, "mcp", node_port, &mcp_external_access(), sources),
        "discovery": {"endpoints": [{
            "target": format!("http://127.0.0.1:{rust_port}/api/{{{{pluginId}}}}"),
            "plugins": ["todo", "agent"],
        }]},
    });
    Node::start(dir, "mcp.js", &config, "/.backstage/health/v1/readiness").await
}

/// tools/list: the Rust actions, with their schemas and hints, next to the TypeScript one.
async fn assert_mcp_lists_the_rust_actions(node_port: u16) {
    let listed = mcp(node_port, MCP_TOKEN, "tools/list", json!({})).await;
    let tools = listed["result"]["tools"]
        .as_array()
        .unwrap_or_else(|| panic!("{listed}"));
    let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "todo.create-todo",
            "todo.count-todos",
            "todo.archive",
            "tsactions.shout"
        ],
        "{listed}"
    );
    let create = &tools[0];
    assert_eq!(create["description"], "Creates a todo item.");
    assert_eq!(create["inputSchema"]["required"], json!(["title"]));
    assert_eq!(create["annotations"]["title"], "Create a todo");
    assert_eq!(create["annotations"]["destructiveHint"], true);
    assert_eq!(tools[1]["annotations"]["readOnlyHint"], true);
}

/// tools/call runs the Rust action and returns its output; a service caller reaches it as the
/// MCP plugin itself (Backstage delegates only users' identities).
async fn assert_mcp_runs_a_rust_action(node_port: u16) {
    let arguments = json!({"name": "todo.create-todo", "arguments": {"title": "ship it"}});
    let called = mcp(node_port, MCP_TOKEN, "tools/call", arguments).await;
    assert_eq!(
        called["result"]["structuredContent"],
        json!({"id": 7, "title": "ship it", "author": "plugin:mcp-actions"}),
        "{called}"
    );
}

/// A Rust plugin lists the TypeScript plugin's action and invokes it.
async fn assert_rust_invokes_a_typescript_action(rust_port: u16) {
    let agent = |path: &str| format!("http://127.0.0.1:{rust_port}/api/agent{path}");
    let client = reqwest::Client::new();
    let tools: Vec<String> = client
        .get(agent("/tools"))
        .bearer_auth(MCP_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(tools.contains(&"tsactions:shout".to_owned()), "{tools:?}");
    let shouted: Value = client
        .post(agent("/call/tsactions:shout"))
        .bearer_auth(MCP_TOKEN)
        .json(&json!({"text": "hello"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(shouted, json!({"text": "HELLO (for service)"}));
}

/// Backstage's MCP actions backend, from npm, offers the Rust plugin's actions as MCP tools
/// and runs them; a Rust plugin lists and invokes a TypeScript plugin's action. One test, so
/// that Node starts once.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn backstages_mcp_server_offers_rust_actions_and_rust_calls_typescript_actions() {
    let Some(dir) = crate::interop::installed().await else {
        return;
    };
    let node_port = crate::interop::free_port();
    let rust = rust_beside_typescript(node_port).await;
    let rust_port = rust.local_addr().port();
    let _node = typescript_mcp_server(&dir, node_port, rust_port).await;
    assert_mcp_lists_the_rust_actions(node_port).await;
    assert_mcp_runs_a_rust_action(node_port).await;
    assert_rust_invokes_a_typescript_action(rust_port).await;
    rust.stop().await.unwrap();
}

#[backstage::test]
async fn a_test_gives_a_plugin_mock_actions_to_call() {
    let backend = TestBackend::builder()
        .plugin::<Agent>()
        .service(mock::actions(
            "catalog",
            vec![backstage::actions::Action::new(
                "count-entities",
                "Count entities",
                "How many entities there are.",
                |_: Value, _: Credentials| async move { Ok(42) },
            )],
        ))
        .start()
        .await
        .unwrap();
    let res = backend
        .get("/api/agent/tools")
        .credentials(mock::user("user:default/ada"))
        .send()
        .await;
    assert_eq!(res.json::<Vec<String>>(), ["catalog:count-entities"]);
    let res = backend
        .post("/api/agent/call/catalog:count-entities")
        .credentials(mock::user("user:default/ada"))
        .json(&json!({}))
        .send()
        .await;
    assert_eq!(res.json::<Value>(), json!(42));
}
