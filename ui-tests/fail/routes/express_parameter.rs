use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(get, "/items/:id")]
    async fn item(&self, Path(id): Path<i64>) -> String {
        id.to_string()
    }
}

fn main() {}
