//! What a run hands down to the runs below it, delegated children and team
//! members alike: its whole policy (so the strictest mode, `high_risk` and
//! every deny / ask rule bind the child whatever the child allows itself),
//! the tools it may use, and the budget reserved for the child.

use agentd_core::Ceiling;
use agentd_core::policy::RuleSpec;

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
    let mut policies = vec![cfg.clone()];
    policies.extend(parent.policy.ancestor_configs().iter().cloned());
    let mode = cfg.mode.strictest(inherited.mode.unwrap_or_default());
    Ceiling {
        deny: union(inherited.deny, &cfg.deny),
        ask: union(inherited.ask, &cfg.ask),
        mode: Some(mode),
        policies,
        max_tokens: reserved.0,
        max_cost_usd: reserved.1,
        ..Default::default()
    }
}

/// `inherited` plus the rules not in it yet.
fn union(mut inherited: Vec<RuleSpec>, mine: &[RuleSpec]) -> Vec<RuleSpec> {
    for r in mine {
        if !inherited.contains(r) {
            inherited.push(r.clone());
        }
    }
    inherited
}

/// The policy a run executes under: its agent's, with the inherited deny /
/// ask rules and mode, bounded by its ancestors' policies. A rule of the
/// ceiling that does not compile fails closed (every call denied).
pub(crate) fn bounded_policy(own: &agentd_safety::PolicyConfig, c: &Ceiling) -> Result<agentd_safety::Policy, String> {
    let mut cfg = own.clone();
    cfg.deny = union(std::mem::take(&mut cfg.deny), &c.deny);
    cfg.ask = union(std::mem::take(&mut cfg.ask), &c.ask);
    if let Some(m) = c.mode {
        cfg.mode = cfg.mode.strictest(m);
    }
    agentd_safety::Policy::new(cfg).and_then(|p| p.bounded_by(&c.policies)).map_err(|e| e.to_string())
}
