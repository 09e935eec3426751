//! How an action behaves, as MCP clients are told: the attributes every action declares and
//! the filters of `backend.actions` select on.

use serde::Serialize;

/// How an action behaves, as MCP clients see it (`readOnlyHint`, `destructiveHint`,
/// `idempotentHint`).
///
/// Backstage's defaults: not read-only, not idempotent, and destructive unless read-only.
///
/// ```
/// use backstage::actions::ActionAttributes;
///
/// let attributes = ActionAttributes::default();
/// assert!(attributes.destructive && !attributes.read_only && !attributes.idempotent);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionAttributes {
    /// It changes or deletes data that cannot be recovered.
    pub destructive: bool,
    /// Calling it again with the same input has no further effect.
    pub idempotent: bool,
    /// It changes nothing.
    pub read_only: bool,
}

impl Default for ActionAttributes {
    fn default() -> Self {
        ActionAttributes {
            destructive: true,
            idempotent: false,
            read_only: false,
        }
    }
}
