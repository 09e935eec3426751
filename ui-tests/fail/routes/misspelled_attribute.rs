use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen;

#[routes]
impl Carmen {
    #[rout(get, "/health")]
    async fn health(&self) -> &'static str {
        "ok"
    }

    #[route(get, "/log")]
    async fn log(&self, #[injet] logger: Logger) -> &'static str {
        logger.info("hi");
        "ok"
    }
}

fn main() {}
