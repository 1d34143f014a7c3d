//! Routes of what runs can use: prompt templates, skills, agents, HTTP tools,
//! MCP servers, and the journal of direct tool calls.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ContentPart;

/// Body of `POST /v1/prompt-templates`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTemplate {
    pub name: String,
    pub content: String,
}

/// Body of `PUT /v1/prompt-templates/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplaceTemplate {
    pub content: String,
}

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

/// A tenant's prompt template (minijinja).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PromptTemplate {
    pub name: String,
    pub content: String,
    /// Variables the template uses, sorted.
    #[serde(default)]
    pub variables: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
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

/// An agent a tenant defines (`POST /v1/agents`), and as listed.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_prompt: Option<String>,
    /// One of the tenant's prompt templates, rendered with each run's `arguments`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_template: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_steps: Option<u32>,
    /// Tool names or globs (every tool when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tools: Option<Vec<String>>,
    /// Skill names or globs (every skill when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub skills: Option<Vec<String>>,
    /// Policy layered over the operator's (`mode`, `allow`, `ask`, `deny` rules).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<Value>,
    /// What the agent does (for people, and for agents choosing whom to delegate to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Delegation limits and the token budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AgentLimits>,
}

/// How far an agent's runs may delegate, and how many tokens a run's tree may use.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentLimits {
    /// A run at this depth may not delegate (default 3; a top-level run has depth 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_depth: Option<u32>,
    /// Children one run may create (default 16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_children: Option<u32>,
    /// Children of one run executing at once; more wait (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent_children: Option<u32>,
    /// Wall time of each child in seconds (default 900); over it the child fails `timed_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub child_max_wall_secs: Option<u64>,
    /// Tokens a run and its descendants may use.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u64>,
    /// USD a run and its descendants may spend (priced model profiles).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost_usd: Option<f64>,
}

/// One version of a tenant agent (each create or replace makes one).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentVersion {
    pub version: i64,
    #[serde(rename = "doc")]
    pub agent: AgentDef,
    pub created_at: String,
}

/// A portable agent: `GET /v1/agents/{name}/export` gives it, `POST /v1/agents/import` takes it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentExport {
    /// `agentd.agent/v1`.
    pub format: String,
    #[serde(default)]
    pub exported_at: Option<String>,
    /// The version exported.
    #[serde(default)]
    pub version: Option<i64>,
    pub agent: AgentDef,
    /// The tenant skills the agent may use (SKILL.md fields and side files).
    #[serde(default)]
    pub skills: Vec<Value>,
    /// The prompt template the agent renders (`name`, `content`).
    #[serde(default)]
    pub templates: Vec<Value>,
}

/// What an import wrote.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentImported {
    pub agent: AgentDef,
    /// The agent's version after the import.
    pub version: Option<i64>,
    pub skills: usize,
    pub templates: usize,
}

/// An agent as `GET /v1/agents` lists it: configured ones by name, the tenant's whole.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AgentListing {
    #[serde(flatten)]
    pub agent: AgentDef,
    /// `config` or `tenant`.
    pub source: String,
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

/// A tool call made without a model, as journaled (`GET /v1/tool-calls`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct DirectCall {
    pub id: String,
    pub session_id: Option<String>,
    pub tool: String,
    pub arguments: Value,
    pub content: Vec<ContentPart>,
    pub is_error: bool,
    pub duration_ms: u64,
    pub created_at: String,
}

/// One agent of a team, in a role.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamMember {
    pub agent: String,
    pub role: String,
}

/// A team (`/v1/teams`): members in order and a lead.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TeamDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `serial` (members in order, then the lead; the default) or `parallel`
    /// (members at once, then the lead synthesises).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<String>,
    #[serde(default)]
    pub members: Vec<TeamMember>,
    pub lead: TeamMember,
}

/// Body of `POST /v1/teams/{name}/runs`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateTeamRun {
    pub input: String,
}

/// An entry of a team's blackboard.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct BlackboardEntry {
    pub id: String,
    pub team: String,
    /// The role (or person) that wrote it.
    pub author: String,
    /// `task`, `proposal`, `evidence`, `decision` or `note`.
    pub kind: String,
    pub content: String,
    /// The run that wrote it, if a run did.
    pub run_id: Option<String>,
    pub created_at: String,
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
