//! CORS as Backstage configures the `cors` middleware, from `backend.cors`.
//!
//! Written here rather than taken from tower-http because Backstage's answers differ from
//! tower-http's `CorsLayer` in ways a browser or a proxy sees: a request from an origin that is
//! not allowed (or with no `Origin`) gets no CORS header at all and an `OPTIONS` from it goes
//! on to the plugin; an allowed preflight is `204` (`optionsSuccessStatus`), and `Vary` names
//! only what the answer depended on.

use axum::body::Body;
use axum::extract::Request;
use axum::http::header::{self, HeaderMap, HeaderName, HeaderValue};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;

use crate::config::RootConfig;
use crate::error::{Error, Result};

/// `backend.cors`, read once.
pub(crate) struct Cors {
    origin: Origin,
    methods: HeaderValue,
    /// `None`: the preflight's `Access-Control-Request-Headers` are sent back.
    allowed_headers: Option<HeaderValue>,
    exposed_headers: Option<HeaderValue>,
    credentials: bool,
    max_age: Option<HeaderValue>,
    preflight_continue: bool,
    options_success_status: StatusCode,
}

/// Which origins may call.
enum Origin {
    /// No `origin` key: every caller, answered `*`.
    Any,
    /// Patterns in minimatch's syntax (`*` within a path segment, `{a,b}`), case-insensitive.
    Patterns(globset::GlobSet),
}

/// What CORS does with a request.
pub(crate) enum Answer {
    /// Not a CORS request this backend answers: the request goes on, its answer unchanged.
    None,
    /// A preflight, answered here.
    Preflight(Response),
    /// A request from an allowed origin: these headers go on its answer.
    Simple(Vec<(HeaderName, HeaderValue)>, Option<&'static str>),
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct CorsSection {
    origin: Option<OneOrMany>,
    methods: Option<OneOrMany>,
    allowed_headers: Option<OneOrMany>,
    exposed_headers: Option<OneOrMany>,
    credentials: Option<bool>,
    max_age: Option<u64>,
    preflight_continue: Option<bool>,
    options_success_status: Option<u16>,
}

/// A string, or a list of strings (a string is one entry, as Backstage reads it).
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        }
    }
}

impl Cors {
    /// `backend.cors`; `None` when absent (no CORS headers, as Backstage).
    pub(crate) fn from_config(config: &RootConfig) -> Result<Option<Cors>> {
        let Some(section) = config.get_optional::<CorsSection>("backend.cors")? else {
            return Ok(None);
        };
        let origin = match section.origin {
            None => Origin::Any,
            Some(patterns) => Origin::Patterns(origin_patterns(patterns.into_vec())?),
        };
        let joined = |key: &str, values: Option<OneOrMany>| -> Result<Option<HeaderValue>> {
            values
                .map(|values| {
                    HeaderValue::from_str(&values.into_vec().join(",")).map_err(|_| {
                        Error::input(format!("backend.cors.{key} makes an invalid header value"))
                    })
                })
                .transpose()
        };
        let status = section.options_success_status.unwrap_or(204);
        Ok(Some(Cors {
            origin,
            methods: joined("methods", section.methods)?
                .unwrap_or(HeaderValue::from_static("GET,HEAD,PUT,PATCH,POST,DELETE")),
            allowed_headers: joined("allowedHeaders", section.allowed_headers)?,
            exposed_headers: joined("exposedHeaders", section.exposed_headers)?
                .filter(|v| !v.is_empty()),
            credentials: section.credentials.unwrap_or(false),
            max_age: section.max_age.map(HeaderValue::from),
            preflight_continue: section.preflight_continue.unwrap_or(false),
            options_success_status: StatusCode::from_u16(status).map_err(|_| {
                Error::input(format!(
                    "backend.cors.optionsSuccessStatus: {status} is not an HTTP status"
                ))
            })?,
        }))
    }

    /// What CORS does with `request`: nothing for an origin that is not allowed, the answer to
    /// a preflight, or the headers for the answer of an allowed request.
    pub(crate) fn answer(&self, request: &Request) -> Answer {
        let origin = request.headers().get(header::ORIGIN);
        let (allow_origin, vary) = match (&self.origin, origin) {
            (Origin::Any, _) => (HeaderValue::from_static("*"), None),
            (Origin::Patterns(patterns), Some(origin))
                if origin.to_str().is_ok_and(|o| patterns.is_match(o)) =>
            {
                (origin.clone(), Some("Origin"))
            }
            _ => return Answer::None,
        };
        let mut headers = vec![(header::ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin)];
        if self.credentials {
            headers.push((
                header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            ));
        }
        if request.method() != Method::OPTIONS {
            if let Some(exposed) = &self.exposed_headers {
                headers.push((header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed.clone()));
            }
            return Answer::Simple(headers, vary);
        }
        if self.preflight_continue {
            // The plugin answers the preflight; these headers go on its answer.
            return Answer::Simple(self.preflight_headers(request, headers), vary);
        }
        let mut response = Response::new(Body::empty());
        *response.status_mut() = self.options_success_status;
        let mut varies = Vec::new();
        varies.extend(vary);
        if self.allowed_headers.is_none() {
            varies.push("Access-Control-Request-Headers");
        }
        let response_headers = response.headers_mut();
        for (name, value) in self.preflight_headers(request, headers) {
            response_headers.insert(name, value);
        }
        for token in varies {
            append_vary(response_headers, token);
        }
        response_headers.insert(header::CONTENT_LENGTH, HeaderValue::from_static("0"));
        Answer::Preflight(response)
    }

    fn preflight_headers(
        &self,
        request: &Request,
        mut headers: Vec<(HeaderName, HeaderValue)>,
    ) -> Vec<(HeaderName, HeaderValue)> {
        headers.push((header::ACCESS_CONTROL_ALLOW_METHODS, self.methods.clone()));
        let allowed = match &self.allowed_headers {
            Some(allowed) => Some(allowed.clone()),
            None => request
                .headers()
                .get(header::ACCESS_CONTROL_REQUEST_HEADERS)
                .cloned(),
        };
        if let Some(allowed) = allowed.filter(|v| !v.is_empty()) {
            headers.push((header::ACCESS_CONTROL_ALLOW_HEADERS, allowed));
        }
        if let Some(max_age) = &self.max_age {
            headers.push((header::ACCESS_CONTROL_MAX_AGE, max_age.clone()));
        }
        if let Some(exposed) = &self.exposed_headers {
            headers.push((header::ACCESS_CONTROL_EXPOSE_HEADERS, exposed.clone()));
        }
        headers
    }
}

/// Puts the CORS headers of an allowed request on its answer.
pub(crate) fn apply(
    response: &mut Response,
    headers: Vec<(HeaderName, HeaderValue)>,
    vary: Option<&'static str>,
) {
    let response_headers = response.headers_mut();
    for (name, value) in headers {
        response_headers.insert(name, value);
    }
    if let Some(vary) = vary {
        // The `cors` middleware runs before the route: its token comes before the answer's.
        add_vary(response_headers, vary, Place::First);
    }
}

/// Where a token goes in a `Vary` that has others.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    First,
    Last,
}

/// Adds `token` at the end of `Vary` unless it is there already (or `Vary` is `*`), in one
/// header as the `vary` package writes it: `Origin, Accept-Encoding`.
pub(crate) fn append_vary(headers: &mut HeaderMap, token: &'static str) {
    add_vary(headers, token, Place::Last);
}

fn add_vary(headers: &mut HeaderMap, token: &'static str, place: Place) {
    let mut values = headers.get_all(header::VARY).iter();
    match (values.next(), values.next()) {
        // The common cases, without allocating: no `Vary` yet, or this token alone.
        (None, _) => {
            headers.insert(header::VARY, HeaderValue::from_static(token));
            return;
        }
        (Some(only), None) if only.as_bytes().eq_ignore_ascii_case(token.as_bytes()) => return,
        _ => {}
    }
    let existing: Vec<String> = headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().to_owned())
        .filter(|t| !t.is_empty())
        .collect();
    if existing
        .iter()
        .any(|t| t == "*" || t.eq_ignore_ascii_case(token))
    {
        return;
    }
    let value = match (existing.is_empty(), place) {
        (true, _) => token.to_owned(),
        (false, Place::Last) => format!("{}, {token}", existing.join(", ")),
        (false, Place::First) => format!("{token}, {}", existing.join(", ")),
    };
    if let Ok(value) = HeaderValue::from_str(&value) {
        headers.insert(header::VARY, value);
    }
}

/// The origin patterns, as Backstage matches them (minimatch, case-insensitive, no globstar).
fn origin_patterns(patterns: Vec<String>) -> Result<globset::GlobSet> {
    let mut builder = globset::GlobSetBuilder::new();
    for origin in &patterns {
        let glob = globset::GlobBuilder::new(origin)
            .literal_separator(true)
            .case_insensitive(true)
            .build()
            .map_err(|e| {
                Error::input(format!(
                    "backend.cors.origin: '{origin}' is not a valid pattern: {e}"
                ))
            })?;
        builder.add(glob);
    }
    builder
        .build()
        .map_err(|e| Error::input(format!("backend.cors.origin: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cors(section: serde_json::Value) -> Cors {
        Cors::from_config(&RootConfig::from_value(
            json!({ "backend": { "cors": section } }),
        ))
        .unwrap()
        .unwrap()
    }

    fn request(method: &str, origin: Option<&str>) -> Request {
        let mut request = Request::builder().method(method).uri("/api/x/items");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request
            .header(header::ACCESS_CONTROL_REQUEST_HEADERS, "x-custom")
            .body(Body::empty())
            .unwrap()
    }

    #[test]
    fn origins_match_within_a_segment_and_ignore_case() {
        let cors = cors(json!({ "origin": ["https://*.example.com", "http://localhost:3000"] }));
        let allowed = |origin| {
            matches!(
                cors.answer(&request("GET", Some(origin))),
                Answer::Simple(..)
            )
        };
        assert!(allowed("https://app.example.com"));
        assert!(allowed("HTTPS://APP.EXAMPLE.COM"));
        assert!(allowed("http://localhost:3000"));
        assert!(!allowed("https://evil.com/x.example.com"));
        assert!(!allowed("http://localhost:3001"));
        assert!(matches!(cors.answer(&request("GET", None)), Answer::None));
        assert!(matches!(
            cors.answer(&request("OPTIONS", None)),
            Answer::None
        ));
    }

    #[test]
    fn a_string_is_one_pattern() {
        let cors = cors(json!({ "origin": "http://a.example,http://b.example" }));
        assert!(matches!(
            cors.answer(&request("GET", Some("http://a.example"))),
            Answer::None
        ));
    }

    #[test]
    fn preflights_answer_204_with_what_was_asked() {
        let cors =
            cors(json!({ "origin": "http://a.example", "credentials": true, "maxAge": 600 }));
        let Answer::Preflight(response) =
            cors.answer(&request("OPTIONS", Some("http://a.example")))
        else {
            panic!("expected a preflight answer");
        };
        assert_eq!(response.status(), StatusCode::NO_CONTENT);
        let h = response.headers();
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_ORIGIN], "http://a.example");
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(
            h[header::ACCESS_CONTROL_ALLOW_METHODS],
            "GET,HEAD,PUT,PATCH,POST,DELETE"
        );
        assert_eq!(h[header::ACCESS_CONTROL_ALLOW_HEADERS], "x-custom");
        assert_eq!(h[header::ACCESS_CONTROL_MAX_AGE], "600");
        assert_eq!(h[header::VARY], "Origin, Access-Control-Request-Headers");
    }

    #[test]
    fn without_origins_every_caller_is_answered_with_a_star() {
        let cors = cors(json!({ "methods": ["GET"] }));
        let Answer::Simple(headers, vary) = cors.answer(&request("GET", None)) else {
            panic!("expected CORS headers");
        };
        assert_eq!(
            headers,
            vec![(
                header::ACCESS_CONTROL_ALLOW_ORIGIN,
                HeaderValue::from_static("*")
            )]
        );
        assert_eq!(vary, None);
    }

    #[test]
    fn vary_is_one_header_without_repeats() {
        let mut headers = HeaderMap::new();
        append_vary(&mut headers, "Origin");
        append_vary(&mut headers, "Accept-Encoding");
        append_vary(&mut headers, "origin");
        append_vary(&mut headers, "accept-encoding");
        assert_eq!(headers[header::VARY], "Origin, Accept-Encoding");
        headers.insert(header::VARY, HeaderValue::from_static("*"));
        append_vary(&mut headers, "Origin");
        assert_eq!(headers[header::VARY], "*");
    }

    #[test]
    fn the_cors_token_goes_before_the_answers_own() {
        let mut response = Response::new(axum::body::Body::empty());
        response
            .headers_mut()
            .insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
        apply(&mut response, Vec::new(), Some("Origin"));
        assert_eq!(response.headers()[header::VARY], "Origin, Accept-Encoding");
        apply(&mut response, Vec::new(), Some("Origin"));
        assert_eq!(response.headers()[header::VARY], "Origin, Accept-Encoding");
        let mut fresh = Response::new(axum::body::Body::empty());
        apply(&mut fresh, Vec::new(), Some("Origin"));
        assert_eq!(fresh.headers()[header::VARY], "Origin");
    }

    #[test]
    fn bad_values_name_the_key() {
        let config = RootConfig::from_value(json!({ "backend": { "cors": { "maxAge": "x" } } }));
        let message = Cors::from_config(&config)
            .err()
            .unwrap()
            .message()
            .to_owned();
        assert!(message.contains("backend.cors.maxAge"), "{message}");
        let config = RootConfig::from_value(json!({ "backend": { "cors": { "origin": "[" } } }));
        let message = Cors::from_config(&config)
            .err()
            .unwrap()
            .message()
            .to_owned();
        assert!(message.contains("backend.cors.origin"), "{message}");
    }
}
