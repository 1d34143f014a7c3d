//! The settings of the agent a run executes: from the config, an AGENT.md
//! or a tenant's definition laid over the default agent's.

use std::sync::Arc;

use agentd_core::AgentLimits;

use crate::MAX_STEPS_LIMIT;
use crate::config::{self, Config};

/// Settings of the agent that runs execute.
#[derive(Debug, Clone)]
pub struct AgentSettings {
    /// `default` for `[agents.default]`.
    pub name: String,
    /// The model a run uses when it names none.
    pub model: Option<String>,
    pub system_prompt: String,
    /// A tenant's prompt template rendered as the system prompt (with the run's `arguments`).
    pub system_template: Option<String>,
    pub max_steps: u32,
    /// Tool names the agent may use; `None` means all registered tools.
    pub tools: Option<Vec<String>>,
    /// Skill names or globs the agent may use; `None` means all skills.
    pub skills: Option<Vec<String>>,
    /// The tool policy (allow / ask / deny).
    pub policy: Arc<agentd_safety::Policy>,
    /// The fence around shell commands.
    pub sandbox: agentd_tools::SandboxSettings,
    /// Identical calls in a row before the loop guard refuses one (0: off).
    pub max_repeated_calls: u32,
    /// Wall-time budget of a run, waiting for people excluded.
    pub max_wall_secs: u64,
    /// A non-idempotent call a crash interrupted asks a person whether to run
    /// it again (instead of telling the model its outcome is unknown).
    pub ask_on_interrupted: bool,
    /// What the agent does (shown to people and to agents that delegate).
    pub description: Option<String>,
    /// Delegation limits and the token budget.
    pub limits: AgentLimits,
    /// `system_prompt` is a template rendered with each run's `arguments` (AGENT.md bodies).
    pub render_prompt: bool,
    /// The AGENT.md the agent was loaded from.
    pub file: Option<std::path::PathBuf>,
}

/// A policy that denies everything: what a broken policy falls back to.
pub(crate) fn deny_all() -> agentd_safety::Policy {
    let c = agentd_safety::PolicyConfig { mode: agentd_safety::Verdict::Deny, ..Default::default() };
    agentd_safety::Policy::new(c).unwrap_or_else(|_| unreachable!("a policy without rules always parses"))
}

/// A policy from config; rules are checked when the config loads, so a
/// failure here means a bug, and the agent fails closed.
pub fn policy_from(c: &agentd_safety::PolicyConfig) -> Arc<agentd_safety::Policy> {
    Arc::new(agentd_safety::Policy::new(c.clone()).unwrap_or_else(|e| {
        tracing::error!(error = %e, "invalid policy; denying every tool call");
        deny_all()
    }))
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            name: "default".into(),
            model: None,
            system_prompt: "You are a helpful assistant. Use the tools you have when they help.".into(),
            system_template: None,
            max_steps: 20,
            tools: None,
            skills: None,
            policy: policy_from(&agentd_safety::PolicyConfig::default()),
            sandbox: agentd_tools::SandboxSettings::default(),
            max_repeated_calls: 3,
            max_wall_secs: 3600,
            ask_on_interrupted: false,
            description: None,
            limits: AgentLimits::default(),
            render_prompt: false,
            file: None,
        }
    }
}

impl AgentSettings {
    pub fn from_config(cfg: &Config) -> Self {
        Self::from_agent_config("default", &cfg.default_agent(), &Self::default())
    }

    /// Every `[agents.<name>]` of the config; fields a named agent leaves
    /// unset come from `[agents.default]`.
    pub fn all_from_config(cfg: &Config) -> Vec<Self> {
        let default = Self::from_config(cfg);
        let mut out = vec![default.clone()];
        for (name, a) in &cfg.agents {
            if name != "default" {
                out.push(Self::from_agent_config(name, a, &default));
            }
        }
        out
    }

    /// Settings of `[agents.<name>]`; unset fields come from `base`.
    pub fn from_agent_config(name: &str, a: &config::AgentConfig, base: &Self) -> Self {
        let a = a.clone();
        let d = base.clone();
        Self {
            name: name.into(),
            model: a.model,
            system_prompt: a.system_prompt.unwrap_or(d.system_prompt),
            system_template: a.system_template.or(d.system_template),
            max_steps: a.max_steps.unwrap_or(d.max_steps).clamp(1, MAX_STEPS_LIMIT),
            tools: a.tools,
            skills: a.skills,
            policy: a.policy.as_ref().map(policy_from).unwrap_or(d.policy),
            sandbox: a.sandbox.unwrap_or(d.sandbox),
            max_repeated_calls: a.max_repeated_calls.unwrap_or(d.max_repeated_calls),
            max_wall_secs: a.max_wall_secs.unwrap_or(d.max_wall_secs).max(1),
            ask_on_interrupted: a.on_interrupted.map_or(d.ask_on_interrupted, |o| o == config::OnInterrupted::Ask),
            description: a.description,
            limits: a.limits.unwrap_or(d.limits),
            render_prompt: false,
            file: None,
        }
    }

    /// Whether the agent may use this tool: its list names it exactly or by
    /// a glob (`mcp__github__*`); no list means every tool.
    pub fn allows(&self, name: &str) -> bool {
        matches_any(self.tools.as_deref(), name)
    }

    /// Whether the agent may use this skill (exact name or glob).
    pub fn allows_skill(&self, name: &str) -> bool {
        matches_any(self.skills.as_deref(), name)
    }
}

/// No list allows everything; otherwise an exact name or a glob must match.
fn matches_any(list: Option<&[String]>, name: &str) -> bool {
    list.is_none_or(|a| {
        a.iter()
            .any(|p| p == name || globset::Glob::new(p).map(|g| g.compile_matcher().is_match(name)).unwrap_or(false))
    })
}
