//! Backstage's auth over real HTTP: plugin tokens between plugins, user tokens verified against
//! the auth plugin's JWKS, limited tokens and the cookie endpoints, external access, and the
//! attacks a token verifier must refuse.
//!
//! A fake `auth` plugin in this backend stands in for Backstage's auth backend: it serves the
//! JWKS of a key these tests sign user tokens with, and `/v1/userinfo`.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::support::*;
use backstage::prelude::*;
use backstage::testing::MockServer;
use backstage::testing::wiremock::matchers::{method, path};
use backstage::testing::wiremock::{Mock, ResponseTemplate};
use backstage::{Backend, BackendBuilder, PluginClient, UserInfo};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde_json::{Value, json};

const USER_KID: &str = "user-key-1";
const ISSUER_KID: &str = "issuer-key-1";

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn key_pair() -> EcdsaKeyPair {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap()
}

/// The auth backend's signing key.
fn user_key() -> &'static EcdsaKeyPair {
    static KEY: OnceLock<EcdsaKeyPair> = OnceLock::new();
    KEY.get_or_init(key_pair)
}

/// An external issuer's signing key (`externalAccess` type `jwks`).
fn issuer_key() -> &'static EcdsaKeyPair {
    static KEY: OnceLock<EcdsaKeyPair> = OnceLock::new();
    KEY.get_or_init(key_pair)
}

fn jwk(pair: &EcdsaKeyPair, kid: &str) -> Value {
    let point = pair.public_key().as_ref();
    json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..]), "kid": kid, "alg": "ES256"})
}

fn sign(pair: &EcdsaKeyPair, header: &Value, claims: &Value) -> String {
    sign_raw(pair, &header.to_string(), &claims.to_string())
}

fn sign_raw(pair: &EcdsaKeyPair, header: &str, claims: &str) -> String {
    let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
    let sig = pair
        .sign(&ring::rand::SystemRandom::new(), input.as_bytes())
        .unwrap();
    format!("{input}.{}", b64(sig.as_ref()))
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A user token as Backstage's auth backend issues it, `uip` included.
pub(crate) fn user_token(sub: &str, ent: Option<&[&str]>) -> String {
    let (iat, exp) = (now(), now() + 3600);
    // The auth backend signs the limited form exactly as written here (key order matters).
    let limited = sign_raw(
        user_key(),
        &format!(r#"{{"typ":"vnd.backstage.limited-user","alg":"ES256","kid":"{USER_KID}"}}"#),
        &format!(r#"{{"sub":"{sub}","iat":{iat},"exp":{exp}}}"#),
    );
    let uip = limited.rsplit('.').next().unwrap();
    let mut claims = json!({"iss": "http://localhost/api/auth", "sub": sub, "aud": "backstage", "iat": iat, "exp": exp, "uip": uip});
    if let Some(ent) = ent {
        claims["ent"] = json!(ent);
    }
    sign(
        user_key(),
        &json!({"typ": "vnd.backstage.user", "alg": "ES256", "kid": USER_KID}),
        &claims,
    )
}

/// How many times a backend's fake auth plugin served its JWKS: a root service, so that each
/// backend counts its own fetches, whatever other tests run at the same time.
#[service(scope = "root", id = "tests.auth-jwks-fetches")]
#[derive(Clone, Default)]
pub struct JwksFetches {
    count: Arc<AtomicUsize>,
}

impl JwksFetches {
    fn count(&self) -> usize {
        self.count.load(Ordering::SeqCst)
    }
}

fn userinfo_ent() -> &'static Mutex<Vec<String>> {
    static ENT: OnceLock<Mutex<Vec<String>>> = OnceLock::new();
    ENT.get_or_init(|| Mutex::new(vec!["group:default/from-userinfo".into()]))
}

/// Stands in for Backstage's auth backend.
#[backend_plugin(id = "auth")]
pub struct FakeAuthBackend {
    #[inject]
    jwks_fetches: JwksFetches,
}

#[routes]
impl FakeAuthBackend {
    #[route(get, "/.well-known/jwks.json", auth = "unauthenticated")]
    async fn jwks(&self) -> Json<Value> {
        self.jwks_fetches.count.fetch_add(1, Ordering::SeqCst);
        Json(json!({ "keys": [jwk(user_key(), USER_KID)] }))
    }

    // Backstage's auth backend reads user info with a limited token too (allowLimitedAccess).
    #[route(get, "/v1/userinfo", auth = "user-cookie")]
    async fn userinfo(&self, _user: Credentials<UserPrincipal>) -> Json<Value> {
        let ent = userinfo_ent().lock().unwrap().clone();
        Json(json!({ "claims": { "ent": ent } }))
    }
}

/// Calls `beta` on behalf of its caller, or as itself.
#[backend_plugin(id = "alpha")]
pub struct Alpha {
    #[inject]
    client: PluginClient,
    #[inject]
    auth: Auth,
    #[inject]
    user_info: UserInfo,
}

#[routes]
impl Alpha {
    #[route(get, "/call-beta")]
    async fn call_beta(&self, creds: Credentials) -> Result<Json<Value>> {
        let response = self.client.get("beta", "/whoami", &creds).await?;
        let status = response.status().as_u16();
        let body: Value = response
            .json()
            .await
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok(Json(json!({ "status": status, "body": body })))
    }

    #[route(get, "/call-beta-as-self", auth = "unauthenticated")]
    async fn call_beta_as_self(&self) -> Result<Json<Value>> {
        let own = self.auth.own_service_credentials();
        let response = self.client.get("beta", "/whoami", &own).await?;
        let body: Value = response
            .json()
            .await
            .map_err(|e| Error::internal(e.to_string()))?;
        Ok(Json(body))
    }

    #[route(get, "/token-for/{target}", auth = "unauthenticated")]
    async fn token_for(&self, Path(target): Path<String>) -> Result<String> {
        let own = self.auth.own_service_credentials();
        Ok(self.auth.plugin_request_token(&own, &target).await?.token)
    }

    #[route(get, "/cookie-only", auth = "user-cookie")]
    async fn cookie_only(&self, user: Credentials<UserPrincipal>) -> String {
        user.principal().user_entity_ref.clone()
    }

    #[route(get, "/info")]
    async fn info(
        &self,
        user: Credentials<UserPrincipal>,
    ) -> Result<Json<backstage::BackstageUserInfo>> {
        Ok(Json(self.user_info.get_user_info(&user).await?))
    }
}

/// Says who called it.
#[backend_plugin(id = "beta")]
pub struct Beta {}

#[routes]
impl Beta {
    #[route(get, "/whoami")]
    async fn whoami(&self, creds: Credentials) -> Json<Value> {
        Json(principal_json(&creds))
    }
}

/// The shared secret of `externalAccess` type `legacy`, base64url.
const LEGACY_SECRET: &str = "bGVnYWN5LXNlY3JldC1mb3ItdGVzdHM";

fn config(extra: Value) -> Value {
    let mut config = loopback_config();
    config["backend"]["auth"] = json!({
        "externalAccess": [
            {"type": "static", "options": {"token": "static-token-for-tests", "subject": "ci-bot"}},
            {"type": "static", "options": {"token": "restricted-token-for-tests", "subject": "narrow"},
             "accessRestrictions": [{"plugin": "beta"}]},
            {"type": "legacy", "options": {"secret": LEGACY_SECRET, "subject": "legacy-caller"}},
        ]
    });
    if let Value::Object(extra) = extra {
        for (key, value) in extra {
            config["backend"][key] = value;
        }
    }
    config
}

/// The fake auth plugin, alpha and beta, with `extra` merged into `backend`.
fn builder(extra: Value) -> BackendBuilder {
    Backend::builder()
        .plugin::<FakeAuthBackend>()
        .plugin::<Alpha>()
        .plugin::<Beta>()
        .config_value(config(extra))
}

async fn backend(extra: Value) -> Backend {
    builder(extra).start().await.expect("backend starts")
}

async fn get(backend: &Backend, path: &str, token: Option<&str>) -> (u16, String) {
    let mut request = client().get(backend.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let (status, _, body) = read(request.send().await.unwrap()).await;
    (status, body)
}

fn message(body: &str) -> String {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    value["error"]["message"]
        .as_str()
        .unwrap_or(body)
        .to_owned()
}

/// Segment `index` of a JWT (0: the header, 1: the claims), decoded.
fn jwt_part(token: &str, index: usize) -> Value {
    let segment = token.split('.').nth(index).expect("a JWT segment");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(segment).unwrap()).unwrap()
}

// ---------------------------------------------------------------------------------------------
// Plugin tokens

/// A plugin token alpha issues itself for `target`.
async fn plugin_token(backend: &Backend, target: &str) -> String {
    let (status, token) = get(backend, &format!("/api/alpha/token-for/{target}"), None).await;
    assert_eq!(status, 200, "{token}");
    token
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_calls_another_as_itself() {
    let backend = backend(json!({})).await;
    let (status, body) = get(&backend, "/api/alpha/call-beta-as-self", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"type": "service", "subject": "plugin:alpha"})
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_calling_on_behalf_of_a_user_is_the_actor() {
    let backend = backend(json!({})).await;
    let user = user_token("user:default/alice", Some(&["user:default/alice"]));
    let (status, body) = get(&backend, "/api/alpha/call-beta", Some(&user)).await;
    assert_eq!(status, 200, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["status"], 200);
    assert_eq!(
        body["body"],
        json!({"type": "user", "userEntityRef": "user:default/alice", "actor": "plugin:alpha"})
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_tokens_are_backstage_plugin_tokens_for_an_hour() {
    let backend = backend(json!({})).await;
    let token = plugin_token(&backend, "beta").await;
    let (header, claims) = (jwt_part(&token, 0), jwt_part(&token, 1));
    assert_eq!(header["typ"], "vnd.backstage.plugin");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["sub"], "alpha");
    assert_eq!(claims["aud"], "beta");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_tokens_are_signed_with_a_key_the_plugin_serves_without_its_private_part() {
    let backend = backend(json!({})).await;
    let header = jwt_part(&plugin_token(&backend, "beta").await, 0);
    let (status, jwks) = get(&backend, "/api/alpha/.backstage/auth/v1/jwks.json", None).await;
    assert_eq!(status, 200);
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|k| k["kid"].as_str())
        .collect();
    assert!(kids.contains(&header["kid"].as_str().unwrap()), "{jwks}");
    assert_eq!(jwks["keys"][0]["kty"], "EC");
    assert!(jwks["keys"][0].get("d").is_none(), "no private part");
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_token_is_accepted_by_its_audience_only() {
    let backend = backend(json!({})).await;
    let token = plugin_token(&backend, "beta").await;
    // A plugin token for beta is refused by alpha (wrong audience).
    let (status, body) = get(&backend, "/api/alpha/call-beta", Some(&token)).await;
    assert_eq!(status, 401);
    assert_eq!(message(&body), "Failed plugin token verification");
    // ...and accepted by beta.
    let (status, body) = get(&backend, "/api/beta/whoami", Some(&token)).await;
    assert_eq!(
        (status, body.contains("plugin:alpha")),
        (200, true),
        "{body}"
    );
    backend.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// User tokens, limited tokens and the cookie

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tokens_of_the_auth_backend_are_accepted() {
    let backend = backend(json!({})).await;
    let user = user_token("user:default/alice", None);
    let (status, body) = get(&backend, "/api/beta/whoami", Some(&user)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("user:default/alice"));
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_without_ent_comes_from_the_auth_backends_userinfo() {
    let backend = backend(json!({})).await;
    let user = user_token("user:default/alice", None);
    let (status, body) = get(&backend, "/api/alpha/info", Some(&user)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"userEntityRef": "user:default/alice", "ownershipEntityRefs": ["group:default/from-userinfo"]})
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_info_comes_from_the_tokens_ent_when_it_has_one() {
    let backend = backend(json!({})).await;
    let with_ent = user_token("user:default/alice", Some(&["group:default/in-token"]));
    let (_, body) = get(&backend, "/api/alpha/info", Some(&with_ent)).await;
    assert!(body.contains("group:default/in-token"), "{body}");
    backend.stop().await.unwrap();
}

/// Alpha's cookie endpoint asked with `token`: status, headers and body.
async fn cookie_for(backend: &Backend, token: &str) -> (u16, reqwest::header::HeaderMap, String) {
    let response = client()
        .get(backend.url("/api/alpha/.backstage/auth/v1/cookie"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    read(response).await
}

/// The `Set-Cookie` header of alice's cookie.
async fn alices_set_cookie(backend: &Backend) -> String {
    let (status, headers, body) =
        cookie_for(backend, &user_token("user:default/alice", None)).await;
    assert_eq!(status, 200, "{body}");
    headers["set-cookie"].to_str().unwrap().to_owned()
}

/// The limited token alice's cookie holds.
async fn alices_limited_token(backend: &Backend) -> String {
    let set_cookie = alices_set_cookie(backend).await;
    set_cookie["backstage-auth=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned()
}

/// A request with the `backstage-auth` cookie `limited`.
async fn get_with_cookie(backend: &Backend, path: &str, limited: &str) -> (u16, String) {
    let request = client()
        .get(backend.url(path))
        .header("cookie", format!("backstage-auth={limited}"));
    let (status, _, body) = read(request.send().await.unwrap()).await;
    (status, body)
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_endpoint_answers_when_the_cookie_expires() {
    let backend = backend(json!({})).await;
    let (status, _, body) = cookie_for(&backend, &user_token("user:default/alice", None)).await;
    assert_eq!(status, 200, "{body}");
    let expires = serde_json::from_str::<Value>(&body).unwrap()["expiresAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(expires.ends_with(".000Z"), "{expires}");
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_is_set_as_backstage_sets_it_on_plain_http() {
    let backend = backend(json!({})).await;
    let set_cookie = alices_set_cookie(&backend).await;
    assert!(
        set_cookie.starts_with("backstage-auth=")
            && set_cookie.contains("; Domain=127.0.0.1; Path=/; Expires="),
        "{set_cookie}"
    );
    // Plain http on a host other than localhost: not Secure, SameSite=Lax (Backstage's rule).
    assert!(
        set_cookie.ends_with("; HttpOnly; Priority=High; SameSite=Lax"),
        "{set_cookie}"
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_holds_a_limited_user_token() {
    let backend = backend(json!({})).await;
    let limited = alices_limited_token(&backend).await;
    assert_eq!(jwt_part(&limited, 0)["typ"], "vnd.backstage.limited-user");
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cookie_opens_user_cookie_routes_only() {
    let backend = backend(json!({})).await;
    let limited = alices_limited_token(&backend).await;
    let (status, body) = get_with_cookie(&backend, "/api/alpha/cookie-only", &limited).await;
    assert_eq!((status, body.as_str()), (200, "user:default/alice"));
    let (status, body) = get_with_cookie(&backend, "/api/beta/whoami", &limited).await;
    assert_eq!(
        (status, message(&body)),
        (401, "Missing credentials".to_owned())
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_limited_token_as_a_bearer_token_is_refused_outside_user_cookie_routes() {
    let backend = backend(json!({})).await;
    let limited = alices_limited_token(&backend).await;
    let (status, body) = get(&backend, "/api/beta/whoami", Some(&limited)).await;
    assert_eq!(
        (status, message(&body)),
        (401, "Illegal limited user token".to_owned())
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_cookie_clears_it() {
    let backend = backend(json!({})).await;
    let limited = alices_limited_token(&backend).await;
    let response = client()
        .delete(backend.url("/api/alpha/.backstage/auth/v1/cookie"))
        .header("cookie", format!("backstage-auth={limited}"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 204);
    let cleared = response.headers()["set-cookie"].to_str().unwrap();
    assert!(
        cleared.starts_with(
            "backstage-auth=; Domain=127.0.0.1; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT"
        ),
        "{cleared}"
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn service_credentials_get_no_cookie() {
    let backend = backend(json!({})).await;
    let (status, _, _) = cookie_for(&backend, "static-token-for-tests").await;
    assert_eq!(status, 403);
    backend.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// External access

/// Alpha and beta behind the external access of [`config`] and a JWKS issuer (`externalAccess`
/// type `jwks`) whose keys the returned mock server serves: keep it while the backend runs.
async fn external_access_backend() -> (Backend, MockServer) {
    let issuer = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/issuer/jwks.json"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!({ "keys": [jwk(issuer_key(), ISSUER_KID)] })),
        )
        .mount(&issuer)
        .await;
    let mut cfg = config(json!({}));
    let entries = cfg["backend"]["auth"]["externalAccess"]
        .as_array_mut()
        .unwrap();
    entries.push(json!({"type": "jwks", "options": {
        "url": issuer.url("/issuer/jwks.json"), "issuer": "https://issuer.example",
        "audience": "backstage-rs", "subjectPrefix": "issuer"}}));
    let backend = Backend::builder()
        .plugin::<Alpha>()
        .plugin::<Beta>()
        .config_value(cfg)
        .start()
        .await
        .unwrap();
    (backend, issuer)
}

/// `input` (a JWT's header and claims) signed with HS256 and `secret`.
fn hs256_signed(secret: &[u8], input: String) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret);
    format!(
        "{input}.{}",
        b64(ring::hmac::sign(&key, input.as_bytes()).as_ref())
    )
}

/// A legacy token: HS256 with the shared secret.
fn legacy_token(claims: Value) -> String {
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256"}"#),
        b64(claims.to_string().as_bytes())
    );
    hs256_signed(&URL_SAFE_NO_PAD.decode(LEGACY_SECRET).unwrap(), input)
}

/// A token of the JWKS issuer for `robot`, naming issuer `iss` and audience `aud`.
fn issued(iss: &str, aud: &str) -> String {
    sign(
        issuer_key(),
        &json!({"alg": "ES256", "kid": ISSUER_KID}),
        &json!({"iss": iss, "aud": aud, "sub": "robot", "iat": now(), "exp": now() + 60}),
    )
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_static_token_is_accepted_as_its_subject() {
    let (backend, _issuer) = external_access_backend().await;
    let (status, body) = get(&backend, "/api/beta/whoami", Some("static-token-for-tests")).await;
    assert_eq!((status, body.contains("ci-bot")), (200, true), "{body}");
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restricted_static_token_opens_only_its_plugins() {
    let (backend, _issuer) = external_access_backend().await;
    let restricted = Some("restricted-token-for-tests");
    let (status, body) = get(&backend, "/api/beta/whoami", restricted).await;
    assert_eq!(status, 200, "{body}");
    // Restricted to beta: alpha answers 403 with Backstage's words.
    let (status, body) = get(&backend, "/api/alpha/info", restricted).await;
    assert_eq!(
        (status, message(&body)),
        (
            403,
            "This token's access is restricted to plugin(s) 'beta'".to_owned()
        )
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_tokens_signed_with_the_shared_secret_are_accepted() {
    let (backend, _issuer) = external_access_backend().await;
    // HS256 with the shared secret, sub backstage-server, no aud.
    let legacy = legacy_token(json!({"sub": "backstage-server", "exp": now() + 60}));
    let (status, body) = get(&backend, "/api/beta/whoami", Some(&legacy)).await;
    assert_eq!(
        (status, body.contains("legacy-caller")),
        (200, true),
        "{body}"
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn legacy_tokens_expired_without_exp_or_with_an_audience_are_refused() {
    let (backend, _issuer) = external_access_backend().await;
    for refused in [
        legacy_token(json!({"sub": "backstage-server", "exp": now() - 1})),
        legacy_token(json!({"sub": "backstage-server"})),
        legacy_token(json!({"sub": "backstage-server", "aud": "x", "exp": now() + 60})),
    ] {
        let (status, _) = get(&backend, "/api/beta/whoami", Some(&refused)).await;
        assert_eq!(status, 401);
    }
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_a_jwks_issuer_are_accepted_with_the_subject_prefixed() {
    let (backend, _issuer) = external_access_backend().await;
    let token = issued("https://issuer.example", "backstage-rs");
    let (status, body) = get(&backend, "/api/beta/whoami", Some(&token)).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("external:issuer:robot"), "{body}");
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_naming_another_issuer_or_audience_are_refused() {
    let (backend, _issuer) = external_access_backend().await;
    for refused in [
        issued("https://other.example", "backstage-rs"),
        issued("https://issuer.example", "other"),
    ] {
        let (status, body) = get(&backend, "/api/beta/whoami", Some(&refused)).await;
        assert_eq!((status, message(&body)), (401, "Illegal token".to_owned()));
    }
    backend.stop().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// Attacks

const USER_TOKEN_FAILED: &str = "Failed user token verification";

/// A backend that takes headers up to 64 KiB, so that an oversized token reaches the token rules
/// (the default 16 KiB would answer 431 before).
async fn attacked_backend() -> Backend {
    backend(json!({"server": {"maxHeaderSize": 65536}})).await
}

/// Sends `token` to beta: refused with 401 and Backstage's `expected` message.
async fn assert_refused(backend: &Backend, token: &str, expected: &str) {
    let (status, body) = get(backend, "/api/beta/whoami", Some(token)).await;
    assert_eq!(
        (status, message(&body)),
        (401, expected.to_owned()),
        "{token}"
    );
}

fn user_header(kid: &str) -> Value {
    json!({"typ": "vnd.backstage.user", "alg": "ES256", "kid": kid})
}

/// Mallory's user token claims, valid for a minute, with `changes` made (a null removes one).
fn mallory(changes: Value) -> Value {
    let mut claims =
        json!({"sub": "user:default/mallory", "aud": "backstage", "iat": now(), "exp": now() + 60});
    for (k, v) in changes.as_object().unwrap() {
        if v.is_null() {
            claims.as_object_mut().unwrap().remove(k);
        } else {
            claims[k] = v.clone();
        }
    }
    claims
}

/// Mallory's user token signed with the auth backend's key, its claims with `changes` made.
fn signed_for_mallory(changes: Value) -> String {
    sign(user_key(), &user_header(USER_KID), &mallory(changes))
}

/// The signed part of Mallory's user token with algorithm `alg`.
fn unsigned(alg: &str) -> String {
    let header = json!({"typ": "vnd.backstage.user", "alg": alg, "kid": USER_KID});
    format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(mallory(json!({})).to_string().as_bytes())
    )
}

/// A plugin token for beta from `sub`, signed with `key`.
fn plugin_token_signed_by(key: &EcdsaKeyPair, sub: &str) -> String {
    sign(
        key,
        &json!({"typ": "vnd.backstage.plugin", "alg": "ES256", "kid": "k"}),
        &json!({"sub": sub, "aud": "beta", "iat": now(), "exp": now() + 60}),
    )
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn alg_none_and_key_confusion_are_refused() {
    let backend = attacked_backend().await;
    // alg: none, no signature.
    let none = format!("{}.", unsigned("none"));
    assert_refused(&backend, &none, USER_TOKEN_FAILED).await;
    // HS256 signed with the public key as the secret.
    let public = jwk(user_key(), USER_KID).to_string();
    let confused = hs256_signed(public.as_bytes(), unsigned("HS256"));
    assert_refused(&backend, &confused, USER_TOKEN_FAILED).await;
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tokens_signed_by_another_key_are_refused() {
    let backend = attacked_backend().await;
    let stranger = sign(&key_pair(), &user_header(USER_KID), &mallory(json!({})));
    assert_refused(&backend, &stranger, USER_TOKEN_FAILED).await;
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_not_yet_valid_and_unexpiring_user_tokens_are_refused() {
    let backend = attacked_backend().await;
    for changes in [
        json!({"exp": now() - 5}),
        json!({"nbf": now() + 600}),
        json!({"exp": null}),
    ] {
        let token = signed_for_mallory(changes);
        assert_refused(&backend, &token, USER_TOKEN_FAILED).await;
    }
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_tokens_for_another_audience_are_refused() {
    let backend = attacked_backend().await;
    let elsewhere = signed_for_mallory(json!({"aud": "elsewhere"}));
    assert_refused(&backend, &elsewhere, USER_TOKEN_FAILED).await;
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_valid_signature_does_not_make_an_unknown_token_type_acceptable() {
    let backend = attacked_backend().await;
    let jwt = sign(
        user_key(),
        &json!({"typ": "JWT", "alg": "ES256", "kid": USER_KID}),
        &mallory(json!({"aud": "x"})),
    );
    assert_refused(&backend, &jwt, "Illegal token").await;
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_oversized_tokens_are_refused() {
    let backend = attacked_backend().await;
    assert_refused(&backend, "!!!.@@@.###", "Illegal token").await;
    assert_refused(&backend, &"a".repeat(33 * 1024), "Illegal token").await;
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_tokens_whose_subject_is_no_plugin_id_are_refused() {
    let backend = attacked_backend().await;
    let evil = plugin_token_signed_by(user_key(), "../../evil");
    let expected = "Invalid plugin token: forbidden subject format";
    assert_refused(&backend, &evil, expected).await;
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn plugin_tokens_the_plugins_keys_never_signed_are_refused() {
    let backend = attacked_backend().await;
    let forged = plugin_token_signed_by(&key_pair(), "alpha");
    assert_refused(&backend, &forged, "Failed plugin token verification").await;
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_key_ids_fetch_the_jwks_at_most_once_per_cooldown() {
    // This backend's own count: other tests' backends fetch at the same time.
    let fetches = JwksFetches::default();
    let backend = builder(json!({})).service(fetches.clone()).start();
    let backend = backend.await.expect("backend starts");
    // The key set is fetched and cached for a token it signs.
    let alice = user_token("user:default/alice", None);
    let (status, body) = get(&backend, "/api/beta/whoami", Some(&alice)).await;
    assert_eq!(status, 200, "{body}");
    // Unknown key ids: one fetch at most per cooldown (save a few forced ones), and no storm.
    let before = fetches.count();
    for i in 0..30 {
        let header = user_header(&format!("unknown-{i}"));
        let token = sign(user_key(), &header, &mallory(json!({})));
        assert_refused(&backend, &token, USER_TOKEN_FAILED).await;
    }
    let fetched = fetches.count() - before;
    assert!(
        (1..=11).contains(&fetched),
        "{fetched} JWKS fetches for 30 unknown key ids"
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_tokens_are_logged_and_never_written_to_the_logs() {
    logs();
    let backend = attacked_backend().await;
    let (status, _) = get(&backend, "/api/beta/whoami", Some("static-token-for-tests")).await;
    assert_eq!(status, 200);
    let public = jwk(user_key(), USER_KID).to_string();
    for token in [
        format!("{}.", unsigned("none")),
        hs256_signed(public.as_bytes(), unsigned("HS256")),
        signed_for_mallory(json!({"exp": now() - 5})),
        sign(&key_pair(), &user_header(USER_KID), &mallory(json!({}))),
        sign(user_key(), &user_header("unknown"), &mallory(json!({}))),
    ] {
        assert_refused(&backend, &token, USER_TOKEN_FAILED).await;
    }
    // Refusals were logged, and no token ever reached the logs: every JWT starts with `eyJ`.
    let logs = logs().text();
    assert!(
        logs.contains("Failed to verify incoming user token"),
        "{logs}"
    );
    assert!(!logs.contains("eyJ"), "a token in the logs: {logs}");
    assert!(!logs.contains("static-token-for-tests"));
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_jwks_endpoint_is_bounded() {
    // A "plugin" whose JWKS endpoint accepts connections and never answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let _hold = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().flatten() {
            held.push(stream);
        }
    });
    let mut cfg = config(json!({}));
    cfg["discovery"] = json!({"endpoints": [{"target": format!("http://127.0.0.1:{port}/api/{{{{pluginId}}}}"), "plugins": ["stuck"]}]});
    let backend = Backend::builder()
        .plugin::<Beta>()
        .config_value(cfg)
        .start()
        .await
        .unwrap();
    let token = sign(
        &key_pair(),
        &json!({"typ": "vnd.backstage.plugin", "alg": "ES256", "kid": "k"}),
        &json!({"sub": "stuck", "aud": "beta", "iat": now(), "exp": now() + 60}),
    );
    let started = Instant::now();
    let (status, body) = get(&backend, "/api/beta/whoami", Some(&token)).await;
    assert_eq!(
        (status, message(&body)),
        (401, "Failed plugin token verification".to_owned())
    );
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "{:?}",
        started.elapsed()
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_the_default_policy_opens_routes_but_still_checks_tokens() {
    let backend = backend(json!({"auth": {"dangerouslyDisableDefaultAuthPolicy": true}})).await;
    let (status, body) = get(&backend, "/api/beta/whoami", None).await;
    assert_eq!((status, body.as_str()), (200, r#"{"type":"none"}"#));
    let (status, _) = get(&backend, "/api/beta/whoami", Some("not-a-valid-token")).await;
    assert_eq!(status, 401);
    // No credentials are forwarded as no token: beta sees nobody, as Backstage does it.
    let (status, body) = get(&backend, "/api/alpha/call-beta", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"status": 200, "body": {"type": "none"}})
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_key_store_signs_with_the_configured_key() {
    let dir = std::env::temp_dir().join(format!("backstage-static-keys-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
    let pair =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let pem = |label: &str, der: &[u8]| {
        let body = base64::engine::general_purpose::STANDARD.encode(der);
        let lines: Vec<&str> = body
            .as_bytes()
            .chunks(64)
            .map(|c| std::str::from_utf8(c).unwrap())
            .collect();
        format!(
            "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
            lines.join("\n")
        )
    };
    let mut spki = vec![
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    std::fs::write(dir.join("private.key"), pem("PRIVATE KEY", pkcs8.as_ref())).unwrap();
    std::fs::write(dir.join("public.key"), pem("PUBLIC KEY", &spki)).unwrap();
    let store = json!({"pluginKeyStore": {"type": "static", "static": {"keys": [{
        "publicKeyFile": dir.join("public.key"), "privateKeyFile": dir.join("private.key"), "keyId": "static-1"}]}}});
    let mut extra = json!({"auth": config(json!({}))["backend"]["auth"].clone()});
    extra["auth"]["pluginKeyStore"] = store["pluginKeyStore"].clone();
    let backend = backend(extra).await;
    let (_, jwks) = get(&backend, "/api/alpha/.backstage/auth/v1/jwks.json", None).await;
    let jwks: Value = serde_json::from_str(&jwks).unwrap();
    assert_eq!(jwks["keys"], json!([jwk(&pair, "static-1")]));
    let (status, body) = get(&backend, "/api/alpha/call-beta-as-self", None).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("plugin:alpha"));
    backend.stop().await.unwrap();

    // A missing private key names the key at fault.
    let bad = json!({"auth": {"pluginKeyStore": {"type": "static", "static": {"keys": [{
        "publicKeyFile": dir.join("public.key"), "keyId": "static-1"}]}}}});
    let err = Backend::builder()
        .plugin::<Beta>()
        .config_value(config(bad))
        .start()
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("backend.auth.pluginKeyStore.static.keys[0].privateKeyFile"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Several instances share the plugin's database: a token signed by one instance is accepted
/// by another, because every instance's JWKS lists the keys in the shared table.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_share_public_keys_through_the_database() {
    use backstage::testing::TestDatabases;
    let servers: Vec<_> = TestDatabases::each()
        .into_iter()
        .filter(|db| db.url().is_some())
        .collect();
    if servers.is_empty() {
        eprintln!("skipped: no database server connection string is set");
        return;
    }
    logs();
    for db in servers {
        let engine = db.engine().name();
        let start = || {
            let mut cfg = config(json!({}));
            cfg["backend"]["database"] = db.config()["backend"]["database"].clone();
            Backend::builder()
                .plugin::<Alpha>()
                .plugin::<Beta>()
                .config_value(cfg)
                .start()
        };
        let first = start().await.expect("first instance starts");
        let second = start().await.expect("second instance starts");
        let token = plugin_token(&first, "beta").await;
        let header = jwt_part(&token, 0);
        let (_, jwks) = get(&second, "/api/alpha/.backstage/auth/v1/jwks.json", None).await;
        assert!(
            jwks.contains(header["kid"].as_str().unwrap()),
            "{engine}: {jwks}\n{}",
            logs().text()
        );
        let (status, body) = get(&second, "/api/beta/whoami", Some(&token)).await;
        assert_eq!(status, 200, "{engine}: {body}");
        assert!(body.contains("plugin:alpha"), "{engine}: {body}");
        first.stop().await.unwrap();
        second.stop().await.unwrap();
        db.cleanup().await;
    }
}

/// Accepts any token as a caller restricted to `beta`.
struct RestrictedToBeta;

impl backstage::Authenticator for RestrictedToBeta {
    fn authenticate<'a>(
        &'a self,
        _token: &'a str,
        _options: backstage::AuthenticateOptions,
    ) -> backstage::plugin::BoxFuture<'a, Result<Credentials>> {
        let service = backstage::ServicePrincipal {
            subject: "narrow".into(),
            access_restrictions: Some(backstage::AccessRestrictions {
                plugin_id: Some(vec!["beta".into()]),
            }),
        };
        Box::pin(async move { Ok(Credentials::new(Principal::Service(service))) })
    }
}

/// A replaced `Auth` still belongs to each plugin: restrictions hold, own credentials name it.
#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_auth_service_is_each_plugins_own() {
    let backend = Backend::builder()
        .plugin::<Alpha>()
        .plugin::<Beta>()
        .config_value(loopback_config())
        .service(Auth::new(RestrictedToBeta))
        .start()
        .await
        .unwrap();
    let (status, body) = get(&backend, "/api/beta/whoami", Some("anything")).await;
    assert_eq!((status, body.contains("narrow")), (200, true), "{body}");
    let (status, body) = get(&backend, "/api/alpha/info", Some("anything")).await;
    assert_eq!(
        (status, message(&body)),
        (
            403,
            "This token's access is restricted to plugin(s) 'beta'".to_owned()
        )
    );
    backend.stop().await.unwrap();
}

/// A JWKS server on another "backend" that answers an empty key set and counts its requests.
fn counting_jwks_server() -> (u16, std::sync::Arc<AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counted = hits.clone();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let mut request = [0u8; 4096];
            let _ = stream.read(&mut request);
            counted.fetch_add(1, Ordering::SeqCst);
            let body = r#"{"keys":[]}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (port, hits)
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_plugin_tokens_fetch_nothing_for_unknown_plugins_and_little_for_known_ones() {
    logs();
    let (port, hits) = counting_jwks_server();
    let mut cfg = config(json!({}));
    cfg["discovery"] = json!({"endpoints": [
        {"target": format!("http://127.0.0.1:{port}/api/{{{{pluginId}}}}"), "plugins": ["remote"]}
    ]});
    let backend = Backend::builder()
        .plugin::<Beta>()
        .config_value(cfg)
        .start()
        .await
        .unwrap();
    let stranger = key_pair();
    let forged = |sub: &str, kid: &str| {
        sign(
            &stranger,
            &json!({"typ": "vnd.backstage.plugin", "alg": "ES256", "kid": kid}),
            &json!({"sub": sub, "aud": "beta", "iat": now(), "exp": now() + 60}),
        )
    };
    for i in 0..300 {
        let (status, body) = get(
            &backend,
            "/api/beta/whoami",
            Some(&forged(&format!("made-up-{i}"), "k")),
        )
        .await;
        assert_eq!(
            (status, message(&body)),
            (401, "Failed plugin token verification".to_owned())
        );
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "plugins that discovery cannot place are never fetched"
    );
    // ...not from this backend either, where discovery would have sent the fetch.
    let requests = logs().text();
    assert!(
        !requests.contains("GET /api/made-up-"),
        "a key fetch from the server itself"
    );
    assert!(
        requests.contains("GET /api/beta/whoami"),
        "the request log is captured"
    );
    for i in 0..100 {
        let (status, _) = get(
            &backend,
            "/api/beta/whoami",
            Some(&forged("remote", &format!("kid-{i}"))),
        )
        .await;
        assert_eq!(status, 401);
    }
    let fetched = hits.load(Ordering::SeqCst);
    assert!(
        (1..=11).contains(&fetched),
        "{fetched} fetches for 100 made-up key ids of a known plugin"
    );
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_of_local_plugins_are_verified_without_a_connection_to_the_server() {
    // One connection at a time: a self-fetch of alpha's keys would wait behind the request
    // that needs them, and time out.
    let backend = backend(json!({"server": {"maxConnections": 1}})).await;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(1)
        .timeout(Duration::from_secs(20))
        .build()
        .unwrap();
    let token = client
        .get(backend.url("/api/alpha/token-for/beta"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    // A fetch would wait for the only connection slot, time out, and refuse the token.
    let res = client
        .get(backend.url("/api/beta/whoami"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.text().await.unwrap().contains("plugin:alpha"));
    backend.stop().await.unwrap();
}

#[backstage::test(flavor = "multi_thread", worker_threads = 2)]
async fn key_fetches_have_one_budget_across_all_issuers() {
    let (port, hits) = counting_jwks_server();
    let plugins: Vec<String> = (0..80).map(|i| format!("remote-{i}")).collect();
    let mut cfg = config(json!({}));
    cfg["discovery"] = json!({"endpoints": [
        {"target": format!("http://127.0.0.1:{port}/api/{{{{pluginId}}}}"), "plugins": plugins}
    ]});
    let backend = Backend::builder()
        .plugin::<Beta>()
        .config_value(cfg)
        .start()
        .await
        .unwrap();
    for plugin in &plugins {
        let token = sign(
            &key_pair(),
            &json!({"typ": "vnd.backstage.plugin", "alg": "ES256", "kid": "k"}),
            &json!({"sub": plugin, "aud": "beta", "iat": now(), "exp": now() + 60}),
        );
        let (status, _) = get(&backend, "/api/beta/whoami", Some(&token)).await;
        assert_eq!(status, 401);
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        60,
        "80 issuers, one budget of 60 fetches a minute"
    );
    backend.stop().await.unwrap();
}
