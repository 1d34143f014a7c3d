//! The run journal's events and what each one changes in the derived rows.

use serde::{Deserialize, Serialize};

use crate::event_type::EventType;
use crate::message::{ContentPart, Message, Role, Usage};
use crate::run::{RunError, RunStatus};

/// One entry of a run's journal. Serialises as `{"type": "run.created", "data": {...}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", content = "data")]
// `run.created` is the big one and written once per run; boxing it would
// churn every constructor for no measurable gain.
#[allow(clippy::large_enum_variant)]
pub enum EventKind {
    #[serde(rename = "run.created")]
    RunCreated {
        input: String,
        model: String,
        max_steps: u32,
        #[serde(default = "default_agent")]
        agent: String,
        /// Images sent with the input; they join the first user message.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        images: Vec<ContentPart>,
        /// `tool_choice` for the run's first model call (e.g. to force a tool).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        tool_choice: Option<serde_json::Value>,
        /// The system prompt rendered from the agent's template when the run was created.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        system: Option<String>,
        /// What a child run inherits from its parent: the ceiling on its tools and policy, its budgets.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ceiling: Option<crate::run::Ceiling>,
        /// Set for a team run: the team it runs (its members are its children).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        team: Option<crate::run::TeamSpec>,
    },
    #[serde(rename = "run.started")]
    RunStarted { node: String },
    /// A node picked up an unfinished run from its journal.
    #[serde(rename = "run.resumed")]
    RunResumed {
        node: String,
        /// The last event written before the interruption.
        from_seq: i64,
    },
    /// A message sent to a busy session with `if_busy: steer`; the run takes
    /// it in at its next step (as `run.steered`).
    #[serde(rename = "input.queued")]
    InputQueued { input: String },
    /// The run took in a queued message; it joins the conversation here.
    #[serde(rename = "run.steered")]
    RunSteered { input: String, queued_seq: i64 },
    #[serde(rename = "step.started")]
    StepStarted { step: u32 },
    #[serde(rename = "llm.completed")]
    LlmCompleted {
        step: u32,
        message: Message,
        usage: Usage,
        finish_reason: String,
        provider: String,
        model: String,
        /// The model profile that answered (or the `provider/model` the run named).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        profile: Option<String>,
        /// USD, from the profile's price table.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        cost_usd: Option<f64>,
        /// The provider reported no usage; these counts come from our tokenizer.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        usage_estimated: bool,
    },
    /// A model call failed and is tried again after `wait_ms`.
    #[serde(rename = "llm.retry")]
    LlmRetry {
        step: u32,
        profile: String,
        provider: String,
        /// 1 for the first retry.
        attempt: u32,
        status: Option<u16>,
        error: String,
        wait_ms: u64,
        /// Tokens had been streamed before the failure; they were dropped, and the
        /// retried answer replaces them whole.
        partial_discarded: bool,
    },
    /// A profile failed for good; the next one of its `fallback` list is tried.
    #[serde(rename = "llm.failover")]
    LlmFailover {
        step: u32,
        from_profile: String,
        to_profile: String,
        provider: String,
        status: Option<u16>,
        error: String,
    },
    /// The model titled the session after its first exchange.
    #[serde(rename = "session.titled")]
    SessionTitled {
        title: String,
        /// Tokens the title cost.
        usage: Usage,
    },
    /// Older turns of the session were replaced by a summary to fit the context window.
    #[serde(rename = "context.compacted")]
    ContextCompacted {
        step: u32,
        before_tokens: u64,
        after_tokens: u64,
        /// Session messages from this index on stay verbatim.
        keep_from: i64,
        summary: String,
        /// `summary` (written by the model) or `truncation` (deterministic fallback).
        method: String,
        /// Tokens the summariser used.
        usage: Usage,
    },
    /// A model call failed and nothing is left to try.
    #[serde(rename = "llm.failed")]
    LlmFailed { step: u32, profile: String, provider: String, status: Option<u16>, error: String },
    #[serde(rename = "tool.called")]
    ToolCalled { call_id: String, name: String, arguments: serde_json::Value },
    #[serde(rename = "tool.started")]
    ToolStarted { call_id: String, name: String },
    #[serde(rename = "tool.result")]
    ToolResult {
        call_id: String,
        name: String,
        content: Vec<ContentPart>,
        is_error: bool,
        /// `ok`, `error`, `interrupted` (after a crash), `denied` (by policy
        /// or a person) or `blocked` (a loop guard).
        status: crate::vocab::ToolStatus,
        duration_ms: u64,
        /// How the call was fenced (shell): adapter, mode, network.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        sandbox: Option<serde_json::Value>,
        /// The child runs whose answers this result hands over (`delegate`, `wait_children`).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        children: Vec<String>,
    },
    /// The policy's decision on a call, with the rule that made it.
    #[serde(rename = "tool.policy")]
    ToolPolicy {
        call_id: String,
        name: String,
        decision: crate::policy::Verdict,
        rule: String,
        risk: crate::policy::Risk,
        reasons: Vec<String>,
    },
    /// A call waits for a person; the run pauses (`waiting_approval`).
    #[serde(rename = "approval.requested")]
    ApprovalRequested {
        approval_id: String,
        call_id: String,
        tool: String,
        arguments_sanitized: serde_json::Value,
        approval_key: String,
        risk: crate::policy::Risk,
        reasons: Vec<String>,
        rule: String,
        expires_at: Option<String>,
    },
    /// A person (or the expiry) answered; with no approvals left pending the run is queued again.
    #[serde(rename = "approval.resolved")]
    ApprovalResolved {
        approval_id: String,
        call_id: String,
        approval_key: String,
        decision: crate::approval::Decision,
        reason: Option<String>,
        /// Edited arguments the call runs with instead of the model's.
        arguments: Option<serde_json::Value>,
        /// Approvals of the run still pending after this one.
        remaining: u32,
        /// The API key that answered (absent with auth off, or for the clock).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        resolved_by: Option<String>,
    },
    /// A loop guard or budget stopped something; the model is told.
    #[serde(rename = "run.guarded")]
    RunGuarded { guard: String, detail: String },
    /// The model loaded a skill's full instructions (via `load_skill`).
    #[serde(rename = "skill.loaded")]
    SkillLoaded { name: String, call_id: String },
    #[serde(rename = "step.completed")]
    StepCompleted { step: u32 },
    #[serde(rename = "run.completed")]
    RunCompleted { output: String, usage: Usage },
    #[serde(rename = "run.failed")]
    RunFailed { error: RunError },
    #[serde(rename = "run.cancelled")]
    RunCancelled {
        #[serde(default)]
        reason: Option<String>,
    },
    /// A child run was created for a `delegate` / `spawn` call (written in
    /// the transaction that creates the child, so each exists once).
    #[serde(rename = "child.spawned")]
    ChildSpawned {
        call_id: String,
        child_run_id: String,
        agent: String,
        task: String,
        /// Over `max_concurrent_children`: the child waits for a sibling to finish.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        held: bool,
        /// Tokens of the parent's budget reserved for the child (its siblings cannot spend them).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reserved_tokens: Option<u64>,
        /// USD of the parent's budget reserved for the child.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reserved_usd: Option<f64>,
    },
    /// The run waits for these children (`waiting_children`); nobody holds it
    /// until the last one ends.
    #[serde(rename = "children.waiting")]
    ChildrenWaiting { call_ids: Vec<String>, child_run_ids: Vec<String> },
    /// Every child the run waited for ended; it is queued again (written
    /// once, in the transaction that ends the last child).
    #[serde(rename = "children.done")]
    ChildrenDone { child_run_ids: Vec<String> },
}

fn default_agent() -> String {
    "default".into()
}

/// What an event changes in the rows derived from the journal.
#[derive(Debug, Default, PartialEq)]
pub struct Effects {
    pub status: Option<RunStatus>,
    /// A message appended to the session.
    pub message: Option<Message>,
    /// The run's input joins the session now (when it starts, not when it
    /// is queued behind another run of the session).
    pub input_message: bool,
    /// Usage to add to the run's total.
    pub usage: Option<Usage>,
    pub output: Option<String>,
    pub error: Option<RunError>,
    pub approval: Option<crate::ApprovalChange>,
    /// Model profiles tried (added to the run's list, each once).
    pub profiles_tried: Vec<String>,
    /// The profile that answered.
    pub final_profile: Option<String>,
    /// USD to add to the run's cost.
    pub cost_usd: Option<f64>,
    /// The session's new title.
    pub session_title: Option<String>,
    /// Children the run now waits for (`Some(vec![])` clears the list).
    pub waiting_on: Option<Vec<String>>,
}

impl EventKind {
    /// The event's type name as stored and streamed (`run.created`, ...).
    pub fn type_name(&self) -> &'static str {
        self.event_type().name()
    }

    /// True for the events that end a run.
    pub fn is_terminal(&self) -> bool {
        matches!(self, EventKind::RunCompleted { .. } | EventKind::RunFailed { .. } | EventKind::RunCancelled { .. })
    }

    /// The event's `data` object alone.
    pub fn data(&self) -> serde_json::Value {
        match serde_json::to_value(self) {
            Ok(serde_json::Value::Object(mut m)) => m.remove("data").unwrap_or(serde_json::Value::Null),
            _ => serde_json::Value::Null,
        }
    }

    /// Rebuilds an event from its stored type name and data.
    pub fn from_parts(type_name: &str, data: serde_json::Value) -> Result<Self, serde_json::Error> {
        serde_json::from_value(serde_json::json!({"type": type_name, "data": data}))
    }

    /// The derived-row changes this event implies; stores apply them in the
    /// same transaction that appends the event.
    pub fn effects(&self) -> Effects {
        let mut e = Effects::default();
        match self {
            EventKind::RunCreated { .. } => e.status = Some(RunStatus::Queued),
            EventKind::RunStarted { .. } => {
                e.status = Some(RunStatus::Running);
                e.input_message = true;
            }
            EventKind::RunResumed { .. } => e.status = Some(RunStatus::Running),
            EventKind::RunSteered { input, .. } => e.message = Some(Message::text(Role::User, input.clone())),
            EventKind::LlmCompleted { message, usage, profile, cost_usd, .. } => {
                e.cost_usd = *cost_usd;
                e.message = Some(message.clone());
                e.usage = Some(*usage);
                e.profiles_tried.extend(profile.clone());
                e.final_profile = profile.clone();
            }
            EventKind::LlmRetry { profile, .. } | EventKind::LlmFailed { profile, .. } => {
                e.profiles_tried.push(profile.clone())
            }
            EventKind::ContextCompacted { keep_from, summary, usage, .. } => {
                let mut m = Message::text(
                    Role::System,
                    format!("Summary of the earlier conversation (older messages were compacted):\n{summary}"),
                );
                m.compaction = Some(*keep_from);
                e.message = Some(m);
                e.usage = Some(*usage);
            }
            EventKind::SessionTitled { title, usage } => {
                e.session_title = Some(title.clone());
                e.usage = Some(*usage);
            }
            EventKind::LlmFailover { from_profile, to_profile, .. } => {
                e.profiles_tried.extend([from_profile.clone(), to_profile.clone()])
            }
            EventKind::ToolResult { call_id, content, .. } => {
                e.message = Some(Message::tool_result(call_id, content.clone()))
            }
            EventKind::RunCompleted { output, .. } => {
                e.status = Some(RunStatus::Completed);
                e.output = Some(output.clone());
            }
            EventKind::RunFailed { error } => {
                e.status = Some(RunStatus::Failed);
                e.error = Some(error.clone());
            }
            EventKind::RunCancelled { reason } => {
                e.status = Some(RunStatus::Cancelled);
                e.error =
                    Some(RunError::new("cancelled", reason.clone().unwrap_or_else(|| "run was cancelled".into())));
            }
            EventKind::ApprovalRequested {
                approval_id,
                call_id,
                tool,
                arguments_sanitized,
                approval_key,
                risk,
                reasons,
                rule,
                expires_at,
            } => {
                e.status = Some(RunStatus::WaitingApproval);
                e.approval = Some(crate::ApprovalChange::Open {
                    id: approval_id.clone(),
                    call_id: call_id.clone(),
                    tool: tool.clone(),
                    approval_key: approval_key.clone(),
                    risk: *risk,
                    expires_at: expires_at.clone(),
                    request: serde_json::json!({
                        "arguments_sanitized": arguments_sanitized, "reasons": reasons, "rule": rule
                    }),
                });
            }
            EventKind::ApprovalResolved {
                approval_id, decision, reason, arguments, remaining, resolved_by, ..
            } => {
                if *remaining == 0 {
                    e.status = Some(RunStatus::Queued);
                }
                e.approval = Some(crate::ApprovalChange::Close {
                    id: approval_id.clone(),
                    status: decision.status(),
                    decision: *decision,
                    reason: reason.clone(),
                    arguments: arguments.clone(),
                    resolved_by: resolved_by.clone(),
                });
            }
            EventKind::ChildrenWaiting { child_run_ids, .. } => {
                e.status = Some(RunStatus::WaitingChildren);
                e.waiting_on = Some(child_run_ids.clone());
            }
            EventKind::ChildrenDone { .. } => {
                e.status = Some(RunStatus::Queued);
                e.waiting_on = Some(vec![]);
            }
            EventKind::InputQueued { .. }
            | EventKind::ChildSpawned { .. }
            | EventKind::ToolPolicy { .. }
            | EventKind::RunGuarded { .. }
            | EventKind::SkillLoaded { .. }
            | EventKind::StepStarted { .. }
            | EventKind::ToolCalled { .. }
            | EventKind::ToolStarted { .. }
            | EventKind::StepCompleted { .. } => {}
        }
        e
    }
}

/// An event as stored in the journal, with its per-run sequence number.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredEvent {
    pub run_id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub type_name: String,
    pub data: serde_json::Value,
    pub created_at: String,
}

impl StoredEvent {
    /// The event's type (`None` for a name this version does not know).
    pub fn event_type(&self) -> Option<EventType> {
        EventType::parse(&self.type_name)
    }

    /// True if this is one of the events that end a run.
    pub fn is_terminal(&self) -> bool {
        self.event_type().is_some_and(EventType::is_terminal)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_round_trips_through_type_and_data() {
        let ev =
            EventKind::ToolCalled { call_id: "c1".into(), name: "echo".into(), arguments: serde_json::json!({"a": 1}) };
        assert_eq!(ev.type_name(), "tool.called");
        let data = ev.data();
        assert_eq!(data["call_id"], "c1");
        let back = EventKind::from_parts("tool.called", data).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn type_name_matches_serde_tag() {
        let ev = EventKind::RunCancelled { reason: None };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["type"], ev.type_name());
        assert!(ev.is_terminal());
    }

    #[test]
    fn effects_derive_status_and_messages() {
        let created = EventKind::RunCreated {
            input: "hi".into(),
            model: "m".into(),
            max_steps: 3,
            agent: "default".into(),
            images: vec![],
            tool_choice: None,
            system: None,
            ceiling: None,
            team: None,
        };
        let fx = created.effects();
        assert_eq!(fx.status, Some(RunStatus::Queued));
        assert!(fx.message.is_none(), "a queued run's input is not in the session yet");
        assert!(EventKind::RunStarted { node: "n".into() }.effects().input_message);
        let failed = EventKind::RunFailed { error: RunError::new("max_steps_exceeded", "x") };
        assert_eq!(failed.effects().status, Some(RunStatus::Failed));
        assert!(EventKind::StepStarted { step: 1 }.effects() == Effects::default());
    }
}
