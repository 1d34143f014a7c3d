//! Approvals: a tool call waiting for a person's decision.

use serde::{Deserialize, Serialize};

/// An approval as the API shows it; derived from the run journal
/// (`approval.requested` / `approval.resolved`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub id: String,
    pub run_id: String,
    pub session_id: String,
    pub call_id: String,
    pub tool: String,
    /// What the person is shown: never secret values or file contents.
    pub arguments_sanitized: serde_json::Value,
    /// Lowercase hex sha256 of canonical JSON of (tool, sanitised request).
    pub approval_key: String,
    pub risk: crate::policy::Risk,
    pub reasons: Vec<String>,
    /// The policy rule that asked.
    pub rule: String,
    /// `pending`, `approved`, `denied`, `expired` or `cancelled` (the run ended first).
    pub status: ApprovalStatus,
    /// `approve`, `approve_for_session`, `deny` or `expired`, once answered.
    pub decision: Option<Decision>,
    pub reason: Option<String>,
    /// Arguments a person edited before approving.
    pub arguments: Option<serde_json::Value>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub resolved_at: Option<String>,
    /// The API key that answered (`null` with auth off, or when it expired).
    #[serde(default)]
    pub resolved_by: Option<String>,
}

/// A person's (or the clock's) answer to an approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    pub decision: Decision,
    pub reason: Option<String>,
    /// Edited arguments (approve only), already checked against the tool's schema.
    pub arguments: Option<serde_json::Value>,
    /// The API key that answered (`None` with auth off, or for the clock).
    #[serde(default)]
    pub resolved_by: Option<String>,
}

spelled!(
    /// A person's (or the clock's) answer to an approval.
    Decision {
        Approve => "approve",
        /// Approve, and let identical requests pass for the rest of the session.
        ApproveForSession => "approve_for_session",
        Deny => "deny",
        /// Nobody answered in time.
        Expired => "expired",
    }
);

spelled!(
    /// Where an approval stands.
    ApprovalStatus {
        Pending => "pending",
        Approved => "approved",
        Denied => "denied",
        Expired => "expired",
        /// The run ended before anyone answered.
        Cancelled => "cancelled",
    }
);

impl Decision {
    /// The decisions a person can give.
    pub const BY_PERSON: &'static [Decision] = &[Decision::Approve, Decision::ApproveForSession, Decision::Deny];

    /// Whether the call may run.
    pub fn approves(self) -> bool {
        matches!(self, Decision::Approve | Decision::ApproveForSession)
    }

    /// The approval status this decision leads to (an expired one is
    /// refused like a denial but listed on its own).
    pub fn status(self) -> ApprovalStatus {
        match self {
            Decision::Approve | Decision::ApproveForSession => ApprovalStatus::Approved,
            Decision::Deny => ApprovalStatus::Denied,
            Decision::Expired => ApprovalStatus::Expired,
        }
    }
}

/// What an event changes in the approvals rows.
#[derive(Debug, Clone, PartialEq)]
pub enum ApprovalChange {
    /// A new pending approval.
    Open {
        id: String,
        call_id: String,
        tool: String,
        approval_key: String,
        risk: crate::policy::Risk,
        expires_at: Option<String>,
        /// JSON of `{arguments_sanitized, reasons, rule}`.
        request: serde_json::Value,
    },
    /// An answered approval.
    Close {
        id: String,
        status: ApprovalStatus,
        decision: Decision,
        reason: Option<String>,
        arguments: Option<serde_json::Value>,
        resolved_by: Option<String>,
    },
}
