//! The auth policy a route declares, as the macros record it in the route table.

/// The auth policy of a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AuthPolicyKind {
    /// User or service credentials are required (Backstage's default).
    Default,
    /// Anyone may call; credentials, when sent, are still verified.
    Unauthenticated,
    /// Like the default, and also a user's cookie (limited access).
    UserCookie,
}

impl AuthPolicyKind {
    /// The policy's name as written in `auth = "..."`.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthPolicyKind::Default => "default",
            AuthPolicyKind::Unauthenticated => "unauthenticated",
            AuthPolicyKind::UserCookie => "user-cookie",
        }
    }
}
