use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(get, "/items")]
    async fn items(&self) -> &'static str {
        "all"
    }

    #[route(post, "/items")]
    async fn create(&self) -> &'static str {
        "created"
    }

    #[route(get, "/items")]
    async fn items_again(&self) -> &'static str {
        "all, again"
    }
}

fn main() {}
