//! Liveness and readiness.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// `GET /healthz`: the process answers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz`: `200` when the database answers and a provider is configured; else `503`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    /// What is missing: `database`, `provider`.
    pub missing: Vec<String>,
    pub checks: ReadinessChecks,
    /// `on` when `/v1` needs an API key, `off` otherwise.
    pub auth: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ReadinessChecks {
    pub database: Check,
    pub providers: Check,
}

/// One readiness check.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Check {
    pub ok: bool,
    /// The providers configured (for the providers check).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub configured: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// `GET /v1/diagnostics`: the facts `agentd doctor` prints, from the running node.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Diagnostics {
    pub version: String,
    pub node_id: String,
    pub uptime_secs: u64,
    pub auth: String,
    pub database: Check,
    /// Runs waiting to be claimed, across the cluster.
    pub queued_runs: u64,
    /// Runs executing on this node.
    pub active_runs: u64,
    pub providers: Vec<NamedCheck>,
    /// The caller's MCP servers (shared and its own) with their state.
    pub mcp_servers: Vec<NamedCheck>,
    pub sandbox: Check,
}

/// A check of one named thing.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct NamedCheck {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}
