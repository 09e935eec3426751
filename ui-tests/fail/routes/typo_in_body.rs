// A typo inside a handler's body is rustc's to report, once: #[routes] never reads bodies.
use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(get, "/health", auth = "unauthenticated")]
    async fn health(&self) -> &'static str {
        let x = 1 +;
        "ok"
    }

    #[route(get, "/other", auth = "unauthenticated")]
    async fn other(&self) -> &'static str {
        "ok"
    }
}

fn main() {}
