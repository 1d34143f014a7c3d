//! Runs, sessions and their states.

use serde::{Deserialize, Serialize};

use crate::message::Usage;

/// The state of a run; derived from its journal.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Queued,
    Running,
    /// Paused until a person answers its pending approvals; no node holds it.
    WaitingApproval,
    /// Paused until the child runs it waits for have ended; no node holds it.
    WaitingChildren,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::WaitingApproval => "waiting_approval",
            RunStatus::WaitingChildren => "waiting_children",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "waiting_approval" => RunStatus::WaitingApproval,
            "waiting_children" => RunStatus::WaitingChildren,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            _ => return None,
        })
    }

    /// True when the run can no longer change.
    pub fn is_terminal(&self) -> bool {
        matches!(self, RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled)
    }
}

/// Why a run failed: a machine-readable code and a human message.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunError {
    pub code: String,
    pub message: String,
}

impl RunError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }
}

/// A run as the API shows it.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: String,
    pub session_id: String,
    pub status: RunStatus,
    pub input: String,
    /// The agent whose settings the run uses.
    pub agent: String,
    pub model: String,
    pub max_steps: u32,
    pub output: Option<String>,
    pub error: Option<RunError>,
    pub usage: Usage,
    /// Model profiles tried, each once, in the order first tried.
    #[serde(default)]
    pub attempted_profiles: Vec<String>,
    /// The profile that gave the last answer; `null` if none succeeded.
    #[serde(default)]
    pub final_profile: Option<String>,
    /// USD spent on model calls (from the profiles' price tables; `null` without prices).
    #[serde(default)]
    pub cost_usd: Option<f64>,
    /// Sequence number of the last journal event.
    pub last_seq: i64,
    pub created_at: String,
    pub updated_at: String,
    /// The run that delegated this one (`null` for a top-level run).
    #[serde(default)]
    pub parent_run_id: Option<String>,
    /// The top-level run of this run's tree (its own id for a top-level run).
    #[serde(default)]
    pub root_run_id: Option<String>,
    /// 0 for a top-level run, 1 for its children, ...
    #[serde(default)]
    pub depth: u32,
    /// The version of a tenant agent the run uses (`null` for configured agents).
    #[serde(default)]
    pub agent_version: Option<i64>,
    /// Tokens of the run and all its descendants (usage rolls up when a child ends).
    #[serde(default)]
    pub tree_usage: Usage,
    /// USD of the run and all its descendants (`null` without prices).
    #[serde(default)]
    pub tree_cost_usd: Option<f64>,
}

/// A team as a team run saw it when it started (later edits never change it).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamSpec {
    pub name: String,
    pub strategy: crate::TeamStrategy,
    pub members: Vec<TeamMember>,
    pub lead: TeamMember,
}

/// One agent of a team, in a role.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamMember {
    pub agent: String,
    pub role: String,
}

/// What a child run may not exceed, fixed when it is created.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Ceiling {
    /// The tools the child may use (the parent's, narrowed by what it asked for).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Deny rules of its ancestors' policies (added to its own).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<crate::policy::RuleSpec>,
    /// Ask rules of its ancestors' policies (added to its own): policy only gets stricter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ask: Vec<crate::policy::RuleSpec>,
    /// The strictest `mode` of its ancestors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<crate::policy::Verdict>,
    /// Its ancestors' whole policies, nearest first: every call of the
    /// child must pass each of them too (the strictest verdict wins).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<crate::policy::PolicyConfig>,
    /// Tokens the child (with its descendants) may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// USD the child (with its descendants) may spend.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
    /// Wall time the child may run; over it ends `failed` with `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_wall_secs: Option<u64>,
    /// The team whose blackboard the child reads and writes (members and leads).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team: Option<String>,
    /// The child's role in that team.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
}

/// A conversation: an ordered list of messages produced by its runs.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Session {
    pub id: String,
    pub title: Option<String>,
    pub metadata: serde_json::Value,
    pub created_at: String,
    pub updated_at: String,
}

/// A header value: as it is, or a reference to one of the tenant's secrets.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum HeaderSpec {
    Value(String),
    Secret { secret: String },
}

/// `{"secret": "NAME"}`: one of the tenant's secrets, opened at the moment of use.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretRef {
    pub secret: String,
}

/// A tool a user registered at run time that POSTs its arguments to a URL.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HttpToolDef {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
    pub url: String,
    /// Headers: plain values sent as they are, or `{"secret": "NAME"}`, the
    /// tenant's secret opened at the moment of the call.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, HeaderSpec>,
    /// Header name → environment variable holding its (secret) value.
    #[serde(default)]
    pub secret_headers: std::collections::BTreeMap<String, String>,
    #[serde(default = "default_http_timeout")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub created_at: String,
}

fn default_http_timeout() -> u64 {
    30_000
}

/// What to do when a message arrives for a session that has an unfinished run.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfBusy {
    /// Queue a new run behind the active one (FIFO per session).
    #[default]
    Enqueue,
    /// Refuse with the active run's id (`409 session_busy`).
    Reject,
    /// Cancel the active run(s), then start.
    Interrupt,
    /// Hand the message to the active run at its next step.
    Steer,
}

/// A message of a session with where it came from.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionMessage {
    pub index: i64,
    pub run_id: String,
    pub seq: i64,
    #[serde(flatten)]
    pub message: crate::Message,
    pub created_at: String,
}
