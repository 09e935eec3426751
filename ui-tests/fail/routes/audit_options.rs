use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(post, "/items", audit = "item-create", severity = "hihg")]
    async fn create(&self) -> StatusCode {
        StatusCode::CREATED
    }

    #[route(delete, "/items", severity = "high")]
    async fn clear(&self) -> StatusCode {
        StatusCode::NO_CONTENT
    }

    #[route(get, "/items", audit = "item list")]
    async fn list(&self) -> &'static str {
        "[]"
    }
}

fn main() {}
