//! The root service: health, dispatch to plugins, panics, error bodies, security headers.

use std::collections::HashMap;
use std::convert::Infallible;
use std::hash::BuildHasherDefault;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::Instant;

use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::http::header::{CONTENT_LENGTH, CONTENT_TYPE, ETAG, HeaderValue};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use futures_util::FutureExt;
use futures_util::future::Either;
use serde::Serialize;
use tower::Service;

use super::cors::{self, Answer};
use super::json::{BodyLimit, Conditional, JSON_UTF8, json_response, weak_etag};
use super::rate_limit::Verdict;
use super::request_heads::RequestHeads;
use crate::error::{Error, ErrorReport};
use crate::lifecycle::RootHealth;
use crate::plugin::BoxFuture;

/// What the root service serves once the backend has started.
pub(crate) struct Routes {
    pub(crate) plugins: PluginRouters,
    pub(crate) root: axum::Router,
}

/// Each plugin's router by its id, looked up for every request to `/api/<id>`.
pub(crate) type PluginRouters = HashMap<&'static str, axum::Router, BuildHasherDefault<IdHasher>>;

/// FNV-1a over a plugin id: a few instructions a byte, where the default SipHash costs about
/// 150 instructions a lookup. Its keys are the plugins, fixed at start-up; a request's path
/// only looks them up, so a chosen collision makes a lookup probe further and nothing grows.
pub(crate) struct IdHasher(u64);

impl Default for IdHasher {
    fn default() -> Self {
        IdHasher(0xcbf2_9ce4_8422_2325)
    }
}

impl std::hash::Hasher for IdHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut hash = self.0;
        for &byte in bytes {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.0 = hash;
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Shared by every connection.
pub(crate) struct Shared {
    pub(crate) health: RootHealth,
    pub(crate) routes: OnceLock<Routes>,
    pub(crate) policies: super::policies::HttpPolicies,
    /// Turns true once every plugin has started.
    pub(crate) started: tokio::sync::watch::Receiver<bool>,
    /// Set when plugins shut down: their routes answer 503.
    pub(crate) shutting_down: std::sync::atomic::AtomicBool,
}

/// The backend's root HTTP service.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    pub(crate) shared: Arc<Shared>,
}

/// A body announced as larger than the limit is read and dropped before the 413 when it is at
/// most this many times the limit; a larger one is refused from its headers alone.
const DRAINED_BODIES: u64 = 4;

/// How long reading a refused body may take before the connection is closed instead.
const DRAIN_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// Reads and drops `body`, at most `length` bytes and for at most [`DRAIN_TIME`], and says
/// whether it was read to its end; what is left unread closes the connection.
async fn drain(body: Body, length: u64) -> bool {
    let read = async {
        let mut body = body;
        let mut read = 0_u64;
        while read <= length {
            match http_body_util::BodyExt::frame(&mut body).await {
                Some(Ok(frame)) => read += frame.data_ref().map_or(0, |data| data.len() as u64),
                Some(Err(_)) => return false,
                None => return true,
            }
        }
        false
    };
    tokio::time::timeout(DRAIN_TIME, read)
        .await
        .unwrap_or(false)
}

/// Marks a `413` whose request body was read to its end: its connection can serve the next
/// request (as Node's does after reading a refused body).
#[derive(Clone, Copy)]
struct Drained;

/// Marks the answer to a path or method no route of a plugin serves (its auth policy's
/// refusal, or Backstage's not-found answer with an empty body): it carries no `Allow`.
#[derive(Clone, Copy)]
pub(crate) struct Unmatched;

impl Service<Request> for Dispatcher {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // One future per request, boxed once: it owns what it needs, so no part of the request
        // is held twice in it (each async layer keeps its own copy of what it was given).
        let answers = self.shared.policies.answers.clone();
        Box::pin(crate::answer::Serving::new(
            answers,
            Shared::answer(self.shared.clone(), request),
        ))
    }
}

impl Shared {
    /// The answer to `request`, compressed as the client accepts. Owns its `Arc`: the request
    /// future is this one alone, and holds the request once.
    async fn answer(self: Arc<Self>, mut request: Request) -> Result<Response, Infallible> {
        let started = Instant::now();
        let method = request.method().clone();
        let uri = request.uri().clone();
        let version = request.version();
        let peer = request
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        // What the root service reads of the request's headers, kept before the request goes
        // to its route.
        let heads = RequestHeads::of(request.headers());
        let accept = heads.accept_encoding.cloned();
        let log_meta = crate::logging::requests_logged().then(|| RequestMeta::of(&heads));
        let conditional = Conditional::of(&method, &heads);
        let refusal = malformed(version, &heads);
        let announced = heads
            .content_length
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        // As Backstage's root router: security headers, then CORS (which answers preflights
        // itself, before logging and rate limits), then compression (last, here).
        let cors = match &self.policies.cors {
            Some(cors) => cors.answer(&request),
            None => Answer::None,
        };
        if let Answer::Preflight(mut preflight) = cors {
            self.secure(&mut preflight);
            return Ok(super::compression::compress(accept, preflight).await);
        }
        // The body limit, for the extractors that read a body: a request without one (most
        // `GET`s) is spared the two entries, and their requests' extension map its growth.
        if !axum::body::HttpBody::is_end_stream(request.body()) {
            request
                .extensions_mut()
                .insert(BodyLimit(self.policies.body_limit));
        }
        let limits = self.rate_limits_for(uri.path());
        let mut response = 'response: {
            if let Some(refusal) = refusal {
                break 'response refusal;
            }
            if let Some(ip) = peer {
                for limit in &limits {
                    // Boxed, as the other rate-limit calls: a store's future is large, and would
                    // otherwise make every request's future as large, limits or not.
                    match Box::pin(limit.hit(ip)).await {
                        Verdict::Allowed => {}
                        Verdict::Limited => {
                            break 'response too_many_requests(
                                Box::pin(limit.retry_after(ip)).await,
                            );
                        }
                        Verdict::StoreFailed => {
                            break 'response Error::service_unavailable(
                                "The rate limit store is unavailable",
                            )
                            .into_response();
                        }
                    }
                }
            }
            if let Some(length) = announced
                && length > self.policies.body_limit as u64
            {
                // Read what was announced, when it is within reach, before answering: a client
                // still sending its body would otherwise meet a closed connection and never read
                // the answer (Node reads and drops the rest of a refused body too).
                // Boxed: rare, and it would make every request's future larger.
                let drained = length <= DRAINED_BODIES * self.policies.body_limit as u64
                    && Box::pin(drain(request.into_body(), length)).await;
                let mut refusal = Error::new(
                    crate::error::ErrorKind::PayloadTooLarge,
                    "request entity too large",
                )
                .with_fields(vec![
                    ("expected", length.into()),
                    ("length", length.into()),
                    ("limit", self.policies.body_limit.into()),
                    ("type", "entity.too.large".into()),
                ])
                .into_response();
                if drained {
                    refusal.extensions_mut().insert(Drained);
                }
                break 'response refusal;
            }
            // The routed future is made in each arm: one made before the `match` and moved into
            // the timeout would be stored twice in this (boxed, per-request) future.
            let outcome = match self.policies.request_timeout {
                // The time limit counts from the request's arrival.
                Some(limit) => {
                    let routed = AssertUnwindSafe(self.route_guarded(request)).catch_unwind();
                    match Within::new(started.checked_add(limit), routed).await {
                        Some(outcome) => outcome,
                        None => {
                            break 'response Error::service_unavailable("Request timed out")
                                .into_response();
                        }
                    }
                }
                None => {
                    AssertUnwindSafe(self.route_guarded(request))
                        .catch_unwind()
                        .await
                }
            };
            match outcome {
                Ok(Ok(response)) => response,
                Ok(Err(never)) => match never {},
                Err(panic) => panicked(panic),
            }
        };
        if let Some(ip) = peer {
            let status = response.status();
            for limit in &limits {
                if (limit.skip_successful && status.as_u16() < 400)
                    || (limit.skip_failed && status.as_u16() >= 400)
                {
                    Box::pin(limit.forget(ip)).await;
                }
            }
        }
        if let Some(report) = response.extensions_mut().remove::<ErrorReport>() {
            write_error_body(&mut response, &report, &method, &uri);
        }
        if response.extensions_mut().remove::<Unmatched>().is_some() {
            response.headers_mut().remove(http::header::ALLOW);
        }
        if let Some(conditional) = conditional {
            conditional.apply(&mut response);
        }
        // A JSON answer as `res.json` made it: its type, `Vary` and security headers are known.
        let untouched = self.policies.answers.untouched(response.headers());
        // Decided before CORS adds its token, which would hide the answer headers' own `Vary`.
        let varies = untouched || super::compression::varies(response.headers());
        if !varies {
            self.policies.answers.unvary(response.headers_mut());
        }
        if let Answer::Simple(headers, vary) = cors {
            cors::apply(&mut response, headers, vary);
        }
        if varies && !untouched {
            cors::append_vary(response.headers_mut(), "Accept-Encoding");
        }
        if response.status() == StatusCode::PAYLOAD_TOO_LARGE
            && response.extensions_mut().remove::<Drained>().is_none()
        {
            // The rest of a body found too large is not always read: the connection ends.
            response
                .headers_mut()
                .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
        }
        if !untouched {
            self.secure(&mut response);
        }
        // Logged as compressed, as Backstage's request log sees it after its `compression`
        // middleware: a compressed answer's length is not known (`0`).
        let response = super::compression::compress(accept, response).await;
        if let Some(meta) = log_meta {
            meta.log(&method, &uri, version, &response);
        }
        Ok(response)
    }

    /// Backstage's security headers, where the answer has not set its own. The prebuilt set is
    /// copied (no hashing) and the answer's few headers go on top, replacing a default of the
    /// same name; on the wire the security headers come first, as helmet's do in Express.
    fn secure(&self, response: &mut Response) {
        if self.policies.answers.started(response.headers()) {
            return;
        }
        let own = std::mem::replace(
            response.headers_mut(),
            self.policies.security_headers.clone(),
        );
        let headers = response.headers_mut();
        let mut last: Option<http::HeaderName> = None;
        for (name, value) in own {
            match name {
                Some(name) => {
                    headers.insert(name.clone(), value);
                    last = Some(name);
                }
                // The next value of a header with several.
                None => {
                    if let Some(name) = &last {
                        headers.append(name.clone(), value);
                    }
                }
            }
        }
    }

    fn rate_limits_for(&self, path: &str) -> Vec<&super::rate_limit::RateLimit> {
        let limits = &self.policies.rate_limits;
        let mut found = Vec::new();
        if let Some(global) = &limits.global {
            found.push(global);
        }
        if !limits.plugins.is_empty()
            && let Some(rest) = path.strip_prefix("/api/")
            && let Some(limit) = limits.plugins.get(rest.split('/').next().unwrap_or(""))
        {
            found.push(limit);
        }
        found
    }

    /// [`Self::route`], with a panic while routing answered as a handler's panic is: axum's
    /// router runs plugin code before its future is polled (it clones the matched route's
    /// service, and a handler's captures with it).
    fn route_guarded(&self, request: Request) -> Routed<'_> {
        std::panic::catch_unwind(AssertUnwindSafe(|| self.route(request)))
            .unwrap_or_else(|panic| answered(panicked(panic)))
    }

    /// Where `request` goes: an answer known at once (health probes, unknown plugins, shutting
    /// down), a plugin's router, or, while plugins start, a wait before either. A plain function
    /// returning a small future, so that the request is not held twice across an `.await`.
    fn route(&self, request: Request) -> Routed<'_> {
        let path = request.uri().path();
        let get = matches!(*request.method(), Method::GET | Method::HEAD);
        if get && let Some(probe) = path.strip_prefix("/.backstage/health/v1/") {
            let mut response = match probe {
                "liveness" => json_response(StatusCode::OK, &br#"{"status":"ok"}"#[..]),
                "readiness" => {
                    let (status, body) = self.health.readiness();
                    json_response(
                        StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
                        body.as_bytes(),
                    )
                }
                _ => return answered(StatusCode::NOT_FOUND.into_response()),
            };
            for (name, value) in &self.policies.health_headers {
                response.headers_mut().insert(name.clone(), value.clone());
            }
            return answered(response);
        }
        if path.starts_with("/api/")
            && self
                .shutting_down
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return answered(
                Error::service_unavailable("Service is shutting down").into_response(),
            );
        }
        match self.routes.get() {
            Some(routes) => self.dispatch(routes, request),
            // Boxed: this wait happens only during start-up.
            None if path.starts_with("/api/") => {
                Either::Right(Either::Right(Box::pin(self.route_after_start(request))))
            }
            None => answered(StatusCode::NOT_FOUND.into_response()),
        }
    }

    /// Holds a plugin request while plugins start, up to the pause timeout.
    async fn route_after_start(&self, request: Request) -> Result<Response, Infallible> {
        let mut started = self.started.clone();
        let _ = tokio::time::timeout(self.policies.startup_pause, started.wait_for(|s| *s)).await;
        match self.routes.get() {
            Some(routes) => self.dispatch(routes, request).await,
            None => {
                Ok(Error::service_unavailable("Service has not started up yet").into_response())
            }
        }
    }

    /// `request` to the root router, or to its plugin's router with the path as the plugin
    /// sees it.
    fn dispatch(&self, routes: &Routes, mut request: Request) -> Routed<'_> {
        let path = request.uri().path();
        let Some(rest) = path.strip_prefix("/api/") else {
            return self.serve(&routes.root, request);
        };
        // A byte loop: the id is a few characters, shorter than a search's set-up.
        let (id, mut sub_path) = match rest.bytes().position(|b| b == b'/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        // As Express routes: `/health/` is `/health`, and so is `//health` (the mount path
        // takes one slash after the plugin id with it).
        if sub_path.len() > 1
            && let Some(trimmed) = sub_path.strip_suffix('/')
        {
            sub_path = trimmed;
        }
        if sub_path.starts_with("//") {
            sub_path = &sub_path[1..];
        }
        let Some(router) = routes.plugins.get(id) else {
            return answered(StatusCode::NOT_FOUND.into_response());
        };
        let rewritten = match request.uri().query() {
            Some(query) => format!("{sub_path}?{query}"),
            None => sub_path.to_owned(),
        };
        match Uri::try_from(rewritten) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(_) => {
                return answered(
                    Error::input("the request path is not a valid URI").into_response(),
                );
            }
        }
        self.serve(router, request)
    }

    /// `request` served by `router`, with `backend.server.maxRequestBodySize` as the limit of
    /// axum's body extractors (put in the request as axum's `DefaultBodyLimit` layer would, when
    /// it has a body to limit).
    fn serve(&self, router: &axum::Router, mut request: Request) -> Routed<'_> {
        if !axum::body::HttpBody::is_end_stream(request.body()) {
            axum::extract::DefaultBodyLimit::max(self.policies.body_limit).apply(&mut request);
        }
        Either::Right(Either::Left(Service::call(&mut router.clone(), request)))
    }
}

pin_project_lite::pin_project! {
    /// `future`, or `None` once `deadline` has passed (never without one): tokio's
    /// `timeout_at`, except that the timer is made only when the future first waits, so an
    /// answer ready at its first poll (most of them) costs no timer and no clock reading.
    struct Within<F> {
        #[pin]
        future: F,
        #[pin]
        timer: Option<tokio::time::Sleep>,
        deadline: Option<Instant>,
    }
}

impl<F> Within<F> {
    fn new(deadline: Option<Instant>, future: F) -> Self {
        Within {
            future,
            timer: None,
            deadline,
        }
    }
}

impl<F: std::future::Future> std::future::Future for Within<F> {
    type Output = Option<F::Output>;

    fn poll(self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        let had_budget = tokio::task::coop::has_budget_remaining();
        if let Poll::Ready(output) = this.future.poll(cx) {
            return Poll::Ready(Some(output));
        }
        let Some(deadline) = *this.deadline else {
            return Poll::Pending;
        };
        if this.timer.is_none() {
            this.timer
                .set(Some(tokio::time::sleep_until(deadline.into())));
        }
        let Some(timer) = this.timer.as_pin_mut() else {
            return Poll::Pending;
        };
        // As tokio's `timeout`: a future that spent the task's budget does not keep the timer
        // from being looked at (it would never time out a future that spends it every time).
        let fired = if had_budget && !tokio::task::coop::has_budget_remaining() {
            std::pin::Pin::new(&mut tokio::task::coop::unconstrained(timer)).poll(cx)
        } else {
            timer.poll(cx)
        };
        fired.map(|()| None)
    }
}

/// What routing a request gives: an answer known at once, a router's future, or a boxed wait.
/// Its output is a router's: a `Result` that is never an error.
type Routed<'a> = Either<
    std::future::Ready<Result<Response, Infallible>>,
    Either<
        axum::routing::future::RouteFuture<Infallible>,
        BoxFuture<'a, Result<Response, Infallible>>,
    >,
>;

fn answered<'a>(response: Response) -> Routed<'a> {
    Either::Left(std::future::ready(Ok(response)))
}

/// The answer to a panic while serving a request: 500, with the panic's message when it has one.
fn panicked(panic: Box<dyn std::any::Any + Send>) -> Response {
    let what = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic with a non-string payload".to_owned());
    Error::internal(format!("request handler panicked: {what}")).into_response()
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
    #[serde(flatten)]
    fields: MoreFields<'a>,
}

/// The error's other members, in their order.
struct MoreFields<'a>(&'a [(&'static str, serde_json::Value)]);

impl Serialize for MoreFields<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (name, value) in self.0 {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
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
            fields: MoreFields(report.fields.as_deref().map_or(&[], Vec::as_slice)),
        },
        request: RequestPart {
            method: method.as_str(),
            url: &url_as_routed(uri),
        },
        response: ResponsePart {
            status_code: status.as_u16(),
        },
    };
    match serde_json::to_vec(&body) {
        Ok(bytes) => {
            let headers = response.headers_mut();
            headers.insert(CONTENT_TYPE, JSON_UTF8);
            headers.insert(ETAG, weak_etag(&bytes));
            headers.remove(http::header::CONTENT_LENGTH);
            *response.body_mut() = Body::from(bytes);
        }
        Err(e) => tracing::error!("could not serialize an error body: {e}"),
    }
}

/// The request's URL as the router that answered sees it, as Express's `req.url` inside a
/// router mounted at `/api/<pluginId>`: `/items?limit=5` for `/api/carmen/items?limit=5`.
fn url_as_routed(uri: &Uri) -> std::borrow::Cow<'_, str> {
    let full = uri.path_and_query().map_or("/", |pq| pq.as_str());
    let Some(rest) = full.strip_prefix("/api/") else {
        return full.into();
    };
    match rest.find(['/', '?']) {
        Some(at) if rest[at..].starts_with("//") => rest[at + 1..].into(),
        Some(at) if rest[at..].starts_with('/') => rest[at..].into(),
        Some(at) => format!("/{}", &rest[at..]).into(),
        None => "/".into(),
    }
}

/// 429, in the body Backstage's rate limiter sends (it has no `request` part).
fn too_many_requests(retry_after: u64) -> Response {
    let mut response = json_response(
        StatusCode::TOO_MANY_REQUESTS,
        &br#"{"error":{"name":"Error","message":"Too many requests, please try again later"},"response":{"statusCode":429}}"#[..],
    );
    if let Ok(value) = HeaderValue::from_str(&retry_after.to_string()) {
        response
            .headers_mut()
            .insert(http::header::RETRY_AFTER, value);
    }
    response
}

/// What Node's HTTP parser refuses before Backstage sees a request, refused the same way (an
/// empty body, the connection closed): an HTTP/1.1 request without exactly one `Host` (400,
/// RFC 9112), and an `Expect` other than `100-continue` (417).
fn malformed(version: http::Version, headers: &RequestHeads<'_>) -> Option<Response> {
    let status = if version == http::Version::HTTP_11 && headers.hosts != 1 {
        StatusCode::BAD_REQUEST
    } else if headers
        .expect
        .is_some_and(|e| !e.as_bytes().eq_ignore_ascii_case(b"100-continue"))
    {
        StatusCode::EXPECTATION_FAILED
    } else {
        return None;
    };
    let mut response = status.into_response();
    response
        .headers_mut()
        .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    Some(response)
}

/// Query parameters whose values are credentials: never written to the log.
const SECRET_PARAMETERS: &[&str] = &[
    "token",
    "access_token",
    "id_token",
    "refresh_token",
    "api_key",
    "apikey",
    "auth",
    "authorization",
    "code",
    "password",
    "secret",
    "client_secret",
    "signature",
    "sig",
];

/// The request's path and query, with the values of [`SECRET_PARAMETERS`] in its query
/// replaced by `[REDACTED]`.
fn redacted(uri: &Uri) -> std::borrow::Cow<'_, str> {
    let Some(url) = uri.path_and_query() else {
        return "/".into();
    };
    // The URI knows where its query starts: no search for `?` in the path.
    let (path, Some(query)) = (url.path(), url.query()) else {
        return url.as_str().into();
    };
    let secret = |pair: &str| {
        let name = pair.split('=').next().unwrap_or("");
        SECRET_PARAMETERS
            .iter()
            .any(|s| s.eq_ignore_ascii_case(name))
    };
    if !query.split('&').any(secret) {
        return url.as_str().into();
    }
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _)) if secret(pair) => format!("{name}=[REDACTED]"),
            _ => pair.to_owned(),
        })
        .collect();
    format!("{path}?{}", query.join("&")).into()
}

/// What a request's log line needs from the request, kept while it is served.
struct RequestMeta {
    referrer: Option<HeaderValue>,
    user_agent: Option<HeaderValue>,
}

impl RequestMeta {
    fn of(headers: &RequestHeads<'_>) -> Self {
        // A header value shares the request's bytes: kept without a copy.
        RequestMeta {
            referrer: headers.referer.cloned(),
            user_agent: headers.user_agent.cloned(),
        }
    }

    /// Backstage's request line: `[date] "GET /path HTTP/1.1" 200 15 "-" "curl/8.0"`, with
    /// the fields backend-defaults' request log gives it.
    fn log(&self, method: &Method, uri: &Uri, version: http::Version, response: &Response) {
        let url = redacted(uri);
        // As Backstage's: a header that is absent or empty is not logged.
        fn text(value: &Option<HeaderValue>) -> Option<&str> {
            value
                .as_ref()
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
        }
        let fields = crate::logging::RequestFields {
            method: method.as_str(),
            url: &url,
            status: response.status().as_u16(),
            http_version: http_version(version),
            user_agent: text(&self.user_agent),
            content_length: content_length(response),
            referrer: text(&self.referrer),
        };
        // One clock reading for the line, its message and its `date`: the same moment.
        let time = std::time::SystemTime::now();
        crate::logging::incoming_request(
            time,
            &|message| access_line(message, time, &fields),
            &fields,
        );
    }
}

/// The answer's length as Backstage's request line has it (`contentLength`): its
/// `Content-Length`, which Node's server sets on every answer whose length it knows except a
/// `204` or `304`; `None` for a body of unknown length (streamed), whose message says `0`.
/// (A body that knows its length exactly says what a header a handler set would: the header
/// is looked up only for an empty body, which a `HEAD` answer has.)
fn content_length(response: &Response) -> Option<u64> {
    let exact = axum::body::HttpBody::size_hint(response.body()).exact();
    if let Some(length) = exact.filter(|&length| length > 0) {
        return Some(length);
    }
    if let Some(value) = response.headers().get(CONTENT_LENGTH) {
        return value.to_str().ok()?.parse().ok();
    }
    if matches!(
        response.status(),
        StatusCode::NO_CONTENT | StatusCode::NOT_MODIFIED
    ) {
        return None;
    }
    exact
}

/// A request's HTTP version as Node writes it (`major.minor`).
fn http_version(version: http::Version) -> &'static str {
    match version {
        http::Version::HTTP_09 => "0.9",
        http::Version::HTTP_10 => "1.0",
        http::Version::HTTP_2 => "2.0",
        http::Version::HTTP_3 => "3.0",
        _ => "1.1",
    }
}

/// The message of a request's log line, as Backstage's request log writes it (`[date] "GET
/// /path HTTP/1.1" 200 15 "-" "curl/8.0"`, `0` for a length it does not know, `-` for a header
/// the request did not send): written piece by piece into the line. The method, version, status
/// and length are the line's own (an HTTP token and digits); the URL and headers come from the
/// exchange and are escaped where the line needs it.
fn access_line(
    message: &mut crate::logging::Message<'_>,
    time: std::time::SystemTime,
    fields: &crate::logging::RequestFields<'_>,
) {
    let mut digits = [0u8; 20];
    message.own("[");
    message.time(time, 3);
    message.own_quoted("] \"", "] \\\"");
    message.own(fields.method);
    message.own(" ");
    message.text(fields.url);
    message.own(" HTTP/");
    message.own(fields.http_version);
    message.own_quoted("\" ", "\\\" ");
    message.own(crate::logging::digits(fields.status.into(), &mut digits));
    message.own(" ");
    message.own(crate::logging::digits(
        fields.content_length.unwrap_or(0),
        &mut digits,
    ));
    message.own_quoted(" \"", " \\\"");
    message.text(fields.referrer.unwrap_or("-"));
    message.own_quoted("\" \"", "\\\" \\\"");
    message.text(fields.user_agent.unwrap_or("-"));
    message.own_quoted("\"", "\\\"");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn within_answers_at_once_without_a_timer_and_ends_a_wait_at_its_deadline() {
        let waker = std::task::Waker::noop();
        let mut cx = Context::from_waker(waker);
        let deadline = Instant::now() + std::time::Duration::from_secs(60);
        let mut ready = std::pin::pin!(Within::new(Some(deadline), std::future::ready(7)));
        assert_eq!(ready.as_mut().poll(&mut cx), Poll::Ready(Some(7)));
        assert!(ready.timer.is_none());

        let mut waiting = std::pin::pin!(Within::new(Some(deadline), std::future::pending::<()>()));
        assert_eq!(waiting.as_mut().poll(&mut cx), Poll::Pending);
        assert!(waiting.timer.is_some());

        let started = Instant::now();
        let limit = std::time::Duration::from_millis(100);
        let ended = Within::new(Some(started + limit), std::future::pending::<()>()).await;
        assert_eq!(ended, None);
        assert!(started.elapsed() >= limit);

        let slow = async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            "done"
        };
        assert_eq!(
            Within::new(Some(Instant::now() + limit), slow).await,
            Some("done")
        );
        let unbounded = Within::new(None, async {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            1
        });
        assert_eq!(unbounded.await, Some(1));

        // A future that spends the task's whole budget on every poll still times out (tokio's
        // own timeout, outside, is the test's limit).
        let spender = async {
            loop {
                tokio::task::coop::consume_budget().await;
            }
        };
        let bounded = Within::new(Some(Instant::now() + limit), spender);
        let outcome = tokio::time::timeout(std::time::Duration::from_secs(10), bounded).await;
        assert_eq!(outcome, Ok(None));
    }

    #[test]
    fn plugin_routers_are_found_by_their_id_and_no_other() {
        let ids: Vec<&'static str> = (0..200)
            .map(|i| &*Box::leak(format!("plugin-{i}").into_boxed_str()))
            .collect();
        let mut routers = PluginRouters::default();
        for id in &ids {
            routers.insert(id, axum::Router::new());
        }
        assert_eq!(routers.len(), 200);
        for id in &ids {
            assert!(routers.contains_key(id), "{id}");
        }
        for missing in ["", "plugin-", "plugin-200", "Plugin-1", "plugin-1 "] {
            assert!(!routers.contains_key(missing), "{missing}");
        }
    }

    #[test]
    fn the_logged_length_is_the_bodys_else_the_headers() {
        let length = |response: Response| content_length(&response);
        // A JSON answer: its body and its header agree.
        assert_eq!(
            length(json_response(StatusCode::OK, &b"[1,2]"[..])),
            Some(5)
        );
        // An error body, written without the header.
        assert_eq!(length(Response::new(Body::from("not found"))), Some(9));
        // A `HEAD` answer: an empty body, the header of the `GET`.
        let mut head = Response::new(Body::empty());
        head.headers_mut()
            .insert(CONTENT_LENGTH, HeaderValue::from_static("42"));
        assert_eq!(length(head), Some(42));
        assert_eq!(length(Response::new(Body::empty())), Some(0));
        // Node's server sends no length with a `304` or a `204`.
        let mut unmodified = Response::new(Body::empty());
        *unmodified.status_mut() = StatusCode::NOT_MODIFIED;
        assert_eq!(length(unmodified), None);
        // A stream of unknown length (its message says `0`, as Backstage's
        // `contentLength ?? 0`).
        let stream = futures_util::stream::iter([Ok::<_, Infallible>("a")]);
        assert_eq!(length(Response::new(Body::from_stream(stream))), None);
    }

    #[tokio::test]
    async fn a_compressed_answer_has_no_length_to_log() {
        static BIG: [u8; 4096] = [b'7'; 4096];
        let big = &BIG;
        let plain = json_response(StatusCode::OK, &big[..]);
        assert_eq!(content_length(&plain), Some(4096));
        let compressed = super::super::compression::compress(
            Some(HeaderValue::from_static("gzip")),
            json_response(StatusCode::OK, &big[..]),
        )
        .await;
        assert_eq!(
            compressed.headers().get(http::header::CONTENT_ENCODING),
            Some(&HeaderValue::from_static("gzip"))
        );
        assert_eq!(content_length(&compressed), None);
    }

    #[test]
    fn credentials_in_query_strings_stay_out_of_the_log() {
        assert_eq!(
            redacted(&"/api/x/items?a=1".parse().unwrap()),
            "/api/x/items?a=1"
        );
        assert_eq!(
            redacted(&"/api/x?token=abc&page=2&Access_Token=def".parse().unwrap()),
            "/api/x?token=[REDACTED]&page=2&Access_Token=[REDACTED]"
        );
        assert_eq!(redacted(&"/api/x?code".parse().unwrap()), "/api/x?code");
        assert_eq!(redacted(&"/api/x".parse().unwrap()), "/api/x");
        assert_eq!(redacted(&"/api/x?".parse().unwrap()), "/api/x?");
    }

    #[test]
    fn error_body_has_backstage_shape() {
        let mut response = StatusCode::NOT_FOUND.into_response();
        let report = ErrorReport {
            name: "NotFoundError",
            message: "no item 7".into(),
            fields: None,
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
            r#"{"error":{"name":"NotFoundError","message":"no item 7"},"request":{"method":"GET","url":"/items/7?a=b"},"response":{"statusCode":404}}"#
        );
    }

    #[test]
    fn error_urls_are_as_the_plugin_router_sees_them() {
        let url = |uri: &'static str| url_as_routed(&Uri::from_static(uri)).into_owned();
        assert_eq!(url("/api/x/items/7?a=b"), "/items/7?a=b");
        assert_eq!(url("/api/x"), "/");
        assert_eq!(url("/api/x?a=b"), "/?a=b");
        assert_eq!(url("/api/x/"), "/");
        assert_eq!(url("/api/x//items"), "/items");
        assert_eq!(
            url("/.backstage/health/v1/readiness"),
            "/.backstage/health/v1/readiness"
        );
    }
}
