// A bad argument to #[service] is one error: the service is still injectable where it is used.
use backstage::prelude::*;

#[service(scope = "roo")]
#[derive(Clone)]
pub struct Audit {
    #[inject]
    logger: RootLogger,
}

#[service(scope = "root")]
#[derive(Clone)]
pub struct Ledger {
    #[inject]
    audit: Audit,
}

#[backend_plugin(id = "carmen")]
pub struct Carmen {
    #[inject]
    audit: Audit,
    #[inject]
    ledger: Ledger,
}

fn main() {}
