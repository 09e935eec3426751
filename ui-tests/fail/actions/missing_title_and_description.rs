// An action needs a title and a doc comment (its description): both reported at once.
use backstage::prelude::*;

#[backend_plugin(id = "todo")]
pub struct Todo;

#[routes]
impl Todo {
    #[action(name = "count")]
    async fn count(&self) -> Result<u32> {
        Ok(0)
    }
}

fn main() {}
