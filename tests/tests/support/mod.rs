//! Helpers shared by the integration tests.
#![allow(dead_code)]

use backstage::plugin::BoxFuture;
use backstage::{
    Auth, AuthenticateOptions, Authenticator, Credentials, Principal, StaticTokens, User,
};
use serde_json::{Value, json};

/// The static token every test backend accepts (service principal `tests`).
pub const SERVICE_TOKEN: &str = "service-token-for-tests";
/// A token the test authenticator turns into user credentials for `user:default/alice`.
pub const USER_TOKEN: &str = "user-token-alice";

/// Static tokens from config, plus one user token: real backends get user tokens from
/// Backstage's auth backend, which these tests do not run.
pub struct TestAuthenticator {
    pub statics: StaticTokens,
}

impl Authenticator for TestAuthenticator {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
        options: AuthenticateOptions,
    ) -> BoxFuture<'a, backstage::Result<Credentials>> {
        Box::pin(async move {
            if token == USER_TOKEN {
                return Ok(Credentials::new(Principal::User(User {
                    user_entity_ref: "user:default/alice".to_owned(),
                    ownership_entity_refs: Some(vec![
                        "user:default/alice".to_owned(),
                        "group:default/team-a".to_owned(),
                    ]),
                })));
            }
            self.statics.authenticate(token, options).await
        })
    }
}

pub fn test_auth() -> Auth {
    Auth::new(TestAuthenticator {
        statics: StaticTokens::from_pairs([(SERVICE_TOKEN, "tests")]).expect("valid token"),
    })
}

/// A config that binds to a free loopback port.
pub fn loopback_config() -> Value {
    json!({ "backend": { "listen": { "host": "127.0.0.1", "port": 0 } } })
}

pub fn client() -> reqwest::Client {
    reqwest::Client::builder().build().expect("client")
}

/// Status, headers and body of a response.
pub async fn read(response: reqwest::Response) -> (u16, reqwest::header::HeaderMap, String) {
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.text().await.expect("body");
    (status, headers, body)
}

/// Backstage's error body, exactly.
pub fn error_body(name: &str, message: &str, method: &str, url: &str, status: u16) -> String {
    let s = |text: &str| Value::String(text.to_owned()).to_string();
    format!(
        r#"{{"error":{{"name":{},"message":{}}},"request":{{"method":{},"url":{}}},"response":{{"statusCode":{status}}}}}"#,
        s(name),
        s(message),
        s(method),
        s(url)
    )
}
