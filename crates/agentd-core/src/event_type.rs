//! Event types without their data: what code matches on. Their names live
//! in serde attributes only (here and on [`EventKind`]); code uses variants.

use std::collections::HashMap;
use std::sync::LazyLock;

use serde::{Deserialize, Serialize};

use crate::event::EventKind;

/// The SSE event name of live token deltas (never stored, so not an [`EventType`]).
pub const DELTA_EVENT: &str = "llm.delta";

/// The SSE event name of the text an LLM call streamed before the client
/// subscribed (sent once, after the event it follows; replaces, never appends).
pub const PARTIAL_EVENT: &str = "llm.partial";

/// The SSE event name of a descendant run's event in its ancestor's stream:
/// `{"child_run_id", "parent_run_id", "event": <the stored event>}`.
pub const CHILD_EVENT: &str = "child.event";

/// The type of a journal event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EventType {
    #[serde(rename = "run.created")]
    RunCreated,
    #[serde(rename = "run.started")]
    RunStarted,
    #[serde(rename = "run.resumed")]
    RunResumed,
    #[serde(rename = "input.queued")]
    InputQueued,
    #[serde(rename = "run.steered")]
    RunSteered,
    #[serde(rename = "step.started")]
    StepStarted,
    #[serde(rename = "llm.completed")]
    LlmCompleted,
    #[serde(rename = "llm.retry")]
    LlmRetry,
    #[serde(rename = "llm.failover")]
    LlmFailover,
    #[serde(rename = "context.compacted")]
    ContextCompacted,
    #[serde(rename = "session.titled")]
    SessionTitled,
    #[serde(rename = "llm.failed")]
    LlmFailed,
    #[serde(rename = "tool.called")]
    ToolCalled,
    #[serde(rename = "tool.started")]
    ToolStarted,
    #[serde(rename = "tool.result")]
    ToolResult,
    #[serde(rename = "tool.policy")]
    ToolPolicy,
    #[serde(rename = "approval.requested")]
    ApprovalRequested,
    #[serde(rename = "approval.resolved")]
    ApprovalResolved,
    #[serde(rename = "run.guarded")]
    RunGuarded,
    #[serde(rename = "skill.loaded")]
    SkillLoaded,
    #[serde(rename = "step.completed")]
    StepCompleted,
    #[serde(rename = "run.completed")]
    RunCompleted,
    #[serde(rename = "run.failed")]
    RunFailed,
    #[serde(rename = "run.cancelled")]
    RunCancelled,
    #[serde(rename = "child.spawned")]
    ChildSpawned,
    #[serde(rename = "children.waiting")]
    ChildrenWaiting,
    #[serde(rename = "children.done")]
    ChildrenDone,
}

static NAMES: LazyLock<HashMap<EventType, &'static str>> = LazyLock::new(|| {
    EventType::ALL
        .iter()
        .map(|t| {
            let name = match serde_json::to_value(t) {
                Ok(serde_json::Value::String(s)) => s,
                _ => String::new(),
            };
            (*t, &*Box::leak(name.into_boxed_str()))
        })
        .collect()
});

static BY_NAME: LazyLock<HashMap<&'static str, EventType>> =
    LazyLock::new(|| NAMES.iter().map(|(t, n)| (*n, *t)).collect());

impl EventType {
    /// Every event type.
    pub const ALL: [EventType; 27] = [
        EventType::RunCreated,
        EventType::RunStarted,
        EventType::RunResumed,
        EventType::InputQueued,
        EventType::RunSteered,
        EventType::StepStarted,
        EventType::LlmCompleted,
        EventType::LlmRetry,
        EventType::LlmFailover,
        EventType::ContextCompacted,
        EventType::SessionTitled,
        EventType::LlmFailed,
        EventType::ToolCalled,
        EventType::ToolStarted,
        EventType::ToolResult,
        EventType::ToolPolicy,
        EventType::ApprovalRequested,
        EventType::ApprovalResolved,
        EventType::RunGuarded,
        EventType::SkillLoaded,
        EventType::StepCompleted,
        EventType::RunCompleted,
        EventType::RunFailed,
        EventType::RunCancelled,
        EventType::ChildSpawned,
        EventType::ChildrenWaiting,
        EventType::ChildrenDone,
    ];

    /// The name stored and streamed (`run.created`, ...).
    pub fn name(self) -> &'static str {
        NAMES.get(&self).copied().unwrap_or_default()
    }

    /// The type with this name, if any.
    pub fn parse(name: &str) -> Option<Self> {
        BY_NAME.get(name).copied()
    }

    /// True for the types that end a run.
    pub fn is_terminal(self) -> bool {
        matches!(self, EventType::RunCompleted | EventType::RunFailed | EventType::RunCancelled)
    }

    /// The run lifecycle types of the tenant-wide feed (`GET /v1/events`):
    /// what changes a run's, and so its session's, status (or its title).
    pub const LIFECYCLE: [EventType; 11] = [
        EventType::RunCreated,
        EventType::RunStarted,
        EventType::RunResumed,
        EventType::ApprovalRequested,
        EventType::ApprovalResolved,
        EventType::RunCompleted,
        EventType::RunFailed,
        EventType::RunCancelled,
        EventType::SessionTitled,
        EventType::ChildrenWaiting,
        EventType::ChildrenDone,
    ];

    /// True for the types of [`EventType::LIFECYCLE`].
    pub fn is_lifecycle(self) -> bool {
        Self::LIFECYCLE.contains(&self)
    }
}

impl EventKind {
    /// This event's type.
    pub fn event_type(&self) -> EventType {
        match self {
            EventKind::RunCreated { .. } => EventType::RunCreated,
            EventKind::RunStarted { .. } => EventType::RunStarted,
            EventKind::RunResumed { .. } => EventType::RunResumed,
            EventKind::InputQueued { .. } => EventType::InputQueued,
            EventKind::RunSteered { .. } => EventType::RunSteered,
            EventKind::StepStarted { .. } => EventType::StepStarted,
            EventKind::LlmCompleted { .. } => EventType::LlmCompleted,
            EventKind::LlmRetry { .. } => EventType::LlmRetry,
            EventKind::LlmFailover { .. } => EventType::LlmFailover,
            EventKind::ContextCompacted { .. } => EventType::ContextCompacted,
            EventKind::SessionTitled { .. } => EventType::SessionTitled,
            EventKind::LlmFailed { .. } => EventType::LlmFailed,
            EventKind::ToolCalled { .. } => EventType::ToolCalled,
            EventKind::ToolStarted { .. } => EventType::ToolStarted,
            EventKind::ToolResult { .. } => EventType::ToolResult,
            EventKind::ToolPolicy { .. } => EventType::ToolPolicy,
            EventKind::ApprovalRequested { .. } => EventType::ApprovalRequested,
            EventKind::ApprovalResolved { .. } => EventType::ApprovalResolved,
            EventKind::RunGuarded { .. } => EventType::RunGuarded,
            EventKind::SkillLoaded { .. } => EventType::SkillLoaded,
            EventKind::StepCompleted { .. } => EventType::StepCompleted,
            EventKind::RunCompleted { .. } => EventType::RunCompleted,
            EventKind::RunFailed { .. } => EventType::RunFailed,
            EventKind::RunCancelled { .. } => EventType::RunCancelled,
            EventKind::ChildSpawned { .. } => EventType::ChildSpawned,
            EventKind::ChildrenWaiting { .. } => EventType::ChildrenWaiting,
            EventKind::ChildrenDone { .. } => EventType::ChildrenDone,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_match_the_event_kinds() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.name()), Some(t));
            // The same name is a known tag of EventKind (the data is what fails).
            let err = EventKind::from_parts(t.name(), serde_json::json!({"__": 1})).err().map(|e| e.to_string());
            assert!(!err.unwrap_or_default().contains("unknown variant"), "{}", t.name());
        }
        assert_eq!(EventType::parse("nope"), None);
    }
}
