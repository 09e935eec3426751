use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[init]
    async fn init(&self) {}

    #[init]
    async fn setup(&self) {}
}

fn main() {}
