use backstage::prelude::*;

#[backend_plugin(id = "carmen")]
pub struct Carmen {
    #[injct]
    logger: Logger,
}

fn main() {}
