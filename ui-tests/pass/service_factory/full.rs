//! The legal surface of `#[service_factory]`.
use backstage::prelude::*;

#[service(id = "example.clock")]
#[derive(Clone, Default)]
pub struct Clock {
    pub fixed: Option<String>,
}

/// Fallible, with dependencies.
#[service_factory]
async fn clock(#[inject] config: RootConfig, #[inject] meta: PluginMetadata) -> Result<Clock> {
    let fixed: Option<String> = config.get_optional(&format!("{}.clock", meta.id()))?;
    Ok(Clock { fixed })
}

#[service(scope = "root")]
#[derive(Clone, Default)]
pub struct Banner {
    pub text: String,
}

/// Infallible, without dependencies.
#[service_factory]
async fn banner() -> Banner {
    Banner { text: "hello".into() }
}

pub(super) fn main() {}
