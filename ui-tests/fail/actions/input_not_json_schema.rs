// An action's input must describe itself (`schemars::JsonSchema`): the error is at the type.
use backstage::prelude::*;

#[derive(serde::Deserialize)]
pub struct NewTodo {
    pub title: String,
}

#[backend_plugin(id = "todo")]
pub struct Todo;

#[routes]
impl Todo {
    /// Creates a todo.
    #[action(name = "create", title = "Create")]
    async fn create(&self, input: NewTodo) -> Result<String> {
        Ok(input.title)
    }
}

fn main() {}
