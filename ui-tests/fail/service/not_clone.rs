use backstage::prelude::*;

#[service]
pub struct Audit {
    #[inject]
    logger: Logger,
}

fn main() {}
