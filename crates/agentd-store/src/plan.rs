//! What an append writes, decided once for every backend: the guard checks,
//! the sequence numbers, the session messages and the run row's new state.
//! Backends only execute the plan inside their transaction.

use agentd_core::{ApprovalChange, EventKind, Message, Role, RunStatus, StoredEvent, Usage};

use crate::{AppendGuard, Result, StoreError, now};

/// The run row as an append finds it.
pub(crate) struct RunHead {
    pub status: String,
    pub last_seq: i64,
    pub usage: String,
    pub lease_node: Option<String>,
    pub input: String,
    /// JSON list of the profiles tried so far.
    pub attempted: String,
    pub cost_usd: Option<f64>,
    /// Images of the run's input (read only for the append that starts the run).
    pub images: Vec<agentd_core::ContentPart>,
}

/// Everything an append writes.
pub(crate) struct AppendPlan {
    /// The new events, as stored and returned.
    pub events: Vec<StoredEvent>,
    /// Session messages to add, with the seq of the event that made each.
    pub messages: Vec<(i64, String)>,
    pub status: RunStatus,
    pub last_seq: i64,
    pub usage: String,
    pub output: Option<String>,
    /// JSON of the run error, if an event set one.
    pub error: Option<String>,
    pub ts: String,
    /// Approvals opened or answered by these events.
    pub approvals: Vec<ApprovalChange>,
    /// The run now waits for a person: nobody holds it.
    pub release_lease: bool,
    /// The run ended: its pending approvals are cancelled.
    pub close_approvals: bool,
    /// JSON list of the profiles tried, when it changed.
    pub attempted: Option<String>,
    pub final_profile: Option<String>,
    /// The run's new total cost, when an event added to it.
    pub cost_usd: Option<f64>,
    /// The session's new title, when an event set one.
    pub session_title: Option<String>,
    /// JSON list of the children the run now waits for, when it changed.
    pub waiting_on: Option<String>,
    /// `children.waiting` was written: the store checks at once whether they all ended.
    pub waits: bool,
    /// This append ended the run.
    pub ended: bool,
}

/// The `images` of a stored `run.created` event's data (read by the append
/// that writes `run.started`, the event whose effect adds the input message).
pub(crate) fn images_of(data: Option<&str>) -> Vec<agentd_core::ContentPart> {
    data.and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
        .and_then(|v| serde_json::from_value(v["images"].clone()).ok())
        .unwrap_or_default()
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Checks the guard and works out what appending `events` writes.
pub(crate) fn plan_append(
    tenant: &agentd_core::Tenant,
    run_id: &str,
    head: RunHead,
    guard: &AppendGuard,
    events: &[EventKind],
) -> Result<AppendPlan> {
    let mut status =
        RunStatus::parse(&head.status).ok_or_else(|| StoreError::Corrupt(format!("status {}", head.status)))?;
    let mut usage: Usage = serde_json::from_str(&head.usage).map_err(|e| StoreError::Corrupt(format!("usage: {e}")))?;
    if status.is_terminal() && !events.is_empty() {
        return Err(StoreError::RunFinished);
    }
    if let Some(node) = &guard.lease_node
        && head.lease_node.as_deref() != Some(node.as_str())
    {
        return Err(StoreError::LeaseLost);
    }
    if let Some(expected) = guard.expected_seq
        && expected != head.last_seq
    {
        return Err(StoreError::SeqConflict { last_seq: head.last_seq });
    }
    let ts = now();
    let mut seq = head.last_seq;
    let (mut out, mut messages) = (Vec::with_capacity(events.len()), vec![]);
    let (mut output, mut error, mut approvals) = (None, None, vec![]);
    let mut attempted: Vec<String> = serde_json::from_str(&head.attempted).unwrap_or_default();
    let (mut attempted_changed, mut final_profile) = (false, None);
    let mut cost: Option<f64> = None;
    let mut session_title = None;
    let (mut waiting_on, mut waits) = (None, false);
    let was_terminal = status.is_terminal();
    for ev in events {
        if status.is_terminal() {
            return Err(StoreError::RunFinished);
        }
        seq += 1;
        // Secrets never reach the journal or the rows derived from it.
        let mut data = ev.data();
        let masked = agentd_core::redact::redact_value_for(Some(tenant), &mut data);
        let redacted = if masked { EventKind::from_parts(ev.type_name(), data.clone()).ok() } else { None };
        let ev = redacted.as_ref().unwrap_or(ev);
        let fx = ev.effects();
        let input = fx.input_message.then(|| {
            let mut m = Message::text(Role::User, head.input.clone());
            m.content.extend(head.images.iter().cloned());
            m
        });
        if let Some(m) = fx.message.or(input) {
            messages.push((seq, to_json(&m)?));
        }
        if let Some(u) = fx.usage {
            usage.add(&u);
        }
        if let Some(s) = fx.status {
            status = s;
        }
        approvals.extend(fx.approval);
        for p in fx.profiles_tried {
            if !attempted.contains(&p) {
                attempted.push(p);
                attempted_changed = true;
            }
        }
        final_profile = fx.final_profile.or(final_profile);
        if let Some(c) = fx.cost_usd {
            cost = Some(cost.or(head.cost_usd).unwrap_or(0.0) + c);
        }
        session_title = fx.session_title.or(session_title);
        if let Some(w) = fx.waiting_on {
            waits = !w.is_empty();
            waiting_on = Some(to_json(&w)?);
        }
        output = fx.output.or(output);
        error = fx.error.or(error);
        out.push(StoredEvent {
            run_id: run_id.to_string(),
            seq,
            type_name: ev.type_name().to_string(),
            data,
            created_at: ts.clone(),
        });
    }
    Ok(AppendPlan {
        events: out,
        messages,
        status,
        last_seq: seq,
        usage: to_json(&usage)?,
        output,
        error: error.as_ref().map(to_json).transpose()?,
        ts,
        approvals,
        release_lease: matches!(status, RunStatus::WaitingApproval | RunStatus::WaitingChildren),
        ended: status.is_terminal() && !was_terminal,
        waits: waits && status == RunStatus::WaitingChildren,
        waiting_on,
        close_approvals: status.is_terminal(),
        attempted: if attempted_changed { Some(to_json(&attempted)?) } else { None },
        final_profile,
        cost_usd: cost,
        session_title,
    })
}
