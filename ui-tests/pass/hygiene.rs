//! The DSL compiles without the prelude and beside local items named like what generated code
//! uses: it names only `::backstage::__private`, `::core` and `::std` paths.
#![no_implicit_prelude]
#![allow(dead_code)]

mod inventory {}
mod axum {}
mod backstage_macros {}
struct Router;
type Result<T> = ::std::result::Result<T, ()>;
struct Box;
struct Ok;
struct Some;
struct Clone;
struct Arc;

#[::backstage::service(scope = "root")]
#[derive(::std::clone::Clone)]
pub struct Audit {
    #[inject]
    config: ::backstage::RootConfig,
}

#[::backstage::backend_plugin(id = "hygienic")]
pub struct Hygienic {
    #[inject]
    logger: ::backstage::Logger,
    #[inject]
    audit: Audit,
    count: ::std::sync::atomic::AtomicU32,
}

#[::backstage::routes]
impl Hygienic {
    #[init]
    async fn init(&self, #[inject] meta: ::backstage::PluginMetadata) -> ::backstage::Result<()> {
        self.logger.info(meta.id());
        ::core::result::Result::Ok(())
    }

    #[route(get, "/items/{id}", auth = "unauthenticated")]
    async fn item(
        &self,
        ::backstage::axum::extract::Path(id): ::backstage::axum::extract::Path<u32>,
        _creds: ::backstage::Credentials,
        #[inject] logger: ::backstage::Logger,
    ) -> ::std::string::String {
        logger.info("item");
        ::std::format!("item {id}")
    }
}

pub(super) fn main() {}
