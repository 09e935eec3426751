// An action returns `Result<T>`.
use backstage::prelude::*;

#[backend_plugin(id = "todo")]
pub struct Todo;

#[routes]
impl Todo {
    /// Counts the todos.
    #[action(name = "count", title = "Count")]
    async fn count(&self) -> u32 {
        0
    }
}

fn main() {}
