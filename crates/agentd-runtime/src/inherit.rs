//! What a run hands down to the runs below it, delegated children and team
//! members alike: its whole policy (so the strictest mode, `high_risk` and
//! every deny / ask rule bind the child whatever the child allows itself),
//! the tools it may use, and the budget reserved for the child.

use agentd_core::Ceiling;

use crate::AgentSettings;

/// A child's ceiling: the parent's policy chain, its deny / ask rules and
/// strictest mode (kept for display), and the budget reserved at spawn.
pub(crate) fn child_ceiling(
    parent: &AgentSettings,
    parent_ceiling: Option<&Ceiling>,
    reserved: (Option<u64>, Option<f64>),
) -> Ceiling {
    let cfg = &parent.policy.config;
    let inherited = parent_ceiling.cloned().unwrap_or_default();
    let json = |c: &agentd_safety::PolicyConfig| serde_json::to_value(c).unwrap_or_default();
    let mut policies = vec![json(cfg)];
    policies.extend(parent.policy.ancestor_configs().iter().map(json));
    let mode = cfg.mode.strictest(
        inherited
            .mode
            .as_deref()
            .and_then(|m| serde_json::from_value(serde_json::json!(m)).ok())
            .unwrap_or(agentd_safety::Verdict::Allow),
    );
    Ceiling {
        deny: union(inherited.deny, &cfg.deny),
        ask: union(inherited.ask, &cfg.ask),
        mode: Some(mode.as_str().to_string()),
        policies,
        max_tokens: reserved.0,
        max_cost_usd: reserved.1,
        ..Default::default()
    }
}

/// `inherited` plus the rules not in it yet, as JSON.
fn union<T: serde::Serialize>(mut inherited: Vec<serde_json::Value>, mine: &[T]) -> Vec<serde_json::Value> {
    for r in mine {
        let v = serde_json::to_value(r).unwrap_or_default();
        if !inherited.contains(&v) {
            inherited.push(v);
        }
    }
    inherited
}

/// The policy a run executes under: its agent's, with the inherited deny /
/// ask rules and mode, bounded by its ancestors' policies. Anything of the
/// ceiling that does not read fails closed (every call denied).
pub(crate) fn bounded_policy(own: &agentd_safety::PolicyConfig, c: &Ceiling) -> Result<agentd_safety::Policy, String> {
    let mut cfg = own.clone();
    for (rules, into) in [(&c.deny, &mut cfg.deny), (&c.ask, &mut cfg.ask)] {
        for rule in rules {
            let r = serde_json::from_value(rule.clone()).map_err(|e| format!("inherited rule {rule}: {e}"))?;
            if !into.contains(&r) {
                into.push(r);
            }
        }
    }
    if let Some(m) = &c.mode {
        let v: agentd_safety::Verdict =
            serde_json::from_value(serde_json::json!(m)).map_err(|e| format!("inherited mode {m:?}: {e}"))?;
        cfg.mode = cfg.mode.strictest(v);
    }
    let ancestors: Vec<agentd_safety::PolicyConfig> = c
        .policies
        .iter()
        .map(|p| serde_json::from_value(p.clone()).map_err(|e| format!("inherited policy: {e}")))
        .collect::<Result<_, _>>()?;
    agentd_safety::Policy::new(cfg).and_then(|p| p.bounded_by(&ancestors)).map_err(|e| e.to_string())
}
