use backstage::prelude::*;

pub struct Database;

#[backend_plugin(id = "carmen")]
pub struct Carmen {
    #[inject]
    logger: Logger,
    #[inject]
    db: Database,
}

fn main() {}
