//! Routes of what runs can use: prompt templates, skills, agents, HTTP tools,
//! MCP servers, and the journal of direct tool calls.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Body of `POST /v1/template-preview`: a template's text and sample arguments.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PreviewTemplate {
    pub content: String,
    #[serde(default)]
    pub arguments: Option<Value>,
}

/// A preview: the rendered text, or why it does not render (a preview
/// reports a template's errors as its answer, with the API's codes).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct TemplatePreview {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// Variables the template uses, sorted (empty when it does not parse).
    pub variables: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<crate::ErrorDetail>,
}

/// Body of `POST /v1/skills` and `PUT /v1/skills/{name}`: the SKILL.md text and files beside it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadSkill {
    pub content: String,
    /// Relative path → text content (at most 4 MiB in all).
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// What an upload answers.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SkillUploaded {
    pub name: String,
    pub description: String,
    /// Always `tenant`.
    pub source: String,
}

/// A skill as listed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SkillSummary {
    pub name: String,
    pub description: String,
    /// `config` (a configured directory) or `tenant` (uploaded).
    pub source: String,
    /// Paths of the files beside SKILL.md.
    pub files: Vec<String>,
}

/// A whole skill (`GET /v1/skills/{name}`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Skill {
    pub name: String,
    pub description: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub body: String,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    #[serde(default)]
    pub source: String,
}

/// A configured skill that failed to load, and why.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SkillLoadError {
    pub path: String,
    pub reason: String,
}

/// `GET /v1/skills`: the page plus the configured skills that failed to load.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SkillList {
    pub data: Vec<SkillSummary>,
    pub errors: Vec<SkillLoadError>,
    pub next_cursor: Option<crate::Cursor>,
}

/// Body of `POST /v1/mcp-servers`: a name plus one server entry (stdio `command` or HTTP `url`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreateMcpServer {
    pub name: String,
    #[serde(flatten)]
    pub config: McpServerConfig,
}

/// How to reach an MCP server.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct McpServerConfig {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub args: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    /// Plain values, or `{"secret": "NAME"}` for one of the tenant's secrets (opened at each connect).
    pub env: BTreeMap<String, agentd_core::HeaderSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Plain values, or `{"secret": "NAME"}` for one of the tenant's secrets (opened at each connect).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, agentd_core::HeaderSpec>,
    /// Per-call timeout in seconds (default 60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Run a stdio server inside bubblewrap (always on for servers tenants add).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox: bool,
    /// With `sandbox`: whether the server may use the network.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub network: bool,
    /// Hints per tool-name glob laid over the server's own annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tool_hints: BTreeMap<String, Value>,
}

/// An MCP server as listed: its state, tools and recent history.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct McpServerInfo {
    pub name: String,
    /// `config` (shared by all tenants) or `tenant`.
    pub scope: String,
    /// `starting`, `ready`, `restarting` or `failed`.
    pub state: String,
    /// Why it is restarting or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub tools: usize,
    /// The latest state changes, oldest first: `{at, state, error?}`.
    pub events: Vec<Value>,
    /// Process id of a stdio server while it runs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<u32>,
    #[serde(flatten)]
    pub config: McpServerConfig,
}

/// Body of `POST /v1/teams/{name}/runs`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamRun {
    pub input: String,
}

/// Body of `POST /v1/teams/{name}/blackboard`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PostBlackboard {
    /// Who writes (default `user`).
    #[serde(default)]
    pub author: Option<String>,
    pub kind: String,
    pub content: String,
    #[serde(default)]
    pub run_id: Option<String>,
}
