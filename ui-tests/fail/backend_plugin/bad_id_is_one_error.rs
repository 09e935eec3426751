// A bad plugin id is one error: code that names the plugin still compiles around it.
use backstage::prelude::*;

#[backend_plugin(id = "Carmen_Items")]
pub struct CarmenItems;

#[routes]
impl CarmenItems {
    #[route(get, "/items", auth = "unauthenticated")]
    async fn items(&self) -> &'static str {
        "[]"
    }
}

fn builder() -> backstage::BackendBuilder {
    backstage::Backend::builder().plugin::<CarmenItems>()
}

fn main() {
    let _ = builder();
}
