// Two actions of a block cannot share a name: both places are shown.
use backstage::prelude::*;

#[backend_plugin(id = "todo")]
pub struct Todo;

#[routes]
impl Todo {
    /// Counts.
    #[action(name = "count", title = "Count")]
    async fn count(&self) -> Result<u32> {
        Ok(0)
    }

    /// Counts again.
    #[action(name = "count", title = "Count again")]
    async fn count_again(&self) -> Result<u32> {
        Ok(1)
    }
}

fn main() {}
