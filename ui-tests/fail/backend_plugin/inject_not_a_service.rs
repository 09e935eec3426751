use backstage::prelude::*;

pub struct Cache;

#[backend_plugin(id = "carmen")]
pub struct Carmen {
    #[inject]
    logger: Logger,
    #[inject]
    cache: Cache,
}

fn main() {}
