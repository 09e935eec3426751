//! The legal surface of `#[service]`.
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use backstage::plugin::Service as _;
use backstage::prelude::*;

/// Root-scoped, injecting root services only.
#[service(scope = "root", id = "carmen.audit")]
#[derive(Clone)]
pub struct Audit {
    #[inject]
    logger: RootLogger,
    #[inject]
    config: RootConfig,
    #[inject]
    discovery: Discovery,
    count: Arc<AtomicU64>,
}

/// Plugin-scoped (the default), injecting plugin and root services and another custom service.
#[service]
#[derive(Clone)]
pub struct Greeter {
    #[inject]
    logger: Logger,
    #[inject]
    audit: Audit,
}

/// Explicitly plugin-scoped, with no dependencies.
#[service(scope = "plugin")]
#[derive(Clone, Default)]
pub struct Empty;

/// A root service injecting another custom root service.
#[service(scope = "root")]
#[derive(Clone)]
pub struct Report {
    #[inject]
    audit: Audit,
}

/// A lazy root service finished by an `init` method.
#[service(scope = "root", lazy, init = open)]
#[derive(Clone)]
pub struct Pool {
    #[inject]
    config: RootConfig,
    size: usize,
}

impl Pool {
    async fn open(&mut self) -> backstage::Result<()> {
        self.size = self.config.get_optional("pool.size")?.unwrap_or(4);
        Ok(())
    }
}

#[backend_plugin(id = "carmen")]
pub struct Carmen {
    #[inject]
    greeter: Greeter,
    #[inject]
    empty: Empty,
    #[inject]
    pool: Pool,
}

pub(super) fn main() {
    assert_eq!(Audit::ID, "carmen.audit");
    assert!(Greeter::ID.ends_with("::Greeter"), "{}", Greeter::ID);
    assert_eq!(Greeter::DEPENDENCIES, ["core.logger", "carmen.audit"]);
    fn touch(c: &Carmen, r: &Report) -> usize {
        let _ = (&c.greeter.logger, &c.greeter.audit, &c.empty, c.pool.size);
        let _ = (&r.audit.logger, &r.audit.config, &r.audit.discovery, &r.audit.count);
        1
    }
    let _ = touch;
}
