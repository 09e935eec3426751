use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(get, "/items")]
    async fn items(&self, Path(id): Path<i64>) -> String {
        id.to_string()
    }
}

fn main() {}
