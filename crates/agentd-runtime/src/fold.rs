//! Rebuilding where a run stands from its journal, so any node can go on
//! with it after a crash or a lost lease.

use std::collections::{HashMap, HashSet};

use agentd_core::{EventKind, EventType, StoredEvent, ToolCall};

/// What the journal says about a run.
#[derive(Debug, Default)]
pub struct Folded {
    /// `run.started` was written.
    pub started: bool,
    /// The last step that was started, and whether it completed.
    pub step: u32,
    pub step_completed: bool,
    /// The tool calls of the last step's `llm.completed` (empty if the model
    /// answered without tools or has not answered yet).
    pub calls: Vec<ToolCall>,
    /// Whether the last started step has its `llm.completed`.
    pub answered: bool,
    /// Calls of the last step that have a `tool.result`.
    pub results: HashSet<String>,
    /// Calls of the last step that have a `tool.started`.
    pub tool_started: HashSet<String>,
    /// `input.queued` messages not yet taken in, as (seq, input).
    pub pending_inputs: Vec<(i64, String)>,
    /// Text of the last model answer (for an answered final step).
    pub last_text: String,
    pub last_seq: i64,
    /// Policy decisions on the last step's calls: call id → decision.
    pub policy: HashMap<String, agentd_core::policy::Verdict>,
    /// Approvals of the last step's calls, by call id.
    pub approvals: HashMap<String, ApprovalState>,
    /// How often a person refused each approval key in this run.
    pub denials: HashMap<String, u32>,
    /// Signature of the last tool call and how many identical calls came in a row.
    pub last_call: Option<(String, u32)>,
    /// Milliseconds the run executed so far; time waiting for people is excluded.
    pub active_ms: i64,
    /// Images sent with the run's input.
    pub input_images: Vec<agentd_core::ContentPart>,
    /// `tool_choice` for the first model call.
    pub first_tool_choice: Option<serde_json::Value>,
    /// The system prompt rendered for this run (from the agent's template).
    pub system: Option<String>,
    /// The run's children and what it inherited from its parent.
    pub tree: crate::delegation::Tree,
    /// Set for a team run.
    pub team: Option<agentd_core::TeamSpec>,
}

/// An approval as the journal tells it.
#[derive(Debug, Clone, Default)]
pub struct ApprovalState {
    pub approval_key: String,
    /// `(decision, reason, edited arguments)` once answered.
    pub resolved: Option<(agentd_core::Decision, Option<String>, Option<serde_json::Value>)>,
    /// A `tool.started` followed the answer: the approval was used up, and a
    /// crash after it makes the call's outcome unknown like any other start.
    pub consumed: bool,
    /// Arguments a person edited in an earlier answer for this call: what
    /// runs, even when a later request (after a crash) is approved as is.
    pub edited: Option<serde_json::Value>,
}

/// Identifies "the same call" for the loop guard: name + canonical arguments.
pub(crate) fn call_signature(name: &str, args: &serde_json::Value) -> String {
    format!("{name}:{}", agentd_safety::canonical_json(args))
}

fn millis(ts: &str) -> Option<i64> {
    chrono::DateTime::parse_from_rfc3339(ts).ok().map(|d| d.timestamp_millis())
}

impl Folded {
    /// Folds a run's events in order.
    pub fn from_events(events: &[StoredEvent]) -> Self {
        let mut f = Folded::default();
        let mut steered: HashSet<i64> = HashSet::new();
        let mut spawn_calls: HashSet<String> = HashSet::new();
        // Active time: segments open at run.started / run.resumed and close
        // at the last event before a pause (approval.requested) or a crash.
        let (mut seg_start, mut last_ts): (Option<i64>, Option<i64>) = (None, None);
        for ev in events {
            f.last_seq = ev.seq;
            let ts = millis(&ev.created_at);
            match ev.event_type() {
                Some(EventType::RunStarted | EventType::RunResumed) => {
                    if let (Some(s), Some(l)) = (seg_start, last_ts) {
                        f.active_ms += (l - s).max(0);
                    }
                    seg_start = ts;
                }
                Some(EventType::ApprovalRequested | EventType::ChildrenWaiting) => {
                    if let (Some(s), Some(t)) = (seg_start.take(), ts) {
                        f.active_ms += (t - s).max(0);
                    }
                }
                _ => {}
            }
            last_ts = ts.or(last_ts);
            let Ok(kind) = EventKind::from_parts(&ev.type_name, ev.data.clone()) else { continue };
            match kind {
                EventKind::RunCreated { images, tool_choice, system, ceiling, team, .. } => {
                    f.team = team;
                    f.input_images = images;
                    f.first_tool_choice = tool_choice;
                    f.system = system;
                    f.tree.ceiling = ceiling;
                }
                EventKind::ChildSpawned { call_id, child_run_id, held, reserved_tokens, reserved_usd, .. } => {
                    f.tree.reserved.insert(child_run_id.clone(), (reserved_tokens, reserved_usd));
                    if held {
                        f.tree.held.insert(child_run_id.clone());
                    }
                    if spawn_calls.contains(&call_id) {
                        f.tree.spawn_children.push(child_run_id.clone());
                    }
                    f.tree.spawned.insert(call_id, child_run_id);
                }
                EventKind::RunStarted { .. } => f.started = true,
                EventKind::StepStarted { step } => {
                    if step != f.step {
                        f.calls.clear();
                        f.results.clear();
                        f.tool_started.clear();
                        f.policy.clear();
                        f.approvals.clear();
                        f.answered = false;
                    }
                    f.step = step;
                    f.step_completed = false;
                }
                EventKind::LlmCompleted { step, message, .. } if step == f.step => {
                    f.answered = true;
                    f.last_text = message.text_content();
                    f.calls = message.tool_calls;
                }
                EventKind::ToolCalled { name, arguments, call_id } => {
                    if name == "spawn" {
                        spawn_calls.insert(call_id);
                    }
                    let sig = call_signature(&name, &arguments);
                    f.last_call = match f.last_call.take() {
                        Some((last, n)) if last == sig => Some((last, n + 1)),
                        _ => Some((sig, 1)),
                    };
                }
                EventKind::ToolPolicy { call_id, decision, .. } => {
                    f.policy.insert(call_id, decision);
                }
                EventKind::ApprovalRequested { call_id, approval_key, .. } => {
                    let edited = f.approvals.get(&call_id).and_then(|a| a.edited.clone());
                    f.approvals.insert(call_id, ApprovalState { approval_key, edited, ..Default::default() });
                }
                EventKind::ApprovalResolved { call_id, approval_key, decision, reason, arguments, .. } => {
                    if !decision.approves() {
                        *f.denials.entry(approval_key.clone()).or_default() += 1;
                    }
                    let a = f
                        .approvals
                        .entry(call_id)
                        .or_insert_with(|| ApprovalState { approval_key, ..Default::default() });
                    if arguments.is_some() {
                        a.edited = arguments.clone();
                    }
                    a.resolved = Some((decision, reason, arguments));
                    a.consumed = false;
                }
                EventKind::ToolStarted { call_id, .. } => {
                    if let Some(a) = f.approvals.get_mut(&call_id).filter(|a| a.resolved.is_some()) {
                        a.consumed = true;
                    }
                    f.tool_started.insert(call_id);
                }
                EventKind::ToolResult { call_id, children, .. } => {
                    f.tree.collected.extend(children);
                    f.results.insert(call_id);
                }
                EventKind::StepCompleted { step } if step == f.step => f.step_completed = true,
                EventKind::InputQueued { input } => f.pending_inputs.push((ev.seq, input)),
                EventKind::RunSteered { queued_seq, .. } => {
                    steered.insert(queued_seq);
                }
                _ => {}
            }
        }
        f.pending_inputs.retain(|(seq, _)| !steered.contains(seq));
        if let (Some(s), Some(l)) = (seg_start, last_ts) {
            f.active_ms += (l - s).max(0);
        }
        f
    }

    /// Tool calls of the last step still without a result.
    pub fn unfinished_calls(&self) -> Vec<ToolCall> {
        self.calls.iter().filter(|c| !self.results.contains(&c.id)).cloned().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_core::{ContentPart, Message, Role, Usage};

    fn stored(seq: i64, k: EventKind) -> StoredEvent {
        StoredEvent {
            run_id: "r".into(),
            seq,
            type_name: k.type_name().into(),
            data: k.data(),
            created_at: String::new(),
        }
    }

    fn answer(step: u32, calls: &[&str]) -> EventKind {
        let mut m = Message::text(Role::Assistant, "");
        m.tool_calls = calls
            .iter()
            .map(|id| ToolCall { id: id.to_string(), name: "t".into(), arguments: serde_json::json!({}) })
            .collect();
        EventKind::LlmCompleted {
            step,
            message: m,
            usage: Usage::default(),
            finish_reason: "tool_calls".into(),
            provider: "p".into(),
            model: "m".into(),
            profile: None,
            cost_usd: None,
            usage_estimated: false,
        }
    }

    #[test]
    fn finds_unfinished_tool_calls_and_pending_inputs() {
        let evs = vec![
            stored(
                1,
                EventKind::RunCreated {
                    input: "x".into(),
                    model: "m".into(),
                    max_steps: 5,
                    agent: "default".into(),
                    images: vec![],
                    tool_choice: None,
                    system: None,
                    ceiling: None,
                    team: None,
                },
            ),
            stored(2, EventKind::RunStarted { node: "n".into() }),
            stored(3, EventKind::StepStarted { step: 1 }),
            stored(4, answer(1, &["a", "b", "c"])),
            stored(5, EventKind::ToolStarted { call_id: "a".into(), name: "t".into() }),
            stored(6, EventKind::ToolStarted { call_id: "b".into(), name: "t".into() }),
            stored(7, EventKind::InputQueued { input: "also this".into() }),
            stored(
                8,
                EventKind::ToolResult {
                    call_id: "a".into(),
                    name: "t".into(),
                    content: vec![ContentPart::text("ok")],
                    is_error: false,
                    status: agentd_core::ToolStatus::Ok,
                    duration_ms: 1,
                    sandbox: None,
                    children: vec![],
                },
            ),
        ];
        let f = Folded::from_events(&evs);
        assert!(f.started && f.answered && !f.step_completed);
        assert_eq!(f.step, 1);
        let open: Vec<String> = f.unfinished_calls().into_iter().map(|c| c.id).collect();
        assert_eq!(open, ["b", "c"]);
        assert!(f.tool_started.contains("b") && !f.tool_started.contains("c"));
        assert_eq!(f.pending_inputs, vec![(7, "also this".to_string())]);
        assert_eq!(f.last_seq, 8);

        let mut more = evs.clone();
        more.push(stored(9, EventKind::RunSteered { input: "also this".into(), queued_seq: 7 }));
        more.push(stored(10, EventKind::StepCompleted { step: 1 }));
        let f = Folded::from_events(&more);
        assert!(f.pending_inputs.is_empty());
        assert!(f.step_completed);
    }

    #[test]
    fn a_new_step_without_answer_is_asked_again() {
        let evs = vec![
            stored(1, EventKind::RunStarted { node: "n".into() }),
            stored(2, EventKind::StepStarted { step: 1 }),
            stored(3, answer(1, &["a"])),
            stored(4, EventKind::StepCompleted { step: 1 }),
            stored(5, EventKind::StepStarted { step: 2 }),
        ];
        let f = Folded::from_events(&evs);
        assert_eq!(f.step, 2);
        assert!(!f.answered && f.calls.is_empty());
    }
}
