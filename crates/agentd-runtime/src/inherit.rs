//! What a run hands down to the runs below it, delegated children and team
//! members alike: its whole policy (so the strictest mode, `high_risk` and
//! every deny / ask rule bind the child whatever the child allows itself),
//! the tools it may use, and the budget reserved for the child.

use agentd_core::Ceiling;
use agentd_core::policy::RuleSpec;

use crate::AgentSettings;

/// What a parent grants one child beyond what every child inherits.
pub(crate) struct Grant {
    /// The tools the child may use: a delegated child gets the parent's,
    /// narrowed by its agent and its call; a team member `None`, its own
    /// agent's tools (the team run has no tools of its own to narrow by).
    pub(crate) tools: Option<Vec<String>>,
    /// Tokens and USD reserved for the child (and its descendants) at spawn.
    pub(crate) reserved: (Option<u64>, Option<f64>),
    /// Its wall time (its limits' `child_max_wall_secs`, at most its agent's).
    pub(crate) max_wall_secs: u64,
    /// The team and role, for a team's members and lead.
    pub(crate) team: Option<(String, String)>,
}

/// A child's ceiling, the same rule for delegated children and team
/// members: every ancestor policy binds it (the parent's policy chain, its
/// deny / ask rules and strictest mode), plus what the parent grants. Every
/// field is set here, none by omission.
pub(crate) fn child_ceiling(parent: &AgentSettings, parent_ceiling: Option<&Ceiling>, grant: Grant) -> Ceiling {
    let cfg = &parent.policy.config;
    let inherited = parent_ceiling.cloned().unwrap_or_default();
    let mut policies = vec![cfg.clone()];
    policies.extend(parent.policy.ancestor_configs().iter().cloned());
    let mode = cfg.mode.strictest(inherited.mode.unwrap_or_default());
    let (team, role) = grant.team.unzip();
    Ceiling {
        tools: grant.tools,
        deny: union(inherited.deny, &cfg.deny),
        ask: union(inherited.ask, &cfg.ask),
        mode: Some(mode),
        policies,
        max_tokens: grant.reserved.0,
        max_cost_usd: grant.reserved.1,
        max_wall_secs: Some(grant.max_wall_secs),
        team,
        role,
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

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_core::policy::{PolicyConfig, Verdict};
    use std::sync::Arc;

    fn parent() -> AgentSettings {
        let cfg = PolicyConfig {
            mode: Verdict::Ask,
            deny: vec!["shell(rm)".into()],
            ask: vec!["write_file".into()],
            ..Default::default()
        };
        AgentSettings { policy: Arc::new(agentd_safety::Policy::new(cfg).unwrap()), ..Default::default() }
    }

    fn grant(tools: Option<Vec<String>>, team: Option<(String, String)>) -> Grant {
        Grant { tools, reserved: (Some(500), Some(0.25)), max_wall_secs: 60, team }
    }

    /// A delegated child and a team member inherit the same things: the
    /// parent's deny / ask rules, its strictest mode, its whole policy chain,
    /// the grandparent's ceiling, the reserved budget and the wall time.
    #[test]
    fn delegates_and_team_members_inherit_alike() {
        let grandparent = Ceiling { deny: vec!["http_fetch".into()], mode: Some(Verdict::Deny), ..Default::default() };
        let delegate = child_ceiling(&parent(), Some(&grandparent), grant(Some(vec!["echo".into()]), None));
        let member = child_ceiling(&parent(), Some(&grandparent), grant(None, Some(("crew".into(), "critic".into()))));
        for c in [&delegate, &member] {
            assert_eq!(c.deny, vec![RuleSpec::from("http_fetch"), RuleSpec::from("shell(rm)")]);
            assert_eq!(c.ask, vec![RuleSpec::from("write_file")]);
            assert_eq!(c.mode, Some(Verdict::Deny), "the strictest mode up the tree");
            assert_eq!(c.policies.len(), 1);
            assert_eq!(c.policies[0].mode, Verdict::Ask);
            assert_eq!((c.max_tokens, c.max_cost_usd, c.max_wall_secs), (Some(500), Some(0.25), Some(60)));
        }
        assert_eq!(delegate.tools, Some(vec!["echo".to_string()]));
        assert_eq!((delegate.team.as_deref(), delegate.role.as_deref()), (None, None));
        assert_eq!(member.tools, None, "a member keeps its agent's tools, bounded by the policies");
        assert_eq!((member.team.as_deref(), member.role.as_deref()), (Some("crew"), Some("critic")));
        // And the policy a child runs under is bounded by all of it.
        let own = PolicyConfig::default();
        let p = bounded_policy(&own, &member).unwrap();
        assert_eq!(p.config.mode, Verdict::Deny);
        assert!(p.config.deny.contains(&RuleSpec::from("shell(rm)")));
    }
}
