// Actions: an input struct, credentials, an injected service, no input, every attribute.
use backstage::prelude::*;

#[derive(serde::Deserialize, schemars::JsonSchema)]
pub struct NewTodo {
    pub title: String,
}

#[derive(serde::Serialize, schemars::JsonSchema)]
pub struct Created {
    pub id: u64,
}

#[backend_plugin(id = "todo")]
pub struct Todo;

#[routes]
impl Todo {
    /// Creates a todo.
    #[action(name = "create-todo", title = "Create a todo", destructive = false, idempotent = false)]
    async fn create(&self, input: NewTodo, creds: Credentials<UserPrincipal>, #[inject] logger: Logger) -> Result<Created> {
        logger.info(format!("{} by {}", input.title, creds.principal().user_entity_ref));
        Ok(Created { id: 1 })
    }

    /// Counts the todos.
    #[action(name = "count-todos", title = "Count todos", read_only = true, idempotent = true)]
    async fn count(&self) -> Result<u64> {
        Ok(0)
    }

    #[route(get, "/health", auth = "unauthenticated")]
    async fn health(&self) -> Json<Health> {
        Json(Health::ok())
    }
}

pub(super) fn main() {}
