//! Mock credentials, and the auth service that accepts them in a [`super::TestBackend`].
//!
//! The tokens are Backstage's mock tokens (`mock-user-token:{"sub":"user:default/alice"}`), so
//! a request recorded against a TypeScript test backend reads the same. A real backend refuses
//! them: only [`super::TestBackend`] installs the mock auth service.

use std::sync::Arc;

use serde::Deserialize;

use crate::auth::Auth;
use crate::auth::{
    AccessRestrictions, AuthenticateOptions, Authenticator, Credentials, Principal,
    ServicePrincipal, StaticTokens, UserPrincipal,
};
use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, ServiceContext};

pub use super::mock_url_reader::{MockUrlReader, url_reader};

/// The default user of [`user`] without arguments.
pub const DEFAULT_USER: &str = "user:default/mock";
/// The default subject of [`service`] without arguments.
pub const DEFAULT_SERVICE: &str = "external:test-service";

/// Credentials a test request carries.
///
/// ```
/// use backstage::testing::mock;
/// assert_eq!(mock::user("user:default/alice").token().unwrap(), r#"mock-user-token:{"sub":"user:default/alice"}"#);
/// assert_eq!(mock::service("plugin:catalog").token().unwrap(), r#"mock-service-token:{"sub":"plugin:catalog"}"#);
/// assert!(mock::none().token().is_none());
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MockCredentials {
    token: Option<String>,
    cookie: bool,
}

impl MockCredentials {
    /// The token sent, if any.
    pub fn token(&self) -> Option<&str> {
        self.token.as_deref()
    }

    /// The header these credentials are sent in: `Authorization: Bearer <token>`, or the
    /// `backstage-auth` cookie for limited users.
    pub fn header(&self) -> Option<(&'static str, String)> {
        let token = self.token.as_ref()?;
        Some(if self.cookie {
            ("cookie", format!("{}={token}", crate::auth::USER_COOKIE))
        } else {
            ("authorization", format!("Bearer {token}"))
        })
    }
}

#[derive(serde::Serialize, Deserialize)]
struct Claims {
    sub: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    ent: Option<Vec<String>>,
    #[serde(
        default,
        rename = "accessRestrictions",
        skip_serializing_if = "Option::is_none"
    )]
    access_restrictions: Option<Restrictions>,
}

#[derive(serde::Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct Restrictions {
    plugin_id: Option<Vec<String>>,
}

fn token(prefix: &str, claims: &Claims) -> String {
    format!(
        "{prefix}:{}",
        serde_json::to_string(claims).unwrap_or_default()
    )
}

/// No credentials at all.
pub fn none() -> MockCredentials {
    MockCredentials {
        token: None,
        cookie: false,
    }
}

/// A signed-in user (`user:default/mock` with [`DEFAULT_USER`]).
pub fn user(user_entity_ref: &str) -> MockCredentials {
    let claims = Claims {
        sub: user_entity_ref.to_owned(),
        ent: None,
        access_restrictions: None,
    };
    MockCredentials {
        token: Some(token("mock-user-token", &claims)),
        cookie: false,
    }
}

/// A user whose token carries ownership refs (`ent`), as [`crate::UserInfo`] reports them.
pub fn user_with_ownership(
    user_entity_ref: &str,
    ownership_entity_refs: &[&str],
) -> MockCredentials {
    let ent = ownership_entity_refs
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
    let claims = Claims {
        sub: user_entity_ref.to_owned(),
        ent: Some(ent),
        access_restrictions: None,
    };
    MockCredentials {
        token: Some(token("mock-user-token", &claims)),
        cookie: false,
    }
}

/// A user with only a limited token, sent as the `backstage-auth` cookie: accepted only by
/// `user-cookie` routes.
pub fn limited_user(user_entity_ref: &str) -> MockCredentials {
    let claims = Claims {
        sub: user_entity_ref.to_owned(),
        ent: None,
        access_restrictions: None,
    };
    MockCredentials {
        token: Some(token("mock-limited-user-token", &claims)),
        cookie: true,
    }
}

/// A service (a plugin calling as `plugin:<id>`, or an external caller).
pub fn service(subject: &str) -> MockCredentials {
    let claims = Claims {
        sub: subject.to_owned(),
        ent: None,
        access_restrictions: None,
    };
    MockCredentials {
        token: Some(token("mock-service-token", &claims)),
        cookie: false,
    }
}

/// A service restricted to `plugins`.
pub fn service_restricted(subject: &str, plugins: &[&str]) -> MockCredentials {
    let restrictions = Restrictions {
        plugin_id: Some(plugins.iter().map(|s| (*s).to_owned()).collect()),
    };
    let claims = Claims {
        sub: subject.to_owned(),
        ent: None,
        access_restrictions: Some(restrictions),
    };
    MockCredentials {
        token: Some(token("mock-service-token", &claims)),
        cookie: false,
    }
}

/// A user token that fails verification (401).
pub fn invalid_user() -> MockCredentials {
    MockCredentials {
        token: Some("mock-invalid-user-token".to_owned()),
        cookie: false,
    }
}

/// A limited user token that fails verification (401 on `user-cookie` routes).
pub fn invalid_limited_user() -> MockCredentials {
    MockCredentials {
        token: Some("mock-invalid-limited-user-token".to_owned()),
        cookie: true,
    }
}

/// A service token that fails verification (401).
pub fn invalid_service() -> MockCredentials {
    MockCredentials {
        token: Some("mock-invalid-service-token".to_owned()),
        cookie: false,
    }
}

/// The auth service of a test backend: accepts mock tokens, then static tokens from the
/// config; anything else is "Illegal token".
pub struct MockAuthenticator {
    statics: StaticTokens,
}

impl MockAuthenticator {
    /// Mock tokens, plus `statics`.
    pub fn new(statics: StaticTokens) -> Self {
        MockAuthenticator { statics }
    }
}

fn parse(rest: &str, kind: &str) -> Result<Claims> {
    let json = rest.strip_prefix(':').unwrap_or("");
    if json.is_empty() {
        let sub = if kind == "service" {
            DEFAULT_SERVICE
        } else {
            DEFAULT_USER
        };
        return Ok(Claims {
            sub: sub.to_owned(),
            ent: None,
            access_restrictions: None,
        });
    }
    serde_json::from_str(json)
        .map_err(|_| Error::authentication(format!("Invalid mock {kind} token")))
}

fn user_credentials(claims: Claims) -> Credentials {
    Credentials::new(Principal::User(UserPrincipal {
        user_entity_ref: claims.sub,
        ownership_entity_refs: claims.ent,
    }))
}

impl Authenticator for MockAuthenticator {
    fn authenticate<'a>(
        &'a self,
        token: &'a str,
        options: AuthenticateOptions,
    ) -> BoxFuture<'a, Result<Credentials>> {
        Box::pin(async move {
            match token {
                // Backstage's `mockCredentials.none.header()`: explicitly no one.
                "mock-none-token" => return Ok(Credentials::none()),
                "mock-invalid-user-token" => {
                    return Err(Error::authentication("User token is invalid"));
                }
                "mock-invalid-limited-user-token" => {
                    return Err(Error::authentication("Limited user token is invalid"));
                }
                "mock-invalid-service-token" => {
                    return Err(Error::authentication("Service token is invalid"));
                }
                _ => {}
            }
            if let Some(rest) = token.strip_prefix("mock-user-token") {
                return parse(rest, "user").map(user_credentials);
            }
            if let Some(rest) = token.strip_prefix("mock-limited-user-token") {
                if !options.allow_limited_access {
                    return Err(Error::authentication(
                        "Limited user token is not allowed here",
                    ));
                }
                return parse(rest, "user").map(user_credentials);
            }
            if let Some(rest) = token.strip_prefix("mock-service-token") {
                let claims = parse(rest, "service")?;
                let access_restrictions = claims.access_restrictions.map(|r| AccessRestrictions {
                    plugin_id: r.plugin_id,
                });
                return Ok(Credentials::new(Principal::Service(ServicePrincipal {
                    subject: claims.sub,
                    access_restrictions,
                })));
            }
            self.statics.authenticate(token, options).await
        })
    }

    /// Mock tokens again: a user's own mock token for calls on a user's behalf, else
    /// `mock-service-token` for `plugin:<id>`.
    fn plugin_request_token<'a>(
        &'a self,
        plugin_id: &'a str,
        on_behalf_of: &'a Credentials,
        _target_plugin_id: &'a str,
    ) -> BoxFuture<'a, Result<String>> {
        let token = match on_behalf_of.any() {
            Principal::User(user) => match &user.ownership_entity_refs {
                Some(refs) => {
                    let refs: Vec<&str> = refs.iter().map(String::as_str).collect();
                    user_with_ownership(&user.user_entity_ref, &refs).token
                }
                None => self::user(&user.user_entity_ref).token,
            },
            Principal::Service(_) => service(&format!("plugin:{plugin_id}")).token,
            Principal::None => None,
        };
        Box::pin(async move {
            token.ok_or_else(|| {
                Error::authentication("Refused to issue service token for credential type 'none'")
            })
        })
    }

    fn limited_user_token<'a>(
        &'a self,
        credentials: &'a Credentials,
    ) -> BoxFuture<'a, Result<(String, std::time::SystemTime)>> {
        let result = match credentials.any() {
            Principal::User(user) => limited_user(&user.user_entity_ref)
                .token
                .map(|t| {
                    (
                        t,
                        std::time::SystemTime::now() + std::time::Duration::from_secs(3600),
                    )
                })
                .ok_or_else(|| Error::internal("no mock token")),
            _ => Err(Error::authentication(
                "Only user credentials have limited tokens",
            )),
        };
        Box::pin(std::future::ready(result))
    }
}

/// The factory a [`super::TestBackend`] installs for [`Auth`]: mock tokens and the config's
/// static tokens, with access restrictions checked for the plugin.
pub(crate) fn mock_auth_factory<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Auth>> {
    Box::pin(async move {
        let statics = StaticTokens::from_config(ctx.config())?;
        let inner: Arc<dyn Authenticator> = Arc::new(MockAuthenticator::new(statics));
        Ok(Auth::from_arc(inner, ctx.plugin_id()))
    })
}

/// An auth service that accepts mock tokens (and no static tokens): what a
/// [`super::TestBackend`] installs, as a value for [`super::ServiceFactoryTester::service`] or
/// a [`crate::Backend`] of your own. Bound to each plugin it is handed to, it checks that
/// plugin's access restrictions.
///
/// ```
/// use backstage::{Auth, HttpAuth};
/// use backstage::testing::{mock, ServiceFactoryTester};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let tester = ServiceFactoryTester::new().service(mock::auth());
/// let auth: Auth = tester.get_for_plugin("carmen").await.unwrap();
/// let creds = auth.authenticate(mock::user("user:default/alice").token().unwrap()).await.unwrap();
/// assert_eq!(creds.any().type_name(), "user");
/// let _http: HttpAuth = tester.get_for_plugin("carmen").await.unwrap();
/// # });
/// ```
pub fn auth() -> Auth {
    Auth::new(MockAuthenticator::new(StaticTokens::default()))
}

/// An `actions` service that offers `actions` as plugin `plugin_id`'s, run in memory: what a
/// test of a plugin that calls other plugins' actions gives it instead of those plugins.
///
/// ```
/// use backstage::actions::{Action, Actions};
/// use backstage::testing::mock;
/// use backstage::Credentials;
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let actions: Actions = mock::actions("catalog", vec![Action::new(
///     "count-entities",
///     "Count entities",
///     "How many entities the catalog holds.",
///     |_input: serde_json::Value, _creds: Credentials| async move { Ok(42) },
/// )]);
/// let creds = Credentials::service("tests");
/// assert_eq!(actions.list(&creds).await.unwrap()[0].id, "catalog:count-entities");
/// let output = actions.invoke("catalog:count-entities", serde_json::json!({}), &creds).await;
/// assert_eq!(output.unwrap(), 42);
/// # });
/// ```
///
/// In a backend: `TestBackend::builder().service(mock::actions(..))`.
pub fn actions(plugin_id: &str, actions: Vec<crate::actions::Action>) -> crate::actions::Actions {
    crate::actions::Actions::in_memory(plugin_id, actions)
}

/// An auditor of plugin `plugin_id` that keeps its events in memory, and the log to read them
/// back from. (A [`super::TestBackend`] records every plugin's events already:
/// [`super::TestBackend::audit_log`].)
///
/// ```
/// use backstage::auditor::{AuditOrigin, Severity};
/// use backstage::testing::mock;
/// use backstage::{Credentials, Error};
///
/// let (auditor, log) = mock::auditor("vault");
/// let ada = Credentials::user("user:default/ada");
/// let event = auditor.create_event("secret-read", Severity::Medium, &ada, ());
/// event.fail(&Error::not_found("no secret 7"), serde_json::json!({ "id": 7 }));
/// let failed = &log.events()[1];
/// assert_eq!(failed.actor_id.as_deref(), Some("user:default/ada"));
/// assert_eq!(failed.error, Some(("NotFoundError".into(), "no secret 7".into())));
/// ```
pub fn auditor(plugin_id: &str) -> (crate::auditor::Auditor, crate::auditor::AuditLog) {
    let log = crate::auditor::AuditLog::default();
    let auditor = crate::auditor::Auditor::for_plugin(plugin_id).recording(log.clone());
    (auditor, log)
}

/// A scheduler whose tasks never run on their own: `trigger_task` runs one at once and returns
/// its result ([`crate::Scheduler::manual`]). Hand a clone to the backend and keep one:
///
/// ```
/// use backstage::testing::{mock, TestBackend};
/// # async fn example() -> backstage::Result<()> {
/// let scheduler = mock::scheduler();
/// let backend = TestBackend::builder().service(scheduler.clone()).start().await?;
/// // ... a plugin scheduled "refresh" in its #[init] ...
/// assert!(scheduler.trigger_task("refresh").await.is_err(), "no plugin scheduled it here");
/// # Ok(()) }
/// ```
pub fn scheduler() -> crate::scheduler::Scheduler {
    crate::scheduler::Scheduler::manual()
}

/// Permissions that allow everything, whoever asks.
///
/// ```
/// let permissions = backstage::testing::mock::permissions_allow_all();
/// ```
pub fn permissions_allow_all() -> crate::permissions::Permissions {
    crate::permissions::Permissions::allow_all()
}

/// Permissions that deny everything, whoever asks.
///
/// ```
/// let permissions = backstage::testing::mock::permissions_deny_all();
/// ```
pub fn permissions_deny_all() -> crate::permissions::Permissions {
    crate::permissions::Permissions::deny_all()
}
