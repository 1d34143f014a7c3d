//! What a server is and how the API shows it: its entry (stdio or HTTP),
//! its name rule, its state and the manager's errors.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One server entry in the usual `mcpServers` format: `command`/`args`/`env`
/// (stdio) or `url`/`headers` (streamable HTTP).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct McpServerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Per-call timeout in seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Run a stdio server inside bubblewrap: read-only system, private
    /// `/tmp`, agentd's data hidden, own PID namespace. Always on for
    /// servers a tenant adds over the API.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
    /// With `sandbox`: whether the server may use the network (default no).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
    /// Hints the operator sets per tool-name glob, laid over the server's own
    /// annotations for the guard: `{"delete_*" = {destructiveHint = true}}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tool_hints: BTreeMap<String, serde_json::Value>,
}

impl McpServerConfig {
    /// Checks the entry names exactly one transport.
    pub fn validate(&self) -> Result<(), String> {
        let name_ok = |k: &str| {
            !k.is_empty()
                && !k.starts_with(|c: char| c.is_ascii_digit())
                && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        };
        if let Some(k) = self.env.keys().find(|k| !name_ok(k)) {
            return Err(format!("environment variable names are [A-Za-z_][A-Za-z0-9_]*, not {k:?}"));
        }
        match (&self.command, &self.url) {
            (Some(c), None) if !c.trim().is_empty() => Ok(()),
            (None, Some(u)) if u.starts_with("http://") || u.starts_with("https://") => Ok(()),
            (None, Some(_)) => Err("`url` must be an http(s) URL".into()),
            _ => Err("give either `command` (stdio) or `url` (streamable HTTP)".into()),
        }
    }
}

/// Whether a server name can be part of tool names.
pub fn valid_server_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
}

/// A server's connection state, as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum ServerState {
    Starting,
    Ready,
    Restarting { error: String },
    Failed { error: String },
}

/// What the API lists about a server.
#[derive(Debug, Clone, Serialize)]
pub struct ServerInfo {
    pub name: String,
    /// `config` (shared by all tenants) or `tenant`.
    pub scope: &'static str,
    #[serde(flatten)]
    pub state: ServerState,
    pub tools: usize,
    /// The latest state changes, oldest first: `{at, state, error?}`.
    pub events: Vec<serde_json::Value>,
    /// Process id of a stdio server while it runs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(flatten)]
    pub config: McpServerConfig,
}

/// Errors of the manager.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum McpError {
    #[error("an MCP server named {0} exists")]
    Exists(String),
    #[error("no MCP server named {0}")]
    NotFound(String),
    #[error("invalid MCP server: {0}")]
    Invalid(String),
}
