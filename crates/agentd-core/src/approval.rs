//! Approvals: a tool call waiting for a person's decision.

use serde::{Deserialize, Serialize};

/// An approval as the API shows it; derived from the run journal
/// (`approval.requested` / `approval.resolved`).
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
    pub risk: String,
    pub reasons: Vec<String>,
    /// The policy rule that asked.
    pub rule: String,
    /// `pending`, `approved`, `denied` (also when it expired) or `cancelled` (the run ended first).
    pub status: String,
    /// `approve`, `approve_for_session`, `deny` or `expired`, once answered.
    pub decision: Option<String>,
    pub reason: Option<String>,
    /// Arguments a person edited before approving.
    pub arguments: Option<serde_json::Value>,
    pub created_at: String,
    pub expires_at: Option<String>,
    pub resolved_at: Option<String>,
}

/// A person's (or the clock's) answer to an approval.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Resolution {
    /// `approve`, `approve_for_session`, `deny` or `expired`.
    pub decision: String,
    pub reason: Option<String>,
    /// Edited arguments (approve only), already checked against the tool's schema.
    pub arguments: Option<serde_json::Value>,
}

impl Resolution {
    /// The approval status this decision leads to.
    pub fn status(&self) -> &'static str {
        status_of(&self.decision)
    }
}

/// The approval status a decision leads to.
pub fn status_of(decision: &str) -> &'static str {
    match decision {
        "approve" | "approve_for_session" => "approved",
        // Nobody answered in time: refused like a denial, listed on its own.
        "expired" => "expired",
        _ => "denied",
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
        risk: String,
        expires_at: Option<String>,
        /// JSON of `{arguments_sanitized, reasons, rule}`.
        request: serde_json::Value,
    },
    /// An answered approval.
    Close { id: String, status: String, decision: String, reason: Option<String>, arguments: Option<serde_json::Value> },
}
