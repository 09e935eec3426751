//! Helpers shared by the integration tests.
#![allow(dead_code)]

use backstage::testing::mock::{self, MockAuthenticator};
use backstage::{Auth, Credentials, Principal, StaticTokens};
use serde_json::{Value, json};

/// The static token every test backend accepts (service principal `tests`).
pub const SERVICE_TOKEN: &str = "service-token-for-tests";
/// The auth service of the test backends: `backstage::testing`'s mock tokens, and the static
/// token above.
pub fn test_auth() -> Auth {
    Auth::new(MockAuthenticator::new(
        StaticTokens::from_pairs([(SERVICE_TOKEN, "tests")]).expect("valid token"),
    ))
}

/// A user token for `user:default/alice`, member of `group:default/team-a` (a mock token: real
/// backends get user tokens from Backstage's auth backend, which these tests do not run).
pub fn user_token() -> String {
    mock::user_with_ownership(
        "user:default/alice",
        &["user:default/alice", "group:default/team-a"],
    )
    .token()
    .expect("a mock user has a token")
    .to_owned()
}

/// Who a request's credentials name, as the auth tests' `whoami` routes answer:
/// `{"type":"service","subject":..}`, `{"type":"user","userEntityRef":..,"actor":..}` or
/// `{"type":"none"}`.
pub fn principal_json(creds: &Credentials) -> Value {
    match creds.any() {
        Principal::User(user) => {
            json!({"type": "user", "userEntityRef": user.user_entity_ref, "actor": creds.actor()})
        }
        Principal::Service(service) => json!({"type": "service", "subject": service.subject}),
        Principal::None => json!({"type": "none"}),
    }
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

/// Everything logged in this test binary, captured by a global subscriber installed once.
///
/// A global subscriber, not a per-thread one: `tracing` caches per call site whether anyone
/// listens, and a call site first hit on a thread without a subscriber would stay silent for
/// the others. Tests look for their own distinctive lines in the shared text.
pub fn logs() -> &'static Captured {
    static LOGS: std::sync::OnceLock<Captured> = std::sync::OnceLock::new();
    LOGS.get_or_init(|| {
        let captured = Captured::default();
        let writer = captured.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("no other global subscriber");
        captured
    })
}

#[derive(Clone, Default)]
pub struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
