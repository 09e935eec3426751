use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[route(get, "/me", auth = "unauthenticated")]
    async fn me(&self, creds: Credentials<UserPrincipal>) -> String {
        creds.principal().user_entity_ref.clone()
    }

    #[route(get, "/service", auth = "unauthenticated")]
    async fn service(&self, creds: Credentials<backstage::ServicePrincipal>) -> String {
        creds.principal().subject.clone()
    }
}

fn main() {}
