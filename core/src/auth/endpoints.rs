//! The endpoints Backstage's auth gives every plugin: its public keys, which other services
//! verify its plugin tokens with (open to all), and the user cookie (`user-cookie` policy).

use axum::Router;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};

use super::{Auth, AuthenticateOptions, Credentials, HttpAuth};
use crate::plugin::AuthPolicyKind;

/// What the router serves, for the route table: method, path below the plugin, policy.
pub(crate) const ENDPOINTS: &[(&str, &str, AuthPolicyKind)] = &[
    (
        "GET",
        "/.backstage/auth/v1/jwks.json",
        AuthPolicyKind::Unauthenticated,
    ),
    (
        "GET",
        "/.backstage/auth/v1/cookie",
        AuthPolicyKind::UserCookie,
    ),
    (
        "DELETE",
        "/.backstage/auth/v1/cookie",
        AuthPolicyKind::UserCookie,
    ),
];

/// The plugin's auth endpoints.
pub(crate) fn router(auth: Auth, http_auth: HttpAuth) -> Router {
    let cookie = http_auth.clone();
    Router::new()
        .route(
            "/.backstage/auth/v1/jwks.json",
            axum::routing::get(move || jwks(auth.clone())),
        )
        .route(
            "/.backstage/auth/v1/cookie",
            axum::routing::get(move |request: Request| user_cookie(cookie.clone(), request))
                .delete(move |request: Request| user_cookie(http_auth.clone(), request)),
        )
}

async fn jwks(auth: Auth) -> Response {
    match auth.list_public_service_keys().await {
        Ok(keys) => crate::answer::json(
            http::StatusCode::OK,
            &KeySet {
                keys: keys.iter().map(OrderedJwk).collect(),
            },
        ),
        Err(e) => e.into_response(),
    }
}

#[derive(serde::Serialize)]
struct KeySet<'a> {
    keys: Vec<OrderedJwk<'a>>,
}

/// A JWK with its members in the order Backstage's `jose` writes them (`kty`, `x`, `y`, `crv`,
/// `kid`, `alg`), then any others.
struct OrderedJwk<'a>(&'a serde_json::Value);

/// The members of a JWK in `jose`'s order.
const JWK_ORDER: &[&str] = &["kty", "n", "e", "x", "y", "crv", "kid", "alg", "use"];

impl serde::Serialize for OrderedJwk<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let Some(members) = self.0.as_object() else {
            return self.0.serialize(serializer);
        };
        let rank = |name: &str| {
            JWK_ORDER
                .iter()
                .position(|n| *n == name)
                .unwrap_or(usize::MAX)
        };
        let mut ordered: Vec<(&String, &serde_json::Value)> = members.iter().collect();
        ordered.sort_by_key(|(name, _)| rank(name));
        let mut map = serializer.serialize_map(Some(ordered.len()))?;
        for (name, value) in ordered {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

/// GET issues the cookie for the caller's bearer user token (`{"expiresAt": ...}`), DELETE
/// clears it (204); either needs what a `user-cookie` route needs.
async fn user_cookie(http_auth: HttpAuth, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let allow_cookie = AuthenticateOptions {
        allow_limited_access: true,
    };
    if let Err(e) = http_auth
        .credentials_with(&parts.headers, allow_cookie)
        .await
    {
        return e.into_response();
    }
    let delete = parts.method == http::Method::DELETE;
    let none = Credentials::none();
    let cookie = match http_auth
        .issue_user_cookie(&parts.headers, delete.then_some(&none))
        .await
    {
        Ok(cookie) => cookie,
        Err(e) => return e.into_response(),
    };
    let mut response = if delete {
        http::StatusCode::NO_CONTENT.into_response()
    } else {
        let expires = humantime::format_rfc3339_millis(cookie.expires_at).to_string();
        crate::answer::json(
            http::StatusCode::OK,
            &serde_json::json!({ "expiresAt": expires }),
        )
    };
    if let Some(set_cookie) = cookie.set_cookie {
        response
            .headers_mut()
            .insert(http::header::SET_COOKIE, set_cookie);
    }
    response
}
