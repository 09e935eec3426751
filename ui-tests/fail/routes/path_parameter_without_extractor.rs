use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(get, "/items/{id}")]
    async fn item(&self) -> &'static str {
        "which one?"
    }
}

fn main() {}
