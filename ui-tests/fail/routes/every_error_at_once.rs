use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(fetch, "items/:id", auth = "anyone")]
    fn item(self) -> &'static str {
        "x"
    }
}

fn main() {}
