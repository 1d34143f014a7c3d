//! `agentd.toml`: providers, model profiles and agent settings.
//! Precedence is defaults < file < environment < command-line flags.

pub use agentd_core::{ModelPrice as Price, ModelProfile, OrgLimits};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The whole configuration file. Unknown keys are ignored so a newer file
/// still loads in an older binary.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Config {
    pub listen: Option<String>,
    pub data_dir: Option<PathBuf>,
    /// Model used when a run names none: a profile or `provider/model`.
    pub default_model: Option<String>,
    /// Largest accepted request body in bytes.
    pub max_body_bytes: Option<usize>,
    /// Host names served with auth off besides loopback ones (a browser
    /// reaching the server under another name could be a DNS rebinding).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// Origins whose pages may make changes (the console's own always may).
    #[serde(default)]
    pub allowed_origins: Vec<String>,
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    #[serde(default)]
    pub models: BTreeMap<String, ModelProfile>,
    #[serde(default)]
    pub agents: BTreeMap<String, AgentConfig>,
    /// Concurrency limits, leases and shutdown grace.
    #[serde(default)]
    pub scheduler: crate::SchedulerSettings,
    /// How long finished runs are kept.
    #[serde(default)]
    pub retention: RetentionConfig,
    /// This node's name in leases and `run.started` / `run.resumed` events
    /// (default: kept in the data dir for SQLite, random per process for PostgreSQL).
    pub node_id: Option<String>,
    /// PostgreSQL URL (`postgres://…`); SQLite under the data dir when absent.
    pub database: Option<String>,
    /// `[mcp_servers.<name>]` entries in the usual format, shared by all tenants.
    #[serde(default)]
    pub mcp_servers: BTreeMap<String, agentd_mcp::McpServerConfig>,
    /// Settings for every MCP server (`[mcp]`).
    #[serde(default)]
    pub mcp: McpSettings,
    /// A JSON file in the usual `{"mcpServers": {...}}` format.
    pub mcp_servers_file: Option<PathBuf>,
    /// Directories of skills (each skill a subdirectory with a SKILL.md), shared by all tenants.
    #[serde(default)]
    pub skills_dirs: Vec<PathBuf>,
    /// Directories of agents (each agent a subdirectory with an AGENT.md), shared by all tenants.
    #[serde(default)]
    pub agents_dirs: Vec<PathBuf>,
    /// A `.env` file (KEY=VALUE lines) where `api_key_env` variables may live.
    pub env_file: Option<PathBuf>,
    /// Secrets to mask in events, logs and errors (`[secrets]`).
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Where tools, HTTP tools and tenant MCP servers may connect (`[egress]`):
    /// public addresses only unless allowed here, and never agentd itself.
    #[serde(default)]
    pub egress: agentd_tools::egress::EgressConfig,
    /// Quotas per organisation (`[limits.default]`, `[limits.orgs.<org>]`).
    #[serde(default)]
    pub limits: LimitsConfig,
    /// How sessions are titled (`[sessions]`).
    #[serde(default)]
    pub sessions: SessionsConfig,
    /// Directory of the file, for resolving relative paths.
    #[serde(skip)]
    pub base_dir: PathBuf,
    /// The file itself, when one was read (hidden from every sandbox).
    #[serde(skip)]
    pub path: Option<PathBuf>,
}

/// `[sessions]`: how a new session gets its title.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionsConfig {
    /// After a session's first exchange, the model that answered writes a
    /// short title (its tokens count in the run's usage); off, or when the
    /// model fails, the title stays the first words of the message.
    pub model_titles: bool,
}

impl Default for SessionsConfig {
    fn default() -> Self {
        Self { model_titles: true }
    }
}

/// Quotas per organisation (`default` for every org, `orgs.<org>` replacing
/// it for one), and the server's caps that no tenant setting can raise:
/// agents' `limits` may lower these, never raise them.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    pub default: OrgLimits,
    pub orgs: BTreeMap<String, OrgLimits>,
    /// Deepest a tree may grow (a top-level run has depth 0).
    pub max_depth: u32,
    /// Children one run may create in all.
    pub max_children: u32,
    /// Children of one run executing at once.
    pub max_concurrent_children: u32,
    /// Runs one tree may hold, its root included.
    pub max_tree_runs: u32,
    /// Unfinished runs an org may have for another child run to be made.
    pub max_org_open_runs: u32,
    /// Bytes one session's workspace may hold.
    pub workspace_bytes: u64,
    /// Bytes all of one org's workspaces on this node may hold together.
    pub org_workspace_bytes: u64,
    /// Workspace downloads one org may have in flight at once.
    pub downloads_per_org: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            default: OrgLimits::default(),
            orgs: BTreeMap::new(),
            max_depth: 5,
            max_children: 32,
            max_concurrent_children: 8,
            max_tree_runs: 256,
            max_org_open_runs: 2_000,
            workspace_bytes: 1024 * 1024 * 1024,
            org_workspace_bytes: 16 * 1024 * 1024 * 1024,
            downloads_per_org: 8,
        }
    }
}

impl LimitsConfig {
    /// The limits of one organisation.
    pub fn of(&self, org: &str) -> &OrgLimits {
        self.orgs.get(org).unwrap_or(&self.default)
    }
}

/// One provider endpoint.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ProviderConfig {
    /// `openai` (any OpenAI-compatible server), `anthropic`, `ollama` or `scripted`.
    #[serde(rename = "type", default)]
    pub kind: agentd_core::ProviderKind,
    pub base_url: Option<String>,
    /// Name of the environment variable holding the API key.
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub timeout_secs: Option<u64>,
    /// Use SSE streaming (default true).
    pub stream: Option<bool>,
    /// For `scripted`: a JSON file with the turns to play.
    pub script: Option<PathBuf>,
    /// For `scripted`: the turns inline.
    pub turns: Option<Vec<agentd_providers::ScriptedTurn>>,
    /// For `openai`: `max_tokens` or `max_completion_tokens` (default: the
    /// latter for api.openai.com, the former elsewhere; switched once if refused).
    pub max_tokens_field: Option<String>,
    /// For `ollama`: ask thinking models to think.
    pub think: Option<bool>,
    /// Retries of one request on timeouts, connection errors, 408/409/429/5xx (default 2:
    /// three attempts per profile before failing over).
    pub max_retries: Option<u32>,
    /// First backoff in ms (doubles each retry, with jitter; `Retry-After` wins). Default 500.
    pub retry_base_ms: Option<u64>,
}

/// Settings of an agent (`[agents.default]`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AgentConfig {
    pub system_prompt: Option<String>,
    /// A prompt template (by name, per tenant) rendered with the run's
    /// `arguments` as the system prompt, instead of `system_prompt`.
    pub system_template: Option<String>,
    pub max_steps: Option<u32>,
    pub model: Option<String>,
    /// Tool names or globs the agent may use (every tool when absent).
    pub tools: Option<Vec<String>>,
    /// Skill names or globs the agent may use (every skill when absent).
    pub skills: Option<Vec<String>>,
    /// How far shell commands reach (`[agents.default.sandbox]`; named
    /// agents without one use the default agent's).
    pub sandbox: Option<agentd_tools::SandboxSettings>,
    /// Which calls run, ask a person, or are refused (`[agents.default.policy]`).
    pub policy: Option<agentd_safety::PolicyConfig>,
    /// The same tool with the same arguments this many times in a row is
    /// refused with a corrective result (default 3; 0 turns it off).
    pub max_repeated_calls: Option<u32>,
    /// Wall-time budget of a run in seconds, time waiting for a person excluded (default 3600).
    pub max_wall_secs: Option<u64>,
    /// What happens to a non-idempotent call a crash interrupted: `report`
    /// (the model is told; the default) or `ask` (a person decides whether to run it again).
    pub on_interrupted: Option<OnInterrupted>,
    /// What the agent does, for people and for agents choosing whom to delegate to.
    pub description: Option<String>,
    /// Limits on delegation and tokens (`[agents.<name>.limits]`).
    pub limits: Option<agentd_core::AgentLimits>,
}

/// `on_interrupted` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnInterrupted {
    Report,
    Ask,
}

/// `[mcp]`: what sandboxed MCP servers may see.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct McpSettings {
    /// Directories visible read-only to sandboxed servers besides the system
    /// ones (`/usr`, `/etc`, `/opt`, …): where the operator installs servers
    /// that tenants may start.
    pub sandbox_read_paths: Vec<PathBuf>,
}

/// `[secrets]`: besides secret-looking environment variables (`*_KEY`,
/// `*TOKEN*`, `*SECRET*`, `*PASSWORD*`) and the providers' key variables,
/// the values of these variables are masked.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecretsConfig {
    #[serde(default)]
    pub env: Vec<String>,
    /// `AGENTD_SECRET_X = ["api.example.com"]`: the only hosts HTTP tools may send that secret to.
    #[serde(default)]
    pub http_hosts: BTreeMap<String, Vec<String>>,
}

/// Time-to-live of finished runs (`[retention]`), with per-organisation overrides.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RetentionConfig {
    /// Days to keep finished runs and their events; forever when absent.
    pub finished_runs_days: Option<u64>,
    /// How often the server prunes (default hourly).
    pub prune_interval_secs: Option<u64>,
    /// `[retention.tenants.<org>]` overrides.
    #[serde(default)]
    pub tenants: BTreeMap<String, TenantRetention>,
}

/// One organisation's retention.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TenantRetention {
    pub finished_runs_days: Option<u64>,
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("invalid config file {path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{0}")]
    Invalid(String),
}

impl Config {
    /// Loads `path`, or `./agentd.toml` when it exists, or the defaults.
    pub fn load(path: Option<&Path>) -> Result<Self, ConfigError> {
        let path = match path {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from("agentd.toml");
                if !p.exists() {
                    return Ok(Self::default());
                }
                p
            }
        };
        let text = std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
        let mut cfg = Self::parse(&text).map_err(|message| ConfigError::Parse { path: path.clone(), message })?;
        cfg.base_dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
        cfg.path = Some(path);
        Ok(cfg)
    }

    /// Parses the TOML text of a config file.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cfg: Self = toml::from_str(text).map_err(|e| e.to_string())?;
        for (name, a) in &cfg.agents {
            if let Some(p) = &a.policy {
                agentd_safety::Policy::new(p.clone()).map_err(|e| format!("agents.{name}.policy: {e}"))?;
            }
        }
        Ok(cfg)
    }

    /// The default agent's settings.
    pub fn default_agent(&self) -> AgentConfig {
        self.agents.get("default").cloned().unwrap_or_default()
    }

    /// Every configured MCP server: the `[mcp_servers]` tables plus the file.
    pub fn all_mcp_servers(&self) -> Result<BTreeMap<String, agentd_mcp::McpServerConfig>, ConfigError> {
        let mut all = self.mcp_servers.clone();
        if let Some(f) = &self.mcp_servers_file {
            let path = self.resolve_path(f);
            let text =
                std::fs::read_to_string(&path).map_err(|source| ConfigError::Read { path: path.clone(), source })?;
            #[derive(Deserialize)]
            struct File {
                #[serde(rename = "mcpServers")]
                mcp_servers: BTreeMap<String, agentd_mcp::McpServerConfig>,
            }
            let file: File = serde_json::from_str(&text)
                .map_err(|e| ConfigError::Parse { path: path.clone(), message: e.to_string() })?;
            all.extend(file.mcp_servers);
        }
        Ok(all)
    }

    /// Resolves a path from the file relative to the file's directory.
    pub fn resolve_path(&self, p: &Path) -> PathBuf {
        if p.is_absolute() { p.to_path_buf() } else { self.base_dir.join(p) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_example_file() {
        let text = include_str!("../../../agentd.example.toml");
        let cfg = Config::parse(text).expect("example parses");
        assert!(cfg.models.contains_key("fast"));
        assert_eq!(cfg.default_agent().max_steps, Some(20));
    }

    #[test]
    fn unknown_keys_are_ignored_and_bad_types_rejected() {
        assert!(Config::parse("future_key = 1\n[agents.default.policy]\nmode = \"ask\"").is_ok());
        assert!(Config::parse("[agents.default.policy]\ndeny = [\"shell(rm\"]").is_err());
        assert!(Config::parse("[agents.default.sandbox]\nmode = \"nope\"").is_err());
        assert!(Config::parse("max_body_bytes = \"lots\"").is_err());
    }
}
