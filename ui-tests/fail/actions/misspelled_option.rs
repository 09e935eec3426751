// A misspelled option names the one meant; a flag that is not a bool says so.
use backstage::prelude::*;

#[backend_plugin(id = "todo")]
pub struct Todo;

#[routes]
impl Todo {
    /// Counts.
    #[action(name = "count", title = "Count", readonly = true, idempotent = "yes")]
    async fn count(&self) -> Result<u32> {
        Ok(0)
    }
}

fn main() {}
