//! Tool policy as data: the verdicts, the rules as written and an agent's
//! policy settings, shared by the config, the journal (a child's ceiling,
//! `tool.policy`) and the API. `agentd-safety` compiles and applies them.

use serde::{Deserialize, Serialize};

/// How much harm a call could do.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Risk {
    #[default]
    Low,
    Medium,
    High,
}

impl Risk {
    pub fn as_str(&self) -> &'static str {
        match self {
            Risk::Low => "low",
            Risk::Medium => "medium",
            Risk::High => "high",
        }
    }

    /// A risk by its spelling.
    pub fn parse(s: &str) -> Option<Risk> {
        [Risk::Low, Risk::Medium, Risk::High].into_iter().find(|r| r.as_str() == s)
    }
}

/// What happens to a call.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    #[default]
    Allow,
    Ask,
    Deny,
}

impl Verdict {
    /// The stricter of two verdicts (`deny` > `ask` > `allow`: the order of the variants).
    pub fn strictest(self, other: Verdict) -> Verdict {
        self.max(other)
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Verdict::Allow => "allow",
            Verdict::Ask => "ask",
            Verdict::Deny => "deny",
        }
    }
}

/// One rule as written in config: `"shell(git push)"`, or a table
/// `{ tool = "shell", command = "git push" }` / `{ tool = "shell", argv = [...] }`
/// / `{ tool = "write_file", path = "docs/" }`.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RuleSpec {
    Text(String),
    Table {
        tool: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        command: Option<String>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        argv: Option<Vec<String>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        path: Option<String>,
    },
}

impl RuleSpec {
    /// The rule in its text form (as journaled).
    pub fn text(&self) -> String {
        match self {
            RuleSpec::Text(t) => t.clone(),
            RuleSpec::Table { tool, command, argv, path } => {
                let args = command.clone().or_else(|| argv.as_ref().map(|a| a.join(" "))).or_else(|| path.clone());
                match args {
                    Some(a) => format!("{tool}({a})"),
                    None => tool.clone(),
                }
            }
        }
    }
}

impl From<&str> for RuleSpec {
    fn from(s: &str) -> Self {
        RuleSpec::Text(s.to_string())
    }
}

/// `[agents.<name>.policy]`. Unknown keys are ignored, like the rest of the file.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PolicyConfig {
    /// What calls no rule matches get.
    #[serde(default)]
    pub mode: Verdict,
    #[serde(default)]
    pub allow: Vec<RuleSpec>,
    #[serde(default)]
    pub ask: Vec<RuleSpec>,
    #[serde(default)]
    pub deny: Vec<RuleSpec>,
    /// What calls the guard rates high risk get when no deny or ask rule
    /// matched (before allow rules): `ask` unless configured otherwise.
    #[serde(default = "ask")]
    pub high_risk: Verdict,
    /// Seconds a pending approval waits before it resolves as denied (forever when absent).
    #[serde(default)]
    pub approval_timeout_secs: Option<u64>,
}

fn ask() -> Verdict {
    Verdict::Ask
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            mode: Verdict::Allow,
            allow: vec![],
            ask: vec![],
            deny: vec![],
            high_risk: Verdict::Ask,
            approval_timeout_secs: None,
        }
    }
}
