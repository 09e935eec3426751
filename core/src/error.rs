//! One error type with Backstage's error names, and its wire form.
//!
//! Every failure a plugin reports, and every failure the framework itself reports, is a
//! [`Error`]. On the wire it becomes Backstage's error body:
//!
//! ```json
//! {"error":{"name":"NotFoundError","message":"no item 7"},
//!  "request":{"method":"GET","url":"/items/7"},
//!  "response":{"statusCode":404}}
//! ```
//!
//! The status code follows Backstage's table (see [`ErrorKind`]). An [`Error`] converted with `?`
//! from any other error type is an *internal* error: the caller sees only
//! `An internal error occurred logId=<id>` and the cause is logged with that id, as Backstage's
//! internal error filter does, so database messages and the like never leave the server.

use std::borrow::Cow;
use std::fmt;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

/// `Result` with [`Error`] as its error type; what plugin code returns.
///
/// ```
/// use backstage::{Error, Result};
///
/// fn parse(raw: &str) -> Result<u32> {
///     raw.parse().map_err(|_| Error::input(format!("'{raw}' is not a number")))
/// }
/// assert!(parse("7").is_ok());
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The kinds of error Backstage knows, each with its name and HTTP status.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// `NotModifiedError`, 304.
    NotModified,
    /// `InputError`, 400: the request is malformed or invalid.
    Input,
    /// `SyntaxError`, 400: the request body is not JSON, as Express's JSON parser reports it.
    Syntax,
    /// `AuthenticationError`, 401: credentials are missing or invalid.
    Authentication,
    /// `NotAllowedError`, 403: the caller may not do this.
    NotAllowed,
    /// `NotFoundError`, 404.
    NotFound,
    /// `ConflictError`, 409.
    Conflict,
    /// `PayloadTooLargeError`, 413: the request body is over the limit.
    PayloadTooLarge,
    /// `UnsupportedMediaTypeError`, 415: a request body in an encoding or charset the JSON
    /// parser does not read.
    UnsupportedMediaType,
    /// `NotImplementedError`, 501.
    NotImplemented,
    /// `ServiceUnavailableError`, 503.
    ServiceUnavailable,
    /// `Error`, 500: anything else. Its message is replaced by a log id on the wire.
    Internal,
}

impl ErrorKind {
    /// Backstage's name for this kind, as it appears in `error.name`.
    ///
    /// ```
    /// assert_eq!(backstage::ErrorKind::NotFound.name(), "NotFoundError");
    /// ```
    pub const fn name(self) -> &'static str {
        match self {
            ErrorKind::NotModified => "NotModifiedError",
            ErrorKind::Input => "InputError",
            ErrorKind::Syntax => "SyntaxError",
            ErrorKind::Authentication => "AuthenticationError",
            ErrorKind::NotAllowed => "NotAllowedError",
            ErrorKind::NotFound => "NotFoundError",
            ErrorKind::Conflict => "ConflictError",
            ErrorKind::PayloadTooLarge => "PayloadTooLargeError",
            ErrorKind::UnsupportedMediaType => "UnsupportedMediaTypeError",
            ErrorKind::NotImplemented => "NotImplementedError",
            ErrorKind::ServiceUnavailable => "ServiceUnavailableError",
            ErrorKind::Internal => "Error",
        }
    }

    /// The kind Backstage calls `name` (`"NotFoundError"`), as an error body names it.
    ///
    /// ```
    /// use backstage::ErrorKind;
    /// assert_eq!(ErrorKind::from_name("NotFoundError"), Some(ErrorKind::NotFound));
    /// assert_eq!(ErrorKind::from_name("TypeError"), None);
    /// ```
    pub fn from_name(name: &str) -> Option<ErrorKind> {
        const KINDS: &[ErrorKind] = &[
            ErrorKind::NotModified,
            ErrorKind::Input,
            ErrorKind::Syntax,
            ErrorKind::Authentication,
            ErrorKind::NotAllowed,
            ErrorKind::NotFound,
            ErrorKind::Conflict,
            ErrorKind::PayloadTooLarge,
            ErrorKind::UnsupportedMediaType,
            ErrorKind::NotImplemented,
            ErrorKind::ServiceUnavailable,
        ];
        KINDS.iter().copied().find(|kind| kind.name() == name)
    }

    /// The kind Backstage answers with `status`, for an answer whose body names none.
    fn from_status(status: u16) -> ErrorKind {
        match status {
            304 => ErrorKind::NotModified,
            401 => ErrorKind::Authentication,
            403 => ErrorKind::NotAllowed,
            404 => ErrorKind::NotFound,
            409 => ErrorKind::Conflict,
            413 => ErrorKind::PayloadTooLarge,
            415 => ErrorKind::UnsupportedMediaType,
            501 => ErrorKind::NotImplemented,
            503 => ErrorKind::ServiceUnavailable,
            400..=499 => ErrorKind::Input,
            _ => ErrorKind::Internal,
        }
    }

    /// The HTTP status Backstage answers this kind with.
    ///
    /// ```
    /// assert_eq!(backstage::ErrorKind::Conflict.status().as_u16(), 409);
    /// ```
    pub const fn status(self) -> StatusCode {
        match self {
            ErrorKind::NotModified => StatusCode::NOT_MODIFIED,
            ErrorKind::Input | ErrorKind::Syntax => StatusCode::BAD_REQUEST,
            ErrorKind::Authentication => StatusCode::UNAUTHORIZED,
            ErrorKind::NotAllowed => StatusCode::FORBIDDEN,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Conflict => StatusCode::CONFLICT,
            ErrorKind::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorKind::NotImplemented => StatusCode::NOT_IMPLEMENTED,
            ErrorKind::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// A failure with one of Backstage's error names and a message for the caller.
///
/// Build one with the constructor named after its kind, or convert any
/// `std::error::Error` with `?` (that makes an internal error whose message stays in the log):
///
/// ```
/// use backstage::{Error, ErrorKind};
///
/// let e = Error::not_found("no item 7");
/// assert_eq!(e.kind(), ErrorKind::NotFound);
/// assert_eq!(e.message(), "no item 7");
///
/// fn read() -> backstage::Result<String> {
///     Ok(std::fs::read_to_string("/definitely/not/here")?)
/// }
/// assert_eq!(read().unwrap_err().kind(), ErrorKind::Internal);
/// ```
pub struct Error {
    kind: ErrorKind,
    message: Cow<'static, str>,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
    /// More members of the body's `error` object, as the errors of Express's body parser carry
    /// (`type`, `limit`, ...).
    fields: Option<Box<Fields>>,
}

/// Members of an error body's `error` object beyond `name` and `message`, in order.
pub(crate) type Fields = Vec<(&'static str, serde_json::Value)>;

impl Error {
    /// An error of `kind` with `message`.
    pub fn new(kind: ErrorKind, message: impl Into<Cow<'static, str>>) -> Self {
        Error {
            kind,
            message: message.into(),
            source: None,
            fields: None,
        }
    }

    /// `InputError` (400).
    pub fn input(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Input, message)
    }

    /// `AuthenticationError` (401).
    pub fn authentication(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Authentication, message)
    }

    /// `NotAllowedError` (403).
    pub fn not_allowed(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotAllowed, message)
    }

    /// `NotFoundError` (404).
    pub fn not_found(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    /// `ConflictError` (409).
    pub fn conflict(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Conflict, message)
    }

    /// `NotModifiedError` (304).
    pub fn not_modified(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotModified, message)
    }

    /// `NotImplementedError` (501).
    pub fn not_implemented(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::NotImplemented, message)
    }

    /// `ServiceUnavailableError` (503).
    pub fn service_unavailable(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::ServiceUnavailable, message)
    }

    /// An internal error (500). The message is logged, never sent: the caller sees a log id.
    pub fn internal(message: impl Into<Cow<'static, str>>) -> Self {
        Self::new(ErrorKind::Internal, message)
    }

    /// Attaches the error that caused this one; it is logged with the error, never sent.
    ///
    /// ```
    /// let io = std::io::Error::other("disk on fire");
    /// let e = backstage::Error::internal("could not save").with_source(io);
    /// assert_eq!(e.to_string(), "could not save: disk on fire");
    /// ```
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The error another Backstage service answered with: the kind its body names (by status
    /// when the body names none Backstage knows), and its message. A call to another plugin
    /// through [`crate::PluginClient`] turns a failed answer into this.
    ///
    /// ```no_run
    /// # async fn example(response: reqwest::Response) {
    /// if !response.status().is_success() {
    ///     let error = backstage::Error::from_response(response).await;
    ///     eprintln!("{}: {}", error.kind().name(), error.message());
    /// }
    /// # }
    /// ```
    pub async fn from_response(response: reqwest::Response) -> Error {
        let status = response.status().as_u16();
        let url = response.url().to_string();
        let body = response.bytes().await.unwrap_or_default();
        Self::from_body(status, &body, &url)
    }

    /// [`Error::from_response`] on a status and body already read, from `url`.
    pub(crate) fn from_body(status: u16, body: &[u8], url: &str) -> Error {
        #[derive(serde::Deserialize)]
        struct Body {
            error: Part,
        }
        #[derive(serde::Deserialize)]
        struct Part {
            #[serde(default)]
            name: String,
            #[serde(default)]
            message: String,
        }
        match serde_json::from_slice::<Body>(body) {
            Ok(Body { error }) => {
                let kind = ErrorKind::from_name(&error.name)
                    .unwrap_or_else(|| ErrorKind::from_status(status));
                Error::new(kind, error.message)
            }
            Err(_) => Error::new(
                ErrorKind::from_status(status),
                format!("{url} answered {status}"),
            ),
        }
    }

    /// Adds members to the body's `error` object, after `name` and `message`.
    pub(crate) fn with_fields(mut self, fields: Fields) -> Self {
        self.fields = Some(Box::new(fields));
        self
    }

    /// This error's kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message for the caller (for internal errors: the message that is logged).
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The underlying cause, if any.
    pub fn source(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.source.as_deref()
    }

    /// The HTTP status this error is answered with.
    pub fn status(&self) -> StatusCode {
        self.kind.status()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {self}", self.kind.name())
    }
}

impl<E> From<E> for Error
where
    E: std::error::Error + Send + Sync + 'static,
{
    /// An internal error, except for database errors that say what went wrong for the
    /// caller: an unreachable or overloaded database is 503 `ServiceUnavailableError`, a value
    /// the database refuses (too long, a NUL character, out of range) is 400 `InputError`.
    /// The database's own message is logged, never sent.
    fn from(source: E) -> Self {
        let any: &dyn std::any::Any = &source;
        let (kind, message) = match any.downcast_ref::<sqlx::Error>().and_then(database_kind) {
            Some((kind, message)) => (kind, Cow::Borrowed(message)),
            None => (ErrorKind::Internal, Cow::Owned(source.to_string())),
        };
        Error {
            kind,
            message,
            source: Some(Box::new(source)),
            fields: None,
        }
    }
}

/// What a database error means for the caller, when it means more than "internal".
fn database_kind(error: &sqlx::Error) -> Option<(ErrorKind, &'static str)> {
    const UNAVAILABLE: (ErrorKind, &str) =
        (ErrorKind::ServiceUnavailable, "The database is unavailable");
    match error {
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => Some(UNAVAILABLE),
        sqlx::Error::Database(e) => {
            let code = e.code()?;
            // SQLSTATE classes: 08 connection exception, 57P0x the server shutting down or
            // starting, 53300 too many connections; 22 data exception.
            if code.starts_with("08") || code.starts_with("57P0") || code == "53300" {
                Some(UNAVAILABLE)
            } else if code.starts_with("22") {
                Some((
                    ErrorKind::Input,
                    "A value of the request cannot be stored: it is too long, out of range, or holds characters the database refuses",
                ))
            } else {
                None
            }
        }
        _ => None,
    }
}

/// What a response carries from an [`Error`] until the backend's HTTP layer, which knows the
/// request's method and URL, writes Backstage's error body.
#[derive(Clone, Debug)]
pub(crate) struct ErrorReport {
    pub(crate) name: &'static str,
    pub(crate) message: Cow<'static, str>,
    pub(crate) fields: Option<Box<Fields>>,
}

impl IntoResponse for Error {
    /// Answers with the error's status and leaves the body to the backend's HTTP layer, which
    /// writes Backstage's error body with the request's method and URL. Internal errors are
    /// logged here with a fresh log id, and only the id is sent.
    fn into_response(self) -> Response {
        let message = if self.kind == ErrorKind::Internal {
            let log_id = log_id();
            tracing::error!(log_id = %log_id, error = %self, "Filtered internal error with logId={log_id} from response");
            Cow::Owned(format!("An internal error occurred logId={log_id}"))
        } else {
            if self.source.is_some() {
                // The cause stays here; the caller gets the message only.
                tracing::warn!(error = %self, "{}", self.kind.name());
            }
            self.message
        };
        let mut response = self.kind.status().into_response();
        response.extensions_mut().insert(ErrorReport {
            name: self.kind.name(),
            message,
            fields: self.fields,
        });
        response
    }
}

/// A fresh log id: 20 hex digits, as Backstage's internal error filter makes them.
pub(crate) fn log_id() -> String {
    let mut bytes = [0u8; 10];
    if getrandom::fill(&mut bytes).is_err() {
        // No entropy source: fall back to the clock, which is unique enough for a log id.
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        bytes.copy_from_slice(&nanos.to_le_bytes()[..10]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_statuses_follow_backstage() {
        let table = [
            (ErrorKind::NotModified, "NotModifiedError", 304),
            (ErrorKind::Input, "InputError", 400),
            (ErrorKind::Authentication, "AuthenticationError", 401),
            (ErrorKind::NotAllowed, "NotAllowedError", 403),
            (ErrorKind::NotFound, "NotFoundError", 404),
            (ErrorKind::Conflict, "ConflictError", 409),
            (ErrorKind::NotImplemented, "NotImplementedError", 501),
            (
                ErrorKind::ServiceUnavailable,
                "ServiceUnavailableError",
                503,
            ),
            (ErrorKind::Internal, "Error", 500),
        ];
        for (kind, name, status) in table {
            assert_eq!(kind.name(), name);
            assert_eq!(kind.status().as_u16(), status);
        }
    }

    /// A database error with a SQLSTATE, as PostgreSQL and MySQL report them.
    #[derive(Debug)]
    struct Refused(&'static str);

    impl fmt::Display for Refused {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "refused with {} (table secrets)", self.0)
        }
    }

    impl std::error::Error for Refused {}

    impl sqlx::error::DatabaseError for Refused {
        fn message(&self) -> &str {
            "refused"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    #[test]
    fn database_errors_say_unavailable_or_bad_input_and_keep_the_details_in() {
        let kind = |e: sqlx::Error| {
            let e = Error::from(e);
            // Only internal errors keep the database's words, and those are never sent.
            if e.kind() != ErrorKind::Internal {
                assert!(!e.message().contains("secrets"), "{}", e.message());
            }
            e.kind()
        };
        assert_eq!(
            kind(sqlx::Error::PoolTimedOut),
            ErrorKind::ServiceUnavailable
        );
        assert_eq!(
            kind(sqlx::Error::Io(std::io::Error::from(
                std::io::ErrorKind::ConnectionRefused
            ))),
            ErrorKind::ServiceUnavailable
        );
        for (code, expected) in [
            ("22021", ErrorKind::Input),              // a NUL byte in PostgreSQL text
            ("22001", ErrorKind::Input),              // too long, PostgreSQL and MySQL
            ("57P01", ErrorKind::ServiceUnavailable), // the server shuts down
            ("08006", ErrorKind::ServiceUnavailable), // the connection failed
            ("23505", ErrorKind::Internal),           // a unique key: the plugin's to decide
        ] {
            assert_eq!(
                kind(sqlx::Error::Database(Box::new(Refused(code)))),
                expected,
                "{code}"
            );
        }
        assert_eq!(
            Error::from(std::io::Error::other("x")).kind(),
            ErrorKind::Internal
        );
    }

    #[test]
    fn internal_errors_hide_their_message() {
        let response = Error::internal("password=hunter2 leaked").into_response();
        let report = response.extensions().get::<ErrorReport>().expect("report");
        assert_eq!(report.name, "Error");
        assert!(
            report
                .message
                .starts_with("An internal error occurred logId="),
            "{}",
            report.message
        );
        assert!(!report.message.contains("hunter2"));
    }
}
