use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(get, "/items/{id}")]
    async fn item(&self, Path(id): Path<i64>) -> Result<String> {
        Ok(id.to_string())
    }
}

/// Calls carmen's route with a string where its path takes a number.
async fn call(client: &PluginClient, creds: &Credentials) -> Result<String> {
    CarmenClient::new(client).item("seven", creds).await
}

fn main() {
    let _ = call;
}
