//! The gate every tool call of a run passes before it may run: the loop
//! guard, then the policy (deny → ask / high risk → allow → mode), then,
//! for `ask`, a session-wide grant or a durable approval request.

use std::collections::HashMap;

use agentd_core::{EventKind, Tenant, ToolCall};
use agentd_safety::{ToolFacts, Verdict};
use agentd_tools::ToolOutput;

use crate::fold::{ApprovalState, Folded, call_signature};
use crate::{Runtime, ToolSet};

/// What happens to one call.
pub(crate) enum Plan {
    /// Run it, with these arguments (a person may have edited them); true
    /// when a person approved it (so it runs even if it was interrupted before).
    Run(ToolCall, bool),
    /// Do not run it; the model sees this result.
    Refuse { out: ToolOutput, status: agentd_core::ToolStatus },
    /// Ask a person first (an `approval.requested` event).
    Ask(Box<EventKind>),
    /// Still waiting for a person.
    Waiting,
}

/// What the journal already says about the calls of the current step.
#[derive(Default)]
pub(crate) struct Known {
    pub policy: HashMap<String, Verdict>,
    pub approvals: HashMap<String, ApprovalState>,
}

impl Known {
    pub(crate) fn from_fold(f: &Folded) -> Self {
        Self { policy: f.policy.clone(), approvals: f.approvals.clone() }
    }
}

/// The loop guard's memory: the last call's signature and its repeats.
pub(crate) struct LoopState {
    pub last: Option<(String, u32)>,
    pub max: u32,
}

impl LoopState {
    /// Counts this call; true if it is one identical call too many.
    fn over(&mut self, call: &ToolCall) -> Option<u32> {
        let sig = call_signature(&call.name, &call.arguments);
        let n = match self.last.take() {
            Some((last, n)) if last == sig => n + 1,
            _ => 1,
        };
        self.last = Some((sig, n));
        (self.max > 0 && n >= self.max).then_some(n)
    }
}

fn denied_by_person(reason: Option<&str>, expired: bool) -> ToolOutput {
    let why = reason.filter(|r| !r.trim().is_empty()).unwrap_or("no reason given");
    if expired {
        ToolOutput::error(format!("permission denied: nobody approved this call in time ({why}); do not retry it"))
    } else {
        ToolOutput::error(format!("permission denied: a person refused this call: {why}. Do not retry the same call."))
    }
}

impl Runtime {
    /// Decides each call; journals policy decisions (into `carry`).
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn gate(
        &self,
        t: &Tenant,
        run: &agentd_core::Run,
        set: &ToolSet,
        calls: &[ToolCall],
        known: &Known,
        loops: &mut LoopState,
        carry: &mut Vec<EventKind>,
    ) -> Result<Vec<Plan>, agentd_store::StoreError> {
        let mut plans = Vec::with_capacity(calls.len());
        for c in calls {
            if let Some(a) = known.approvals.get(&c.id) {
                plans.push(match &a.resolved {
                    None => Plan::Waiting,
                    Some((d, _, args)) if d.approves() => {
                        let mut call = c.clone();
                        if let Some(edited) = args.as_ref().or(a.edited.as_ref()) {
                            call.arguments = edited.clone();
                        }
                        // An approval covers one start: once the call started
                        // under it, a crash leaves it like any other started call.
                        Plan::Run(call, !a.consumed)
                    }
                    Some((d, reason, _)) => {
                        let expired = *d == agentd_core::Decision::Expired;
                        Plan::Refuse {
                            out: denied_by_person(reason.as_deref(), expired),
                            status: agentd_core::ToolStatus::Denied,
                        }
                    }
                });
                continue;
            }
            let decided = known.policy.get(&c.id).copied();
            if decided == Some(Verdict::Allow) {
                plans.push(Plan::Run(c.clone(), false));
                continue;
            }
            if decided == Some(Verdict::Deny) {
                let out = ToolOutput::error(format!("permission denied: the policy refuses `{}`", c.name));
                plans.push(Plan::Refuse { out, status: agentd_core::ToolStatus::Denied });
                continue;
            }
            if decided.is_none()
                && let Some(n) = loops.over(c)
            {
                let detail = format!("{} called {n} times in a row with the same arguments", c.name);
                carry.push(EventKind::RunGuarded { guard: "repeated_call".into(), detail: detail.clone() });
                let out = ToolOutput::error(format!(
                    "not run: {detail}. The result will not change; use the earlier result or try something different."
                ));
                plans.push(Plan::Refuse { out, status: agentd_core::ToolStatus::Blocked });
                continue;
            }
            // Unknown tools and bad arguments fail when run; nobody is asked about them.
            let Some((tool, Ok(()))) = self.lookup(set, &c.name, &c.arguments) else {
                plans.push(Plan::Run(c.clone(), false));
                continue;
            };
            let annotations = tool.annotations();
            let facts =
                ToolFacts { name: &c.name, source: set.source(self, &c.name), annotations: annotations.as_ref() };
            let mut d = set.agent.policy.evaluate(facts, &c.arguments);
            let sanitized = agentd_safety::sanitize(&c.name, &c.arguments);
            let key = agentd_safety::approval_key(&c.name, &sanitized);
            if d.decision == Verdict::Ask && self.store.session_grant(t, &run.session_id, &key).await? {
                d.decision = Verdict::Allow;
                d.rule = format!("approved_for_session ({})", d.rule);
            }
            carry.push(EventKind::ToolPolicy {
                call_id: c.id.clone(),
                name: c.name.clone(),
                decision: d.decision,
                rule: d.rule.clone(),
                risk: d.risk,
                reasons: d.reasons.clone(),
            });
            plans.push(match d.decision {
                Verdict::Allow => Plan::Run(c.clone(), false),
                Verdict::Deny => {
                    let why = if d.reasons.is_empty() { String::new() } else { format!(" ({})", d.reasons.join("; ")) };
                    let out = ToolOutput::error(format!("permission denied: {}{why}", d.rule));
                    Plan::Refuse { out, status: agentd_core::ToolStatus::Denied }
                }
                Verdict::Ask => {
                    let expires_at = expiry(set);
                    Plan::Ask(Box::new(EventKind::ApprovalRequested {
                        approval_id: agentd_core::new_id("apr"),
                        call_id: c.id.clone(),
                        tool: c.name.clone(),
                        arguments_sanitized: sanitized,
                        approval_key: key,
                        risk: d.risk,
                        reasons: d.reasons,
                        rule: d.rule,
                        expires_at,
                    }))
                }
            });
        }
        Ok(plans)
    }

    /// An approval request for re-running a call whose outcome a crash made unknown.
    pub(crate) fn interrupted_approval(&self, set: &ToolSet, c: &ToolCall, carry: &mut Vec<EventKind>) -> EventKind {
        let a = self.lookup(set, &c.name, &c.arguments).map(|(tool, _)| {
            let annotations = tool.annotations();
            let facts =
                ToolFacts { name: &c.name, source: set.source(self, &c.name), annotations: annotations.as_ref() };
            agentd_safety::assess(facts, &c.arguments)
        });
        let mut a = a.unwrap_or_default();
        a.reasons.insert(0, "the run stopped while this call was executing; its outcome is unknown".into());
        let rule = "interrupted".to_string();
        carry.push(EventKind::ToolPolicy {
            call_id: c.id.clone(),
            name: c.name.clone(),
            decision: Verdict::Ask,
            rule: rule.clone(),
            risk: a.risk,
            reasons: a.reasons.clone(),
        });
        let sanitized = agentd_safety::sanitize(&c.name, &c.arguments);
        EventKind::ApprovalRequested {
            approval_id: agentd_core::new_id("apr"),
            call_id: c.id.clone(),
            tool: c.name.clone(),
            approval_key: agentd_safety::approval_key(&c.name, &sanitized),
            arguments_sanitized: sanitized,
            risk: a.risk,
            reasons: a.reasons,
            rule,
            expires_at: expiry(set),
        }
    }
}

/// When a new approval expires, per the agent's policy.
fn expiry(set: &ToolSet) -> Option<String> {
    set.agent.policy.config.approval_timeout_secs.map(|s| {
        let at = chrono::Utc::now() + chrono::Duration::seconds(s.min(365 * 86_400) as i64);
        at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    })
}
