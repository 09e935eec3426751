use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(get, "/health", auth = "public")]
    async fn health(&self) -> &'static str {
        "ok"
    }

    #[route(get, "/cookie", auth = "user_cookie")]
    async fn cookie(&self) -> &'static str {
        "ok"
    }
}

fn main() {}
