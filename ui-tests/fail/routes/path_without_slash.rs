use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(get, "health")]
    async fn health(&self) -> &'static str {
        "ok"
    }
}

fn main() {}
