//! The auth gate in front of plugin routes, and the glue generated route handlers call.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};

use super::path_policy::{PathPolicy, policy_for};
use super::{Allow, AuthPolicyKind};
use crate::auth::{HttpAuth, RequestAuth};
use crate::error::{Error, ErrorKind, ErrorReport, Result};
use crate::plugin::ServiceContext;

/// Checks a plugin's requests against auth policies and leaves the verified credentials in the
/// request for the [`crate::Credentials`] extractor.
///
/// Every route handler takes a copy of it for each request it serves: a copy is one reference
/// count.
#[derive(Clone)]
pub struct Gate {
    rules: Arc<Rules>,
}

struct Rules {
    http_auth: HttpAuth,
    policies: Box<[PathPolicy]>,
    /// `backend.auth.dangerouslyDisableDefaultAuthPolicy`: every route is open; credentials
    /// sent are still verified.
    open: bool,
}

impl Gate {
    /// The gate of the plugin `ctx` is building, with the path policies added so far.
    pub async fn for_plugin(ctx: &ServiceContext<'_>) -> Result<Self> {
        let http_auth = ctx.get::<HttpAuth>().await?;
        let policies = ctx.get::<super::HttpRouter>().await?.policies();
        let open = ctx
            .config()
            .get_optional("backend.auth.dangerouslyDisableDefaultAuthPolicy")?
            .unwrap_or(false);
        Ok(Gate {
            rules: Arc::new(Rules {
                http_auth,
                policies: policies.into(),
                open,
            }),
        })
    }

    /// Applies a route's own policy. `Err` is the response to send instead of running the route.
    pub async fn check(
        &self,
        policy: AuthPolicyKind,
        parts: &mut Parts,
    ) -> std::result::Result<(), Response> {
        match policy {
            AuthPolicyKind::Default => self.require(parts, false).await,
            AuthPolicyKind::UserCookie => self.require(parts, true).await,
            AuthPolicyKind::Unauthenticated => {
                self.optional(parts).await;
                Ok(())
            }
        }
    }

    /// Applies the path policies to a request of a hand-written router (or an unknown path).
    pub(crate) async fn check_path(&self, parts: &mut Parts) -> std::result::Result<(), Response> {
        match policy_for(&self.rules.policies, parts.uri.path()) {
            Some(Allow::Unauthenticated) => {
                self.optional(parts).await;
                Ok(())
            }
            Some(Allow::UserCookie) => self.require(parts, true).await,
            None => self.require(parts, false).await,
        }
    }

    async fn require(
        &self,
        parts: &mut Parts,
        allow_limited_access: bool,
    ) -> std::result::Result<(), Response> {
        if self.rules.open {
            self.optional(parts).await;
            return Ok(());
        }
        let options = crate::auth::AuthenticateOptions {
            allow_limited_access,
        };
        match self
            .rules
            .http_auth
            .credentials_with(&parts.headers, options)
            .await
        {
            Ok(creds) => {
                parts.extensions.insert(RequestAuth::Verified(creds));
                Ok(())
            }
            Err(e) => Err(e.into_response()),
        }
    }

    /// Verifies credentials only when some were sent; a request without any has none, which
    /// the extractor sees as a missing entry (no allocation on the anonymous path).
    async fn optional(&self, parts: &mut Parts) {
        if !parts.headers.contains_key(http::header::AUTHORIZATION)
            && !self.rules.http_auth.has_default_credentials()
        {
            return;
        }
        let auth = match self
            .rules
            .http_auth
            .optional_credentials(&parts.headers)
            .await
        {
            Ok(creds) => RequestAuth::Verified(creds),
            Err(e) => RequestAuth::Failed(Arc::new((e.kind(), e.message().to_owned()))),
        };
        parts.extensions.insert(auth);
    }

    /// Answers a path no route matched: the path policies first (so anonymous callers get 401),
    /// then Backstage's not-found answer, 404 with an empty body.
    pub(crate) async fn not_found(self, request: Request) -> Response {
        let (mut parts, _body) = request.into_parts();
        let mut response = match self.check_path(&mut parts).await {
            Err(refusal) => refusal,
            Ok(()) => http::StatusCode::NOT_FOUND.into_response(),
        };
        response.extensions_mut().insert(super::dispatch::Unmatched);
        response
    }
}

/// Extracts a route parameter that is not the last: axum's `FromRequestParts`, with
/// rejections turned into Backstage errors.
pub async fn from_parts<T: FromRequestParts<()>>(
    parts: &mut Parts,
) -> std::result::Result<T, Response> {
    match T::from_request_parts(parts, &()).await {
        Ok(value) => Ok(value),
        Err(rejection) => Err(rejection_to_error(rejection.into_response()).await),
    }
}

/// Extracts the last route parameter (it may consume the body): axum's `FromRequest`, with
/// rejections turned into Backstage errors.
pub async fn from_request<T: FromRequest<(), M>, M>(
    request: Request,
) -> std::result::Result<T, Response> {
    match T::from_request(request, &()).await {
        Ok(value) => Ok(value),
        Err(rejection) => Err(rejection_to_error(rejection.into_response()).await),
    }
}

/// Turns an axum rejection into Backstage's error: client errors (bad JSON, bad path
/// parameters, wrong content type) become 400 `InputError` with axum's explanation as message,
/// 413 stays 413; an error already in Backstage's form passes unchanged.
async fn rejection_to_error(response: Response) -> Response {
    if response.extensions().get::<ErrorReport>().is_some() {
        return response;
    }
    let status = response.status();
    // axum's explanations quote what was sent (a path parameter of 30,000 digits, say): read
    // them whole, send at most a kilobyte of them back.
    let body = axum::body::to_bytes(response.into_body(), 256 * 1024)
        .await
        .unwrap_or_default();
    let message = truncated(String::from_utf8_lossy(&body).trim(), MAX_MESSAGE);
    let kind = match status.as_u16() {
        413 => ErrorKind::PayloadTooLarge,
        401 => ErrorKind::Authentication,
        403 => ErrorKind::NotAllowed,
        404 => ErrorKind::NotFound,
        409 => ErrorKind::Conflict,
        400..=499 => ErrorKind::Input,
        _ => ErrorKind::Internal,
    };
    Error::new(kind, message).into_response()
}

/// The longest extractor explanation sent back, in characters.
const MAX_MESSAGE: usize = 1024;

/// `message`, cut after `max` characters (with `...` to say so).
fn truncated(message: &str, max: usize) -> String {
    match message.char_indices().nth(max) {
        Some((end, _)) => format!("{}...", &message[..end]),
        None => message.to_owned(),
    }
}

/// Turns what a route handler returned into a response. The bound names the rule when a handler
/// returns something that is not a response.
pub fn respond<T: Respond>(value: T) -> Response {
    value.into_response()
}

/// Route handlers return a response: anything `IntoResponse`, or `backstage::Result<T>` of one.
#[diagnostic::on_unimplemented(
    message = "a route handler must return a response, and `{Self}` is not one",
    label = "not a response",
    note = "return something that implements axum's `IntoResponse` (`Json<T>`, `String`, `StatusCode`, ...) or `backstage::Result<T>` of one"
)]
pub trait Respond: IntoResponse {}
impl<T: IntoResponse> Respond for T {}
