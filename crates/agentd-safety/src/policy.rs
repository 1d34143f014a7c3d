//! Tool policy: deny rules → rules that force `ask` (and high risk) →
//! allow rules → the default mode. Rules name tools with globs and, in
//! parentheses, an argv prefix for `shell` or a path prefix for file tools:
//! `"mcp__github__*"`, `"shell(git status)"`, `"write_file(docs/)"`.

pub use agentd_core::policy::{PolicyConfig, RuleSpec, Verdict};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::guard::{self, Assessment, Risk, ToolFacts};
use crate::shellparse;

/// One rule, parsed.
#[derive(Debug, Clone)]
struct Rule {
    text: String,
    tool: globset::GlobMatcher,
    /// argv prefix (shell) or path prefix (file tools).
    args: Option<Vec<String>>,
}

/// A policy ready to evaluate.
#[derive(Debug, Clone)]
pub struct Policy {
    pub config: PolicyConfig,
    allow: Vec<Rule>,
    ask: Vec<Rule>,
    deny: Vec<Rule>,
    /// The policies of the runs above this one in a tree (delegating
    /// parents, a team's run): a call gets the strictest of every verdict,
    /// so nothing a child allows itself escapes what an ancestor asks or denies.
    ancestors: Vec<Policy>,
}

#[derive(Debug, thiserror::Error)]
#[error("bad policy rule {rule:?}: {reason}")]
pub struct RuleError {
    pub rule: String,
    pub reason: String,
}

fn parse_rule(spec: &RuleSpec) -> Result<Rule, RuleError> {
    let text = spec.text();
    let text = text.as_str();
    let err = |reason: &str| RuleError { rule: text.to_string(), reason: reason.to_string() };
    let (tool, args) = match text.split_once('(') {
        Some((tool, rest)) => {
            let inner = rest.trim_end().strip_suffix(')').ok_or_else(|| err("missing closing parenthesis"))?;
            // `git push:*`, `git push *` and `git push` all mean the argv prefix `git push`.
            let inner = inner.trim();
            let inner = inner.strip_suffix(":*").or_else(|| inner.strip_suffix('*')).unwrap_or(inner).trim_end();
            let inner = inner.strip_suffix(':').unwrap_or(inner);
            let script = shellparse::parse(inner).map_err(|e| err(&e.to_string()))?;
            let words: Vec<String> = script
                .pipelines
                .iter()
                .flat_map(|p| p.commands.iter())
                .flat_map(|c| c.argv.iter().map(|w| w.text.clone()))
                .collect();
            if words.is_empty() {
                return Err(err("empty argument prefix"));
            }
            (tool.trim(), Some(words))
        }
        None => (text.trim(), None),
    };
    if tool.is_empty() {
        return Err(err("empty tool name"));
    }
    // Rules written for other agents' shell tool mean ours.
    let tool = if matches!(tool, "Bash" | "bash" | "Shell" | "sh") { "shell" } else { tool };
    let glob = globset::Glob::new(tool).map_err(|e| err(&e.to_string()))?;
    Ok(Rule { text: text.to_string(), tool: glob.compile_matcher(), args })
}

/// The outcome for one call, as journaled in `tool.policy`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decision {
    pub decision: Verdict,
    /// Which rule decided: `deny: shell(rm)`, `high_risk`, `mode: allow`, …
    pub rule: String,
    pub risk: Risk,
    pub reasons: Vec<String>,
}

impl Policy {
    pub fn new(config: PolicyConfig) -> Result<Self, RuleError> {
        let parse = |v: &[RuleSpec]| v.iter().map(parse_rule).collect::<Result<Vec<_>, _>>();
        Ok(Self {
            allow: parse(&config.allow)?,
            ask: parse(&config.ask)?,
            deny: parse(&config.deny)?,
            config,
            ancestors: vec![],
        })
    }

    /// This policy under its ancestors' (nearest first): each call is
    /// decided by all of them and the strictest verdict wins.
    pub fn bounded_by(mut self, ancestors: &[PolicyConfig]) -> Result<Self, RuleError> {
        for a in ancestors {
            self.ancestors.push(Policy::new(a.clone())?);
        }
        Ok(self)
    }

    /// The configs this policy is bounded by, nearest first.
    pub fn ancestor_configs(&self) -> Vec<PolicyConfig> {
        self.ancestors.iter().map(|p| p.config.clone()).collect()
    }

    /// A policy with `extra` layered on top: its mode, allow and ask rules
    /// replace ours, while our deny rules stay (a tenant can narrow, not widen, what the operator forbids).
    pub fn layered(&self, extra: &PolicyConfig) -> Result<Self, RuleError> {
        let mut c = extra.clone();
        for d in &self.config.deny {
            if !c.deny.contains(d) {
                c.deny.push(d.clone());
            }
        }
        if self.config.high_risk != Verdict::Allow && c.high_risk == Verdict::Allow {
            c.high_risk = self.config.high_risk;
        }
        if c.approval_timeout_secs.is_none() {
            c.approval_timeout_secs = self.config.approval_timeout_secs;
        }
        Policy::new(c)
    }

    /// Decides one call: its own verdict, made stricter by any ancestor's.
    pub fn evaluate(&self, tool: ToolFacts<'_>, args: &Value) -> Decision {
        let mut d = self.evaluate_own(tool, args);
        for (i, a) in self.ancestors.iter().enumerate() {
            let theirs = a.evaluate_own(tool, args);
            if theirs.decision > d.decision {
                d = Decision { rule: format!("inherited from ancestor {}: {}", i + 1, theirs.rule), ..theirs };
            }
        }
        d
    }

    fn evaluate_own(&self, tool: ToolFacts<'_>, args: &Value) -> Decision {
        let a = guard::assess(tool, args);
        let commands =
            (tool.source == agentd_core::ToolSource::Builtin && tool.name == "shell").then(|| shell_commands(args));
        let any = |rules: &[Rule]| {
            rules.iter().find(|r| matches_any(r, tool.name, args, commands.as_deref())).map(|r| r.text.clone())
        };
        let done = |decision: Verdict, rule: String, a: Assessment| Decision {
            decision,
            rule,
            risk: a.risk,
            reasons: a.reasons,
        };
        if let Some(r) = any(&self.deny) {
            return done(Verdict::Deny, format!("deny: {r}"), a);
        }
        if let Some(r) = any(&self.ask) {
            return done(Verdict::Ask, format!("ask: {r}"), a);
        }
        if a.risk == Risk::High && self.config.high_risk != Verdict::Allow {
            return done(self.config.high_risk, "high_risk".into(), a);
        }
        if let Some(r) = self.allowed_by(tool.name, args, commands.as_deref()) {
            return done(Verdict::Allow, format!("allow: {r}"), a);
        }
        done(self.config.mode, format!("mode: {}", self.config.mode.as_str()), a)
    }

    /// An allow rule covering the whole call: for shell, every command in it.
    fn allowed_by(&self, tool: &str, args: &Value, commands: Option<&[Vec<String>]>) -> Option<String> {
        match commands {
            Some(cmds) if !cmds.is_empty() => {
                let mut used = vec![];
                for c in cmds {
                    let r = self
                        .allow
                        .iter()
                        .find(|r| r.tool.is_match(tool) && r.args.as_ref().is_none_or(|p| prefix(c, p)))?;
                    if !used.contains(&r.text) {
                        used.push(r.text.clone());
                    }
                }
                Some(used.join(", "))
            }
            _ => self.allow.iter().find(|r| matches_any(r, tool, args, None)).map(|r| r.text.clone()),
        }
    }
}

fn prefix(argv: &[String], p: &[String]) -> bool {
    argv.len() >= p.len()
        && argv
            .iter()
            .zip(p)
            .enumerate()
            .all(|(i, (a, b))| if i == 0 { a == b || a.rsplit('/').next() == Some(b.as_str()) } else { a == b })
}

fn matches_any(r: &Rule, tool: &str, args: &Value, commands: Option<&[Vec<String>]>) -> bool {
    if !r.tool.is_match(tool) {
        return false;
    }
    let Some(p) = &r.args else { return true };
    match commands {
        Some(cmds) => cmds.iter().any(|c| prefix(c, p)),
        None => {
            let path = args["path"].as_str().unwrap_or_default().trim_start_matches("./");
            p.len() == 1 && path.starts_with(p[0].trim_start_matches("./"))
        }
    }
}

/// Every simple command a shell call would run (wrappers removed, `sh -c`
/// strings and substitutions opened), as argv lists.
pub fn shell_commands(args: &Value) -> Vec<Vec<String>> {
    let mut out = vec![];
    if let Some(cmd) = args["command"].as_str() {
        collect(cmd, 0, &mut out);
    } else if let Some(argv) = args["argv"].as_array() {
        let v: Vec<String> = argv.iter().map(|a| a.as_str().unwrap_or_default().to_string()).collect();
        push_unwrapped(v, 0, &mut out);
    }
    out
}

fn collect(src: &str, depth: usize, out: &mut Vec<Vec<String>>) {
    if depth > 6 {
        return;
    }
    let Ok(script) = shellparse::parse(src) else {
        out.push(vec![src.to_string()]);
        return;
    };
    for c in script.pipelines.iter().flat_map(|p| p.commands.iter()) {
        let argv: Vec<String> = c.argv.iter().map(|w| w.text.clone()).collect();
        if !argv.is_empty() {
            push_unwrapped(argv, depth, out);
        }
    }
    for s in &script.substitutions {
        collect(s, depth + 1, out);
    }
}

fn push_unwrapped(argv: Vec<String>, depth: usize, out: &mut Vec<Vec<String>>) {
    let wrappers =
        ["sudo", "doas", "env", "nice", "nohup", "time", "command", "exec", "timeout", "xargs", "stdbuf", "setsid"];
    let name = |s: &str| s.rsplit('/').next().unwrap_or(s).to_string();
    let mut i = 0;
    while i < argv.len() && wrappers.contains(&name(&argv[i]).as_str()) {
        let w = name(&argv[i]);
        i += 1;
        while i < argv.len() && (argv[i].starts_with('-') || (w == "env" && argv[i].contains('='))) {
            i += 1;
        }
        if w == "timeout" && i < argv.len() {
            i += 1;
        }
    }
    if i > 0 && i < argv.len() {
        out.push(argv.clone());
    }
    let inner: Vec<String> = argv[i.min(argv.len())..].to_vec();
    if inner.is_empty() {
        out.push(argv);
        return;
    }
    let prog = name(&inner[0]);
    if prog == "find" {
        // `find … -exec cmd {} +` runs cmd: rules see it as a command of its own.
        let mut rest = &inner[1..];
        while let Some(pos) = rest.iter().position(|a| matches!(a.as_str(), "-exec" | "-execdir" | "-ok" | "-okdir")) {
            let cmd: Vec<String> = rest[pos + 1..].iter().take_while(|a| *a != ";" && *a != "+").cloned().collect();
            rest = &rest[(pos + 1 + cmd.len()).min(rest.len())..];
            if !cmd.is_empty() {
                push_unwrapped(cmd, depth + 1, out);
            }
        }
    }
    if ["sh", "bash", "zsh", "dash", "ksh"].contains(&prog.as_str())
        && let Some(pos) = inner.iter().position(|a| a == "-c")
        && let Some(script) = inner.get(pos + 1)
    {
        out.push(inner.clone());
        collect(script, depth + 1, out);
        return;
    }
    out.push(inner);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn builtin(name: &str) -> ToolFacts<'_> {
        ToolFacts { name, source: agentd_core::ToolSource::Builtin, annotations: None }
    }

    fn policy(toml_like: serde_json::Value) -> Policy {
        Policy::new(serde_json::from_value(toml_like).unwrap()).unwrap()
    }

    #[test]
    fn default_allows_but_asks_for_high_risk() {
        let p = Policy::new(PolicyConfig::default()).unwrap();
        let d = p.evaluate(builtin("echo"), &json!({"text": "hi"}));
        assert_eq!((d.decision, d.rule.as_str()), (Verdict::Allow, "mode: allow"));
        let d = p.evaluate(builtin("shell"), &json!({"command": "rm -rf build"}));
        assert_eq!((d.decision, d.rule.as_str(), d.risk), (Verdict::Ask, "high_risk", Risk::High));
    }

    #[test]
    fn shell_allow_rules_must_cover_every_command() {
        let p = policy(json!({"mode": "ask", "allow": ["shell(git status)", "shell(ls)", "read_file"]}));
        let eval = |cmd: &str| p.evaluate(builtin("shell"), &json!({"command": cmd})).decision;
        assert_eq!(eval("git status"), Verdict::Allow);
        assert_eq!(eval("git status && ls -la"), Verdict::Allow);
        assert_eq!(eval("git status; touch x"), Verdict::Ask);
        assert_eq!(eval("git statusx"), Verdict::Ask);
        assert_eq!(eval("ls $(touch x)"), Verdict::Ask);
        assert_eq!(p.evaluate(builtin("read_file"), &json!({"path": "a"})).decision, Verdict::Allow);
        assert_eq!(p.evaluate(builtin("write_file"), &json!({"path": "a", "content": ""})).decision, Verdict::Ask);
    }

    #[test]
    fn deny_rules_see_through_wrappers_and_nested_shells() {
        let p = policy(json!({"deny": ["shell(rm)", "mcp__*"], "allow": ["shell"]}));
        for cmd in
            ["rm a", "sudo rm a", "sh -c 'rm a'", "echo $(rm a)", "/bin/rm a", "timeout 5 rm a", "find . -exec rm {} +"]
        {
            let d = p.evaluate(builtin("shell"), &json!({"command": cmd}));
            assert_eq!((d.decision, d.rule.as_str()), (Verdict::Deny, "deny: shell(rm)"), "{cmd}");
        }
        let d = p.evaluate(builtin("shell"), &json!({"argv": ["rm", "a"]}));
        assert_eq!(d.decision, Verdict::Deny);
        let mcp = ToolFacts { name: "mcp__fs__write", source: agentd_core::ToolSource::Mcp, annotations: None };
        assert_eq!(p.evaluate(mcp, &json!({})).decision, Verdict::Deny);
        assert_eq!(p.evaluate(builtin("shell"), &json!({"command": "ls"})).decision, Verdict::Allow);
    }

    #[test]
    fn rules_written_other_ways_mean_the_same() {
        let p = policy(json!({
            "mode": "ask",
            "allow": ["Bash(git status:*)", {"tool": "shell", "command": "ls"}, {"tool": "write_file", "path": "docs/"}],
            "deny": [{"tool": "shell", "argv": ["rm"]}],
            "some_future_key": true,
        }));
        let eval = |cmd: &str| p.evaluate(builtin("shell"), &json!({"command": cmd})).decision;
        assert_eq!(eval("git status --short"), Verdict::Allow);
        assert_eq!(eval("ls -la"), Verdict::Allow);
        assert_eq!(eval("rm x"), Verdict::Deny);
        let d = p.evaluate(builtin("write_file"), &json!({"path": "docs/a.md", "content": ""}));
        assert_eq!((d.decision, d.rule.as_str()), (Verdict::Allow, "allow: write_file(docs/)"));
    }

    #[test]
    fn high_risk_setting_and_tenant_layers() {
        let p = policy(json!({"high_risk": "deny", "deny": ["http_fetch"]}));
        assert_eq!(p.evaluate(builtin("shell"), &json!({"command": "sudo id"})).decision, Verdict::Deny);
        let tenant =
            p.layered(&serde_json::from_value(json!({"mode": "allow", "high_risk": "allow"})).unwrap()).unwrap();
        assert_eq!(tenant.evaluate(builtin("http_fetch"), &json!({"url": "https://x"})).decision, Verdict::Deny);
        assert_eq!(tenant.evaluate(builtin("shell"), &json!({"command": "sudo id"})).decision, Verdict::Deny);
        let mcp = ToolFacts {
            name: "mcp__x__drop",
            source: agentd_core::ToolSource::Mcp,
            annotations: Some(&json!({"destructiveHint": true})),
        };
        assert_eq!(Policy::new(PolicyConfig::default()).unwrap().evaluate(mcp, &json!({})).decision, Verdict::Ask);
        assert!(Policy::new(serde_json::from_value(json!({"deny": ["shell(rm"]})).unwrap()).is_err());
    }

    #[test]
    fn sanitized_requests_hide_values_and_keys_are_stable() {
        let s = crate::sanitize("shell", &json!({"command": "TOKEN=hunter2 curl -s https://x | jq ."}));
        assert_eq!(s["env"], json!(["TOKEN"]));
        assert!(!s.to_string().contains("hunter2"));
        assert_eq!(s["commands"][0], json!(["curl", "-s", "https://x"]));
        let w = crate::sanitize("write_file", &json!({"path": "a.txt", "content": "secret body"}));
        assert!(!w.to_string().contains("secret body"));
        assert_eq!(w["size"], 11);
        let k1 = crate::approval_key("write_file", &json!({"a": 1, "b": {"y": 2, "x": 1}}));
        let k2 = crate::approval_key("write_file", &json!({"b": {"x": 1, "y": 2}, "a": 1}));
        assert_eq!(k1, k2);
        assert_eq!(k1.len(), 64);
        assert!(k1.chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_ne!(k1, crate::approval_key("edit_file", &json!({"a": 1, "b": {"y": 2, "x": 1}})));
        // What differs in substitutions, here-documents, redirections or
        // assignment values gives a different approval key (a session grant
        // for one never covers the other).
        let key = |c: &str| {
            let s = crate::sanitize("shell", &json!({"command": c}));
            assert!(!s.to_string().contains("hunter2"), "{s}");
            crate::approval_key("shell", &s)
        };
        let pairs = [
            ("echo \"$(date)\"", "echo \"$(rm -rf ~)\""),
            ("python3 <<EOF\nprint(1)\nEOF", "python3 <<EOF\nimport os; os.system('x')\nEOF"),
            ("echo x > a.txt", "echo x > /etc/passwd"),
            ("A=hunter2 env", "A=hunter3 env"),
        ];
        for (a, b) in pairs {
            assert_ne!(key(a), key(b), "{a} vs {b}");
        }
        let shown = crate::sanitize("shell", &json!({"command": "python3 <<EOF\nprint(1)\nEOF"}));
        assert!(shown["redirects"][0].as_str().unwrap().contains("here-document"), "{shown}");
    }

    #[test]
    fn an_ancestors_mode_and_high_risk_bind_a_child_whatever_it_allows_itself() {
        // Hardening finding 10: the child's own allow rules beat the parent's `mode: ask`.
        let parent: PolicyConfig =
            serde_json::from_value(json!({"mode": "ask", "allow": ["shell(ls)"], "high_risk": "deny"})).unwrap();
        let child = policy(json!({"mode": "allow", "allow": ["shell"], "high_risk": "allow"}))
            .bounded_by(std::slice::from_ref(&parent))
            .unwrap();
        let eval = |cmd: &str| child.evaluate(builtin("shell"), &json!({"command": cmd}));
        assert_eq!(eval("ls").decision, Verdict::Allow, "both allow it");
        let d = eval("cat notes.txt");
        assert_eq!(d.decision, Verdict::Ask, "{d:?}");
        assert!(d.rule.starts_with("inherited"), "{}", d.rule);
        assert_eq!(eval("rm -rf /srv").decision, Verdict::Deny, "the parent's high_risk: deny");
        assert_eq!(child.ancestor_configs(), vec![parent]);
    }
}
