//! The root service: health, dispatch to plugins, panics, error bodies, security headers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use serde::Serialize;
use tower::{Service, ServiceExt};

use crate::error::{Error, ErrorReport};
use crate::lifecycle::RootHealth;
use crate::plugin::BoxFuture;

/// What the root service serves once the backend has started.
pub(crate) struct Routes {
    pub(crate) plugins: HashMap<&'static str, axum::Router>,
    pub(crate) root: axum::Router,
}

/// Shared by every connection.
pub(crate) struct Shared {
    pub(crate) health: RootHealth,
    pub(crate) routes: OnceLock<Routes>,
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
}

/// The backend's root HTTP service.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    pub(crate) shared: Arc<Shared>,
}

const JSON: HeaderValue = HeaderValue::from_static("application/json; charset=utf-8");

/// Backstage's default security headers (helmet 6 as Backstage configures it).
pub(crate) const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'self'; font-src 'self' https: data:; frame-ancestors 'self'; img-src 'self' data:; object-src 'none'; script-src 'self' 'unsafe-eval'; script-src-attr 'none'; style-src 'self' https: 'unsafe-inline'; upgrade-insecure-requests";

pub(crate) fn security_headers() -> Vec<(HeaderName, HeaderValue)> {
    [
        ("content-security-policy", CONTENT_SECURITY_POLICY),
        ("referrer-policy", "no-referrer"),
        (
            "strict-transport-security",
            "max-age=15552000; includeSubDomains",
        ),
        ("x-content-type-options", "nosniff"),
        ("x-dns-prefetch-control", "off"),
        ("x-download-options", "noopen"),
        ("x-frame-options", "SAMEORIGIN"),
        ("x-permitted-cross-domain-policies", "none"),
        ("x-xss-protection", "0"),
    ]
    .into_iter()
    .map(|(name, value)| {
        (
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        )
    })
    .collect()
}

impl Service<Request> for Dispatcher {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        let shared = self.shared.clone();
        Box::pin(async move { Ok(shared.handle(request).await) })
    }
}

impl Shared {
    async fn handle(&self, request: Request) -> Response {
        let method = request.method().clone();
        let uri = request.uri().clone();
        let mut response = match AssertUnwindSafe(self.route(request)).catch_unwind().await {
            Ok(response) => response,
            Err(panic) => {
                let what = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
                Error::internal(format!("request handler panicked: {what}")).into_response()
            }
        };
        if let Some(report) = response.extensions_mut().remove::<ErrorReport>() {
            write_error_body(&mut response, &report, &method, &uri);
        }
        let headers = response.headers_mut();
        for (name, value) in &self.headers {
            if !headers.contains_key(name) {
                headers.insert(name.clone(), value.clone());
            }
        }
        response
    }

    async fn route(&self, mut request: Request) -> Response {
        let path = request.uri().path();
        if let Some(probe) = path.strip_prefix("/.backstage/health/v1/") {
            return match probe {
                "liveness" => json_response(StatusCode::OK, br#"{"status":"ok"}"#),
                "readiness" => self.health.readiness_response(),
                _ => StatusCode::NOT_FOUND.into_response(),
            };
        }
        let Some(routes) = self.routes.get() else {
            if path.starts_with("/api/") {
                return Error::service_unavailable("Service has not started up yet")
                    .into_response();
            }
            return StatusCode::NOT_FOUND.into_response();
        };
        let Some(rest) = path.strip_prefix("/api/") else {
            return routes
                .root
                .clone()
                .oneshot(request)
                .await
                .unwrap_or_else(|never| match never {});
        };
        let (id, sub_path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let Some(router) = routes.plugins.get(id) else {
            return StatusCode::NOT_FOUND.into_response();
        };
        let rewritten = match request.uri().query() {
            Some(query) => format!("{sub_path}?{query}"),
            None => sub_path.to_owned(),
        };
        match Uri::try_from(rewritten) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => return Error::input("the request path is not a valid URI").into_response(),
        }
        router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {})
    }
}

pub(crate) fn json_response(status: StatusCode, body: &'static [u8]) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(CONTENT_TYPE, JSON);
    response
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: ErrorPart<'a>,
    request: RequestPart<'a>,
    response: ResponsePart,
}

#[derive(Serialize)]
struct ErrorPart<'a> {
    name: &'a str,
    message: &'a str,
}

#[derive(Serialize)]
struct RequestPart<'a> {
    method: &'a str,
    url: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ResponsePart {
    status_code: u16,
}

fn write_error_body(response: &mut Response, report: &ErrorReport, method: &Method, uri: &Uri) {
    let status = response.status();
    if status == StatusCode::NOT_MODIFIED {
        return;
    }
    let body = ErrorBody {
        error: ErrorPart {
            name: report.name,
            message: &report.message,
        },
        request: RequestPart {
            method: method.as_str(),
            url: uri.path_and_query().map_or("/", |pq| pq.as_str()),
        },
        response: ResponsePart {
            status_code: status.as_u16(),
        },
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => {
            response.headers_mut().insert(CONTENT_TYPE, JSON);
            response.headers_mut().remove(http::header::CONTENT_LENGTH);
            *response.body_mut() = Body::from(bytes);
        }
        Err(e) => tracing::error!("could not serialize an error body: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_has_backstage_shape() {
        let mut response = StatusCode::NOT_FOUND.into_response();
        let report = ErrorReport {
            name: "NotFoundError",
            message: "no item 7".into(),
        };
        write_error_body(
            &mut response,
            &report,
            &Method::GET,
            &Uri::from_static("/api/x/items/7?a=b"),
        );
        let body =
            futures_util::FutureExt::now_or_never(axum::body::to_bytes(response.into_body(), 1024))
                .expect("ready")
                .expect("body");
        assert_eq!(
            std::str::from_utf8(&body).unwrap(),
            r#"{"error":{"name":"NotFoundError","message":"no item 7"},"request":{"method":"GET","url":"/api/x/items/7?a=b"},"response":{"statusCode":404}}"#
        );
    }
}
