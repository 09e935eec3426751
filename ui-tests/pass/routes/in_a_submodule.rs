//! `#[routes]` in another module than the plugin, naming it by path: its client methods go on
//! the client beside the plugin.
use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

mod routes {
    use backstage::prelude::*;

    #[routes]
    impl super::Carmen {
        #[route(get, "/items/{id}")]
        async fn item(&self, Path(id): Path<i64>) -> String {
            id.to_string()
        }
    }
}

async fn call(client: &PluginClient, creds: &Credentials) -> Result<String> {
    CarmenClient::new(client).item(7, creds).await
}

pub(super) fn main() {
    let _ = call;
}
