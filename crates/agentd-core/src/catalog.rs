//! What tenants keep and what their work records, as plain data shared by
//! the store, the runtime and the API (one definition each, no mirror):
//! model profiles, agents (with their limits, listings, versions and exports), prompt templates, teams, blackboard entries, direct tool calls,
//! workspace listings, usage reports and an organisation's quotas.

use serde::{Deserialize, Serialize};

use crate::{ContentPart, TeamMember};

/// A tenant document of a simple kind as stored and shown: its name, the
/// kind's fields and its times.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Document<K> {
    pub name: String,
    #[serde(flatten)]
    pub body: K,
    pub created_at: String,
    pub updated_at: String,
}

/// The body that creates a document: its name and the kind's fields.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Named<K> {
    pub name: String,
    #[serde(flatten)]
    pub body: K,
}

/// A prompt template (minijinja), the fields of the tenant document kind
/// `/v1/prompt-templates`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    pub content: String,
    /// Variables the template uses, sorted (worked out when it is stored; ignored on input).
    #[serde(default)]
    pub variables: Vec<String>,
}

/// How a team works.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TeamStrategy {
    /// Members in order, then the lead.
    #[default]
    Serial,
    /// Members at once, then the lead synthesises.
    Parallel,
}

/// A team (`/v1/teams`): members in order and a lead.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamDef {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default)]
    pub strategy: TeamStrategy,
    /// In order.
    #[serde(default)]
    pub members: Vec<TeamMember>,
    pub lead: TeamMember,
}

/// An entry of a team's blackboard.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// A tool call made without a model, as journaled (`GET /v1/tool-calls`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DirectCall {
    pub id: String,
    pub session_id: Option<String>,
    pub tool: String,
    pub arguments: serde_json::Value,
    pub content: Vec<ContentPart>,
    pub is_error: bool,
    pub duration_ms: u64,
    pub created_at: String,
}

/// What a workspace entry is.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Dir,
    /// Listed, never followed.
    Link,
}

/// One entry of a workspace directory.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub name: String,
    /// Relative to the workspace root.
    pub path: String,
    pub kind: FileKind,
    pub size: u64,
}

/// A search hit: the path alone (a name match) or a matching line.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileHit {
    pub path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One group of a usage report.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The day (`YYYY-MM-DD`), model, agent or user; `total` for the sum.
    pub key: String,
    pub runs: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
    pub cost_usd: f64,
    pub tool_calls: u64,
}

/// Tokens, cost, runs and tool calls over `[from, to)` (`GET /v1/usage`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UsageReport {
    pub from: String,
    pub to: String,
    /// `day`, `model`, `agent` or `user`.
    pub group_by: String,
    pub data: Vec<UsageRow>,
    pub total: UsageRow,
    /// The period held more runs than one report reads (100,000).
    pub truncated: bool,
}

/// An organisation's quotas (`[limits]` in the config, `PUT/GET /v1/orgs/{org}/limits`); absent: unlimited.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrgLimits {
    /// Runs the org may have executing at once across all nodes (default: the
    /// scheduler's `per_tenant_concurrent_runs`); more wait queued.
    #[serde(default)]
    pub concurrent_runs: Option<u32>,
    /// Requests a minute per API key of the org (GCRA; over it `429 rate_limited`).
    #[serde(default)]
    pub requests_per_minute: Option<u32>,
    /// Model tokens the org's runs may use per UTC day; a run at or over it fails `budget_exceeded`.
    #[serde(default)]
    pub tokens_per_day: Option<u64>,
    /// USD the org's runs may spend per UTC day (from the profiles' price tables).
    #[serde(default)]
    pub cost_usd_per_day: Option<f64>,
}

/// How far a run may delegate, and how many tokens its tree may use.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentLimits {
    /// A run at this depth may not delegate (a top-level run has depth 0).
    pub max_depth: u32,
    /// Children one run may create in all.
    pub max_children: u32,
    /// Children of one run executing at once; more wait for a free slot.
    pub max_concurrent_children: u32,
    /// Wall time of each child in seconds; over it the child fails `timed_out`.
    pub child_max_wall_secs: u64,
    /// Tokens a run and its descendants may use (no limit when absent).
    pub max_tokens: Option<u64>,
    /// USD a run and its descendants may spend (priced profiles; no limit when absent).
    pub max_cost_usd: Option<f64>,
}

impl Default for AgentLimits {
    fn default() -> Self {
        Self {
            max_depth: 3,
            max_children: 16,
            max_concurrent_children: 4,
            child_max_wall_secs: 900,
            max_tokens: None,
            max_cost_usd: None,
        }
    }
}

/// An agent defined over the API (`/v1/agents`), stored per tenant.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
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
    /// Policy layered over the operator's: its mode and allow / ask rules
    /// apply, the operator's deny rules always stay.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub policy: Option<crate::policy::PolicyConfig>,
    /// What the agent does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Delegation limits and token budget (the default agent's when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AgentLimits>,
}

/// Where a listed agent comes from.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentSource {
    /// `[agents.*]` in the config.
    Config,
    /// An AGENT.md of `agents_dirs`.
    File,
    /// Defined by the tenant over the API.
    Tenant,
}

/// An agent as `GET /v1/agents` lists it: configured ones by name (and
/// description), the tenant's whole.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentListing {
    #[serde(flatten)]
    pub agent: AgentDef,
    pub source: AgentSource,
}

/// One version of a tenant agent (each create or replace makes one).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentVersion {
    pub version: i64,
    #[serde(rename = "doc")]
    pub agent: AgentDef,
    pub created_at: String,
}

/// The format tag of an exported agent.
pub const AGENT_EXPORT_FORMAT: &str = "agentd.agent/v1";

/// A portable agent: `GET /v1/agents/{name}/export` gives it, `POST /v1/agents/import` takes it.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    pub skills: Vec<serde_json::Value>,
    /// The prompt template the agent renders (`name`, `content`).
    #[serde(default)]
    pub templates: Vec<serde_json::Value>,
}

/// What an import wrote.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentImported {
    pub agent: AgentDef,
    /// The agent's version after the import.
    pub version: Option<i64>,
    pub skills: usize,
    pub templates: usize,
}

/// A named model: which provider and model id, its limits, default
/// parameters, and the profiles to fail over to.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelProfile {
    pub provider: String,
    pub model: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_window: Option<u64>,
    /// Most output tokens per answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Sent with every request (`temperature`, `top_p`, `tool_choice`, …).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub params: serde_json::Map<String, serde_json::Value>,
    /// Profiles tried in order when this one fails with a provider error.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback: Vec<String>,
    /// What the model accepts as input: `["text"]` makes images a 400 (default text and images).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input: Option<Vec<String>>,
    /// Price per million tokens, for cost per run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<ModelPrice>,
    /// Share of the context window at which older turns are compacted (default 0.8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compact_at: Option<f64>,
    /// Exchanges kept verbatim when compacting (default 4).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keep_turns: Option<usize>,
}

/// USD per million input / output tokens.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ModelPrice {
    #[serde(default)]
    pub input_per_mtok: f64,
    #[serde(default)]
    pub output_per_mtok: f64,
}

/// A provider's API dialect (`type` of `[providers.*]`).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProviderKind {
    /// Any OpenAI-compatible chat-completions server.
    #[default]
    Openai,
    Anthropic,
    Ollama,
    /// Canned turns from the config (operators only: it reads files).
    Scripted,
}

impl ProviderKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ProviderKind::Openai => "openai",
            ProviderKind::Anthropic => "anthropic",
            ProviderKind::Ollama => "ollama",
            ProviderKind::Scripted => "scripted",
        }
    }
}
