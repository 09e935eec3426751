//! The HTTP work every built-in reader shares: one client, the size limit and timeout of
//! `backend.reading`, redirects followed by hand (each hop checked, a token sent only to the
//! origin it was configured for), conditional headers, and Backstage's errors for 304 and 404.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::StreamExt as _;
use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use url::Url;

use crate::config::Secret;
use crate::error::{Error, Result};

use super::response::{ReadUrlOptions, ReadUrlResponse};

/// Redirects followed at most, as Backstage's fetch reader.
const MAX_REDIRECTS: usize = 5;

/// The redirects followed, as Backstage's fetch reader follows them (a 303 and the rest are
/// answers, not redirects).
const REDIRECTS: [u16; 4] = [301, 302, 307, 308];

/// A bearer token and the one origin it may be sent to.
#[derive(Clone)]
pub(crate) struct Token {
    pub(crate) secret: Secret<String>,
    pub(crate) origin: url::Origin,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[secret]")
    }
}

/// What decides whether a hop of a redirect chain may be followed.
pub(crate) type HopCheck<'a> = &'a (dyn Fn(&Url) -> Result<()> + Send + Sync);

/// The shared HTTP client and limits.
#[derive(Clone, Debug)]
pub(crate) struct Transport {
    client: reqwest::Client,
    pub(crate) max_size: u64,
    timeout: Duration,
}

impl Transport {
    pub(crate) fn new(max_size: u64, timeout: Duration) -> Result<Transport> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("backstage-rs/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| Error::internal(format!("the URL reader's HTTP client: {e}")))?;
        Ok(Transport {
            client,
            max_size,
            timeout,
        })
    }

    /// `GET url`, following redirects: each hop passes `check` before it is requested, and
    /// `token` goes only to hops on its origin.
    pub(crate) async fn get(
        &self,
        url: Url,
        headers: HeaderMap,
        token: Option<&Token>,
        check: HopCheck<'_>,
    ) -> Result<reqwest::Response> {
        let mut current = url;
        for _ in 0..=MAX_REDIRECTS {
            check(&current)?;
            let mut request = self
                .client
                .get(current.clone())
                .headers(headers.clone())
                .timeout(self.timeout);
            if let Some(token) = token.filter(|t| t.origin == current.origin()) {
                let mut value = HeaderValue::from_str(&format!("Bearer {}", token.secret.expose()))
                    .map_err(|_| {
                        Error::input("an integration token holds characters a header cannot")
                    })?;
                value.set_sensitive(true);
                request = request.header(header::AUTHORIZATION, value);
            }
            let response = request
                .send()
                .await
                .map_err(|e| self.failure(&current, &e))?;
            let status = response.status();
            let location = response
                .headers()
                .get(header::LOCATION)
                .and_then(|l| l.to_str().ok());
            match location {
                Some(location) if REDIRECTS.contains(&status.as_u16()) => {
                    current = current.join(location).map_err(|_| {
                        Error::internal(format!(
                            "{current} redirected to '{location}', which is not a URL"
                        ))
                    })?;
                }
                _ => return Ok(response),
            }
        }
        Err(Error::internal(format!(
            "too many redirects (more than {MAX_REDIRECTS}) when reading {current}"
        )))
    }

    /// `GET url` on an integration's API: any http(s) hop is followed, `token` goes to its
    /// origin only, and an answer other than a success is the error [`status_error`] makes of
    /// `failure`'s message.
    pub(crate) async fn get_ok(
        &self,
        url: &Url,
        headers: HeaderMap,
        token: Option<&Token>,
        failure: impl FnOnce(&reqwest::Response) -> String,
    ) -> Result<reqwest::Response> {
        let response = self.get(url.clone(), headers, token, &web_hop).await?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        Err(status_error(status, failure(&response)))
    }

    /// The error for a request that got no answer: timeouts say so.
    fn failure(&self, url: &Url, error: &reqwest::Error) -> Error {
        if error.is_timeout() {
            return Error::internal(format!(
                "Unable to read {url}, no answer within {}s (backend.reading.timeout)",
                self.timeout.as_secs_f32()
            ));
        }
        Error::internal(format!("Unable to read {url}, {}", describe(error)))
    }

    /// The body of `response` as a [`ReadUrlResponse`], limited to `max_size`.
    pub(crate) fn read_url_response(
        &self,
        url: &Url,
        response: reqwest::Response,
    ) -> ReadUrlResponse {
        let etag = response
            .headers()
            .get(header::ETAG)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let last_modified = response
            .headers()
            .get(header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok());
        let body = self.limited(url, response);
        let mut out = ReadUrlResponse::from_stream(body).with_last_modified(last_modified);
        if let Some(etag) = etag {
            out = out.with_etag(etag);
        }
        out
    }

    /// The whole body of `response`, at most `max_size` bytes.
    pub(crate) async fn bytes(&self, url: &Url, response: reqwest::Response) -> Result<Bytes> {
        let mut body = self.limited(url, response);
        let mut out = BytesMut::new();
        while let Some(chunk) = body.next().await {
            out.extend_from_slice(&chunk?);
        }
        Ok(out.freeze())
    }

    /// A body as JSON.
    pub(crate) async fn json<T: serde::de::DeserializeOwned>(
        &self,
        url: &Url,
        response: reqwest::Response,
    ) -> Result<T> {
        let body = self.bytes(url, response).await?;
        serde_json::from_slice(&body)
            .map_err(|e| Error::internal(format!("{url} did not answer the expected JSON: {e}")))
    }

    fn limited(
        &self,
        url: &Url,
        response: reqwest::Response,
    ) -> futures_util::stream::BoxStream<'static, Result<Bytes>> {
        let max = self.max_size;
        let too_large = Arc::<str>::from(format!(
            "{url} is larger than backend.reading.maxSize ({max} bytes)"
        ));
        if response.content_length().is_some_and(|n| n > max) {
            let error = Error::internal(too_large.to_string());
            return futures_util::stream::once(std::future::ready(Err(error))).boxed();
        }
        let failed = Arc::<str>::from(format!("Unable to read {url}"));
        let mut seen = 0u64;
        let mut done = false;
        response
            .bytes_stream()
            .map(move |chunk| {
                let chunk = chunk.map_err(|e| {
                    let why = if e.is_timeout() {
                        "no complete answer within backend.reading.timeout".to_owned()
                    } else {
                        describe(&e)
                    };
                    Error::internal(format!("{failed}, {why}"))
                })?;
                seen += chunk.len() as u64;
                if seen > max {
                    return Err(Error::internal(too_large.to_string()));
                }
                Ok(chunk)
            })
            .take_while(move |item| {
                let go = !done;
                done = done || item.is_err();
                std::future::ready(go)
            })
            .boxed()
    }
}

/// What went wrong with a request, from reqwest's causes (its own message repeats the URL,
/// which the caller names already).
fn describe(error: &reqwest::Error) -> String {
    let mut causes = Vec::new();
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        causes.push(cause.to_string());
        source = cause.source();
    }
    if causes.is_empty() {
        return error.to_string();
    }
    causes.join(": ")
}

/// `If-None-Match` and `If-Modified-Since` from `options`.
pub(crate) fn conditional_headers(options: &ReadUrlOptions) -> HeaderMap {
    let mut headers = HeaderMap::new();
    if let Some(etag) = options
        .etag
        .as_deref()
        .and_then(|e| HeaderValue::from_str(e).ok())
    {
        headers.insert(header::IF_NONE_MATCH, etag);
    }
    if let Some(time) = options.last_modified_after {
        let text = httpdate::fmt_http_date(time);
        if let Ok(value) = HeaderValue::from_str(&text) {
            headers.insert(header::IF_MODIFIED_SINCE, value);
        }
    }
    headers
}

/// The error for an answer that is not a success: 304 is `NotModifiedError`, 404
/// `NotFoundError`, anything else an internal error; `message` says what was read.
pub(crate) fn status_error(status: StatusCode, message: String) -> Error {
    match status {
        StatusCode::NOT_MODIFIED => Error::not_modified(message),
        StatusCode::NOT_FOUND => Error::not_found(message),
        _ => Error::internal(message),
    }
}

/// `404 Not Found`, as Backstage's messages write a status.
pub(crate) fn status_text(status: StatusCode) -> String {
    format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or_default()
    )
}

/// Any `http(s)` hop: what the integrations' readers follow (their token stays on its own
/// origin; [`Transport::get`] drops it elsewhere).
pub(crate) fn web_hop(url: &Url) -> Result<()> {
    if matches!(url.scheme(), "http" | "https") {
        return Ok(());
    }
    Err(Error::not_allowed(format!(
        "a redirect to {url} was refused: only http(s) is followed"
    )))
}
