use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

impl Carmen {
    #[backstage::route(get, "/health")]
    async fn health(&self) -> &'static str {
        "ok"
    }
}

fn main() {}
