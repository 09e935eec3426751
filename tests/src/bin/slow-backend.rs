//! A backend with slow and failing routes, for the reliability tests.

use std::time::Duration;

use backstage::prelude::*;

/// Routes that take their time, or panic.
#[backend_plugin(id = "slow")]
pub struct Slow;

#[routes]
impl Slow {
    #[route(get, "/sleep/{ms}", auth = "unauthenticated")]
    async fn sleep(&self, Path(ms): Path<u64>) -> String {
        tokio::time::sleep(Duration::from_millis(ms)).await;
        format!("slept {ms} ms")
    }

    #[route(post, "/echo", auth = "unauthenticated")]
    async fn echo(&self, Json(body): Json<serde_json::Value>) -> String {
        body.to_string().len().to_string()
    }

    #[route(get, "/panic", auth = "unauthenticated")]
    async fn panic(&self) -> &'static str {
        panic!("this route always panics")
    }
}

fn main() {
    backstage::start()
}
