//! API keys as the API shows them (never their secret).

use serde::{Deserialize, Serialize};

use crate::KeyRole;

/// An API key: who it speaks for and what it may do. The secret itself is
/// shown once at creation and stored only as a SHA-256 hash.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: KeyRole,
    /// The organisation it acts in (`null` for an operator key: every org).
    pub org: Option<String>,
    /// A fixed user; without one the key may act for any user of its org (`x-user-id`).
    pub user: Option<String>,
    /// A fixed project; without one `x-project-id` chooses.
    pub project: Option<String>,
    /// The first characters of the key, to tell keys apart (`agk_` + 8).
    pub prefix: String,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub last_used_at: Option<String>,
    /// Set once revoked; a revoked key is refused from then on.
    pub revoked_at: Option<String>,
}

/// One change made through the API: who (key, role, user), what (method
/// and route), when, and the request's id.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: String,
    pub org: String,
    /// The key that made the change (`null` with auth off).
    pub key_id: Option<String>,
    pub role: Option<KeyRole>,
    pub user: String,
    pub method: String,
    /// The route as declared, e.g. `/v1/api-keys/{id}`.
    pub route: String,
    /// The path as called.
    pub path: String,
    pub status: u16,
    pub request_id: String,
    pub created_at: String,
}
