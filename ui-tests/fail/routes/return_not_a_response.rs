use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

pub struct Item {
    pub id: i64,
}

#[routes]
impl Carmen {
    #[route(get, "/item")]
    async fn item(&self) -> Item {
        Item { id: 1 }
    }
}

fn main() {}
