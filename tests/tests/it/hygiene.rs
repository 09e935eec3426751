//! The generated code names only `::backstage::__private` and `::core`/`::std` paths: a plugin
//! compiles without the prelude and next to local items called `Result`, `Router`, `inventory`,
//! `axum`, `Box` and `Ok`.
#![no_implicit_prelude]

mod inventory {}
mod axum {}
#[allow(dead_code)]
struct Router;
#[allow(dead_code)]
type Result<T> = ::std::result::Result<T, ()>;
#[allow(dead_code)]
struct Box;
#[allow(dead_code)]
struct Ok;

use ::backstage::prelude::{Credentials, Logger, Path, backend_plugin, routes};

#[backend_plugin(id = "hygienic")]
pub struct Hygienic {
    #[inject]
    logger: Logger,
    count: ::std::sync::atomic::AtomicU32,
}

#[routes]
impl Hygienic {
    #[init]
    async fn init(&self) {
        self.logger.info("hygienic");
    }

    #[route(get, "/items/{id}", auth = "unauthenticated")]
    async fn item(&self, Path(id): Path<u32>, _creds: Credentials) -> ::std::string::String {
        self.count
            .fetch_add(1, ::std::sync::atomic::Ordering::SeqCst);
        ::std::format!("item {id}")
    }
}

#[test]
fn a_plugin_compiles_and_serves_without_the_prelude() {
    ::tokio::runtime::Runtime::new().unwrap().block_on(serve());
}

async fn serve() {
    let config: ::serde_json::Value = ::serde_json::from_str(
        r#"{ "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } }"#,
    )
    .unwrap();
    let backend = ::backstage::Backend::builder()
        .plugin::<Hygienic>()
        .config_value(config)
        .start()
        .await
        .unwrap();
    let body = ::reqwest::get(backend.url("/api/hygienic/items/7"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    ::std::assert_eq!(body, "item 7");
    backend.stop().await.unwrap();
}
