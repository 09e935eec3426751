//! The `userInfo` service: a user's entity ref and the entities it owns.

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::plugin::{BoxFuture, PluginScoped, Service as ServiceTrait, ServiceContext};

use super::{Credentials, Principal, PrincipalType, tokens};

/// What [`UserInfo::get_user_info`] returns.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackstageUserInfo {
    /// The user's entity ref.
    pub user_entity_ref: String,
    /// The entities the user or its groups own, the user itself included.
    pub ownership_entity_refs: Vec<String>,
}

/// The `userInfo` service: who a user is.
///
/// The ownership refs come from the user token's `ent` claim; a token without one is sent to
/// the auth plugin's `/v1/userinfo`, as Backstage does. Credentials without a token (made in
/// tests) own what the user itself is.
///
/// ```
/// use backstage::{Credentials, UserInfo};
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// let info = UserInfo::default().get_user_info(&Credentials::user("user:default/alice")).await.unwrap();
/// assert_eq!(info.ownership_entity_refs, vec!["user:default/alice"]);
/// # });
/// ```
#[derive(Clone, Debug, Default)]
pub struct UserInfo {
    remote: Option<(crate::discovery::Discovery, reqwest::Client)>,
}

impl UserInfo {
    /// The user's entity ref and ownership refs.
    pub async fn get_user_info<P: PrincipalType>(
        &self,
        credentials: &Credentials<P>,
    ) -> Result<BackstageUserInfo> {
        let user = match credentials.any() {
            Principal::User(user) => user,
            other => {
                return Err(Error::input(format!(
                    "User info is only available for user principals, got '{}'",
                    other.type_name()
                )));
            }
        };
        if let Some(refs) = &user.ownership_entity_refs {
            return Ok(BackstageUserInfo {
                user_entity_ref: user.user_entity_ref.clone(),
                ownership_entity_refs: refs.clone(),
            });
        }
        let (Some(token), Some((discovery, http))) = (credentials.token(), &self.remote) else {
            return Ok(BackstageUserInfo {
                user_entity_ref: user.user_entity_ref.clone(),
                ownership_entity_refs: vec![user.user_entity_ref.clone()],
            });
        };
        #[derive(Deserialize)]
        struct Response {
            claims: ResponseClaims,
        }
        #[derive(Deserialize)]
        struct ResponseClaims {
            ent: Option<Vec<String>>,
        }
        let url = format!("{}/v1/userinfo", discovery.base_url("auth"));
        let response = http
            .get(&url)
            .bearer_auth(token)
            .timeout(std::time::Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| Error::internal(format!("could not reach {url}: {e}")))?;
        if !response.status().is_success() {
            return Err(Error::internal(format!(
                "{url} answered {}",
                response.status()
            )));
        }
        let body: Response = response
            .json()
            .await
            .map_err(|e| Error::internal(format!("{url} sent an unexpected body: {e}")))?;
        let refs = body
            .claims
            .ent
            .ok_or_else(|| Error::internal("Ownership entity refs can not be determined"))?;
        Ok(BackstageUserInfo {
            user_entity_ref: user.user_entity_ref.clone(),
            ownership_entity_refs: refs,
        })
    }
}

impl ServiceTrait for UserInfo {
    type Scope = PluginScoped;
    const ID: &'static str = "core.userInfo";
    const DEPENDENCIES: &'static [&'static str] =
        crate::plugin::dependencies!(crate::discovery::Discovery);
    fn create<'a>(ctx: &'a ServiceContext<'_>) -> BoxFuture<'a, Result<Self>> {
        Box::pin(async move {
            let shared = ctx.get::<tokens::SharedAuth>().await?;
            Ok(UserInfo {
                remote: Some((shared.0.discovery.clone(), shared.0.http.clone())),
            })
        })
    }
}
