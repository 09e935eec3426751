//! The user cookie (`backstage-auth`): how it is written, and the endpoints every plugin serves
//! at `/.backstage/auth/v1/cookie`.

use std::time::{SystemTime, UNIX_EPOCH};

use axum::http::HeaderValue;

use super::USER_COOKIE;

/// What [`super::HttpAuth::issue_user_cookie`] decided.
#[derive(Clone, Debug)]
pub struct UserCookie {
    /// When the cookie expires.
    pub expires_at: SystemTime,
    /// The `Set-Cookie` header to send, or `None` when the browser's cookie is kept.
    pub set_cookie: Option<HeaderValue>,
}

/// The cookie's attributes, from the plugin's external base URL as Backstage derives them:
/// `Domain` is its host; `Secure` (with `SameSite=None`) on https or `localhost`, else
/// `SameSite=Lax`; always `HttpOnly`, `Path=/` and `Priority=High`.
pub(crate) struct CookieOptions {
    domain: String,
    secure: bool,
}

impl CookieOptions {
    pub(crate) fn new(external_base_url: Option<&str>) -> Self {
        let url = external_base_url.and_then(|u| url::Url::parse(u).ok());
        let domain = url
            .as_ref()
            .and_then(|u| u.host_str())
            .unwrap_or("localhost")
            .to_owned();
        let secure = url.as_ref().is_none_or(|u| u.scheme() == "https") || domain == "localhost";
        CookieOptions { domain, secure }
    }

    fn write(&self, value: &str, expires: SystemTime) -> HeaderValue {
        let mut cookie = format!(
            "{USER_COOKIE}={value}; Domain={}; Path=/; Expires={}; HttpOnly",
            self.domain,
            httpdate::fmt_http_date(expires)
        );
        if self.secure {
            cookie.push_str("; Secure; Priority=High; SameSite=None");
        } else {
            cookie.push_str("; Priority=High; SameSite=Lax");
        }
        // Tokens are base64url and dots, domains are hosts: always a valid header value.
        HeaderValue::from_str(&cookie).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    /// `Set-Cookie` carrying `token` until `expires`.
    pub(crate) fn set(&self, token: &str, expires: SystemTime) -> HeaderValue {
        self.write(token, expires)
    }

    /// `Set-Cookie` clearing the cookie (expired at the epoch).
    pub(crate) fn clear(&self) -> HeaderValue {
        self.write("", UNIX_EPOCH + std::time::Duration::from_millis(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_are_written_as_express_writes_them() {
        let at = UNIX_EPOCH + std::time::Duration::from_secs(1_795_000_000);
        let local = CookieOptions::new(Some("http://localhost:7007/api/carmen"));
        assert_eq!(
            local.set("t.o.k", at).to_str().unwrap(),
            "backstage-auth=t.o.k; Domain=localhost; Path=/; Expires=Wed, 18 Nov 2026 11:06:40 GMT; HttpOnly; Secure; Priority=High; SameSite=None"
        );
        let plain = CookieOptions::new(Some("http://backstage.internal:7007/api/carmen"));
        assert_eq!(
            plain.clear().to_str().unwrap(),
            "backstage-auth=; Domain=backstage.internal; Path=/; Expires=Thu, 01 Jan 1970 00:00:00 GMT; HttpOnly; Priority=High; SameSite=Lax"
        );
        let https = CookieOptions::new(Some("https://backstage.example.com/api/carmen"));
        assert!(
            https
                .clear()
                .to_str()
                .unwrap()
                .contains("Domain=backstage.example.com; Path=/")
        );
        assert!(
            https
                .clear()
                .to_str()
                .unwrap()
                .ends_with("; Secure; Priority=High; SameSite=None")
        );
    }
}
