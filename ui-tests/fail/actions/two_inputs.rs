// An action takes one input; a second is an error at its type.
use backstage::prelude::*;

#[backend_plugin(id = "todo")]
pub struct Todo;

#[routes]
impl Todo {
    /// Adds.
    #[action(name = "add", title = "Add")]
    async fn add(&self, a: u32, b: u32, creds: Credentials) -> Result<u32> {
        let _ = creds;
        Ok(a + b)
    }
}

fn main() {}
