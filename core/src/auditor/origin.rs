//! Who and what an audit event is about: the actor, and the request when there is one.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{HOST, USER_AGENT};
use axum::http::request::Parts;
use serde::Serialize;

use crate::auth::{Credentials, Principal, PrincipalType, RequestAuth};

/// The request an audit event is about, taken as a handler parameter: the caller, its address,
/// host name and user agent, and the method and URL, as Backstage's auditor reads them from
/// Express's request.
///
/// ```
/// use backstage::prelude::*;
/// use backstage::auditor::{AuditRequest, Auditor, Severity};
///
/// #[backend_plugin(id = "vault")]
/// pub struct Vault {
///     #[inject]
///     auditor: Auditor,
/// }
///
/// #[routes]
/// impl Vault {
///     #[route(post, "/rotate")]
///     async fn rotate(&self, request: AuditRequest) -> StatusCode {
///         self.auditor.create_event("key-rotate", Severity::Critical, &request, ()).success(());
///         StatusCode::NO_CONTENT
///     }
/// }
/// # fn main() {}
/// ```
#[derive(Clone, Debug)]
pub struct AuditRequest {
    actor: Actor,
    request: RequestLine,
}

/// The `actor` of an audit event.
#[derive(Clone, Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Actor {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) actor_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    hostname: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<String>,
}

/// The `request` of an audit event: the URL as the client sent it (Express's `originalUrl`);
/// [`AuditOrigin::parts`] puts back the plugin's `/api/<pluginId>` that routing took off.
#[derive(Clone, Debug, Serialize)]
pub(crate) struct RequestLine {
    pub(crate) url: String,
    pub(crate) method: String,
}

impl AuditRequest {
    /// The request behind `parts`, after the auth gate has verified its credentials.
    #[doc(hidden)]
    pub fn of(parts: &Parts) -> AuditRequest {
        let actor_id = match parts.extensions.get::<RequestAuth>() {
            Some(RequestAuth::Verified(credentials)) => actor_id(credentials.any()),
            _ => None,
        };
        let header = |name| {
            parts
                .headers
                .get(name)
                .and_then(|v: &axum::http::HeaderValue| v.to_str().ok())
        };
        // Express's `req.hostname`: the Host header without its port.
        let hostname = header(HOST).map(|host| match host.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name.to_owned(),
            _ => host.to_owned(),
        });
        let uri = &parts.uri;
        AuditRequest {
            actor: Actor {
                actor_id,
                ip: parts
                    .extensions
                    .get::<ConnectInfo<SocketAddr>>()
                    .map(|c| c.0.ip().to_string()),
                hostname,
                user_agent: header(USER_AGENT).map(str::to_owned),
            },
            request: RequestLine {
                url: uri
                    .path_and_query()
                    .map_or_else(|| uri.path().to_owned(), |pq| pq.as_str().to_owned()),
                method: parts.method.as_str().to_owned(),
            },
        }
    }
}

impl<S: Send + Sync> FromRequestParts<S> for AuditRequest {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        _state: &S,
    ) -> Result<Self, std::convert::Infallible> {
        Ok(AuditRequest::of(parts))
    }
}

/// Whom an audit event names as its actor: a request's caller ([`AuditRequest`]), credentials
/// (`&Credentials`), or the plugin itself ([`AuditOrigin::Plugin`], for work no request asked
/// for, as Backstage's auditor names the plugin's own service credentials).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum AuditOrigin {
    /// The plugin itself: the actor is `plugin:<pluginId>`.
    Plugin,
    /// A caller known by its credentials, outside a request.
    Caller(Option<String>),
    /// A request and its caller.
    Request(Box<AuditRequest>),
}

impl AuditOrigin {
    /// The event's `actor` and `request` members, with `plugin_id` for the plugin itself.
    pub(crate) fn parts(&self, plugin_id: &str) -> (Actor, Option<RequestLine>) {
        match self {
            AuditOrigin::Plugin => (
                Actor {
                    actor_id: Some(format!("plugin:{plugin_id}")),
                    ..Actor::default()
                },
                None,
            ),
            AuditOrigin::Caller(actor_id) => (
                Actor {
                    actor_id: actor_id.clone(),
                    ..Actor::default()
                },
                None,
            ),
            AuditOrigin::Request(request) => {
                let line = &request.request;
                let url = if line.url.starts_with("/api/") || line.url.starts_with("/.backstage/") {
                    line.url.clone()
                } else {
                    format!("/api/{plugin_id}{}", line.url)
                };
                let line = RequestLine {
                    url,
                    method: line.method.clone(),
                };
                (request.actor.clone(), Some(line))
            }
        }
    }
}

impl From<&AuditRequest> for AuditOrigin {
    fn from(request: &AuditRequest) -> Self {
        AuditOrigin::Request(Box::new(request.clone()))
    }
}

impl From<AuditRequest> for AuditOrigin {
    fn from(request: AuditRequest) -> Self {
        AuditOrigin::Request(Box::new(request))
    }
}

impl<P: PrincipalType> From<&Credentials<P>> for AuditOrigin {
    fn from(credentials: &Credentials<P>) -> Self {
        AuditOrigin::Caller(actor_id(credentials.any()))
    }
}

/// Backstage's actor id: a user's entity ref, a service's subject, nothing for anonymous.
fn actor_id(principal: &Principal) -> Option<String> {
    match principal {
        Principal::User(user) => Some(user.user_entity_ref.clone()),
        Principal::Service(service) => Some(service.subject.clone()),
        Principal::None => None,
    }
}
