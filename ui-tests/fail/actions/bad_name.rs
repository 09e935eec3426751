// An action's name is lowercase words joined by dashes; the error suggests the fixed name.
use backstage::prelude::*;

#[backend_plugin(id = "todo")]
pub struct Todo;

#[routes]
impl Todo {
    /// Counts the todos.
    #[action(name = "Count_Todos", title = "Count todos")]
    async fn count(&self) -> Result<u32> {
        Ok(0)
    }
}

fn main() {}
