//! What a runtime call refused or failed with: domain errors, each with an
//! `ErrorCode`; which HTTP status one becomes is the server's business.

use agentd_core::{ErrorCode, RunStatus};
use agentd_store::StoreError;

/// What a runtime call refused or failed with. Each error has an
/// [`ErrorCode`]; which HTTP status it becomes is the server's business.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// The request is not valid: a field, a value, a template.
    #[error("{message}")]
    Invalid { code: ErrorCode, message: String },
    #[error("session {0} not found")]
    SessionNotFound(String),
    #[error("run {0} not found")]
    RunNotFound(String),
    #[error("approval {0} not found")]
    ApprovalNotFound(String),
    /// A named catalog entry (template, tool, skill, agent, MCP server) the tenant does not have.
    #[error("{message}")]
    NotFound { code: ErrorCode, message: String },
    /// The name is taken.
    #[error("{message}")]
    AlreadyExists { code: ErrorCode, message: String },
    /// The run reached a terminal state; it takes nothing more.
    #[error("run {run_id} already finished with status {}", status.as_str())]
    RunAlreadyFinished { run_id: String, status: RunStatus },
    /// The approval was answered already, or its run ended.
    #[error("the approval is {status}, not pending")]
    ApprovalNotPending { status: String },
    /// The session has an unfinished run and the caller asked to reject.
    #[error("session is busy with run {active_run_id}")]
    SessionBusy { active_run_id: String },
    /// The tool an approval was for is gone from the run's tool set.
    #[error("the tool {tool} is no longer available to this run")]
    ToolUnavailable { tool: String },
    /// A template variable the caller did not give.
    #[error("template {template} needs the variable {variable:?}")]
    MissingVariable { template: String, variable: String },
    /// Tool arguments that violate the tool's schema.
    #[error("{0}")]
    InvalidArguments(agentd_tools::InvalidArguments),
    /// The policy refuses a direct call.
    #[error("{message}")]
    PermissionDenied { message: String, details: serde_json::Value },
    /// The policy wants a person to approve a direct call, which cannot wait.
    #[error("{message}")]
    ApprovalRequired { message: String, details: serde_json::Value },
    /// No key, or one that is unknown, revoked or expired.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's role may not do this.
    #[error("{0}")]
    Forbidden(String),
    /// Over an operator's cap on things in flight at once (downloads); try again soon.
    #[error("{0}")]
    Busy(String),
    /// Over the organisation's request rate; try again after this long.
    #[error("over the request limit of {per_minute} a minute for this key; retry in {} s", retry_after.as_secs().max(1))]
    RateLimited { per_minute: u32, retry_after: std::time::Duration },
    /// The database failed (the cause is for the log, not the caller).
    #[error("the database reported an error: {0}")]
    Store(StoreError),
}

impl RuntimeError {
    pub fn bad(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Invalid { code, message: message.into() }
    }

    pub(crate) fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::NotFound { code, message: message.into() }
    }

    pub(crate) fn exists(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::AlreadyExists { code, message: message.into() }
    }

    /// The error's code in the API.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Invalid { code, .. } | Self::NotFound { code, .. } | Self::AlreadyExists { code, .. } => *code,
            Self::SessionNotFound(_) => ErrorCode::SessionNotFound,
            Self::RunNotFound(_) => ErrorCode::RunNotFound,
            Self::ApprovalNotFound(_) => ErrorCode::ApprovalNotFound,
            Self::RunAlreadyFinished { .. } => ErrorCode::RunAlreadyFinished,
            Self::ApprovalNotPending { .. } => ErrorCode::ApprovalNotPending,
            Self::SessionBusy { .. } => ErrorCode::SessionBusy,
            Self::ToolUnavailable { .. } => ErrorCode::ToolUnavailable,
            Self::MissingVariable { .. } => ErrorCode::MissingVariable,
            Self::InvalidArguments(_) => ErrorCode::InvalidArguments,
            Self::PermissionDenied { .. } => ErrorCode::PermissionDenied,
            Self::ApprovalRequired { .. } => ErrorCode::ApprovalRequired,
            Self::Unauthorized(_) => ErrorCode::Unauthorized,
            Self::Forbidden(_) => ErrorCode::Forbidden,
            Self::RateLimited { .. } => ErrorCode::RateLimited,
            Self::Busy(_) => ErrorCode::LimitExceeded,
            Self::Store(StoreError::NotFound) => ErrorCode::NotFound,
            Self::Store(_) => ErrorCode::InternalError,
        }
    }
}

impl From<StoreError> for RuntimeError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotPending(status) => Self::ApprovalNotPending { status },
            StoreError::SessionBusy(active_run_id) => Self::SessionBusy { active_run_id },
            other => Self::Store(other),
        }
    }
}
