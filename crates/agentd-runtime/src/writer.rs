//! Writing a run's journal as its lease holder: every append fenced by the
//! lease and the expected sequence number, messages queued by others picked
//! up on the way, and what was written published to live subscribers.

use agentd_core::{EventKind, Message, Role, Run, RunError, StoredEvent, Tenant};
use agentd_store::{AppendGuard, EventQuery, StoreError};

use crate::{Live, Runtime};

/// Why the loop stopped early.
pub(crate) enum Stop {
    /// Finished elsewhere (cancelled), lease lost, or this process is stopping.
    Halted,
    Store(StoreError),
}

impl From<StoreError> for Stop {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::RunFinished | StoreError::LeaseLost => Stop::Halted,
            other => Stop::Store(other),
        }
    }
}

/// Writes a run's journal as its lease holder, expecting to be the only
/// writer; messages queued by others (`input.queued`) are picked up on the way.
pub(crate) struct Writer<'a> {
    pub(crate) rt: &'a Runtime,
    pub(crate) t: &'a Tenant,
    pub(crate) run_id: &'a str,
    pub(crate) guard: AppendGuard,
    /// `input.queued` messages not yet taken in: (seq, input).
    pub(crate) inputs: Vec<(i64, String)>,
    /// The run's parent, told when the run ends.
    pub(crate) parent: Option<&'a str>,
}

impl Writer<'_> {
    pub(crate) async fn write(&mut self, events: &[EventKind]) -> Result<(), Stop> {
        if events.is_empty() {
            return Ok(());
        }
        loop {
            match self.rt.store.append_guarded(self.t, self.run_id, &self.guard, events).await {
                Ok(stored) => {
                    self.written(&stored);
                    return Ok(());
                }
                Err(StoreError::SeqConflict { .. }) => self.catch_up().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Publishes what was written; an ending wakes the scheduler (a parent
    /// may be queued again, a held sibling freed) and the parent's streams.
    fn written(&mut self, stored: &[StoredEvent]) {
        self.guard.expected_seq = stored.last().map(|e| e.seq);
        self.rt.publish(self.run_id, stored);
        if stored.last().is_some_and(StoredEvent::is_terminal) {
            self.rt.sched.wake();
            if let Some(parent) = self.parent {
                self.rt.hub.publish(parent, Live::Changed(i64::MAX));
            }
        }
    }

    /// Creates a child run and journals `child.spawned`, in one transaction;
    /// true when the child was held back (over `max_concurrent_children`).
    pub(crate) async fn spawn(&mut self, new: &agentd_store::NewRun, spawned: EventKind) -> Result<(Run, bool), Stop> {
        loop {
            match self.rt.store.create_child_run(self.t, self.run_id, &self.guard, new, &spawned).await {
                Ok((child, stored)) => {
                    self.written(&stored);
                    let held = stored.iter().any(|e| e.data["held"] == serde_json::Value::Bool(true));
                    return Ok((child, held));
                }
                Err(StoreError::SeqConflict { .. }) => self.catch_up().await?,
                Err(e) => return Err(e.into()),
            }
        }
    }

    /// Reads what others appended since our last write.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        let after = self.guard.expected_seq.unwrap_or(0);
        let q = EventQuery { after, limit: 10_000, types: None };
        let foreign = self.rt.store.events(self.t, self.run_id, &q).await?;
        for ev in &foreign {
            if ev.event_type() == Some(agentd_core::EventType::InputQueued)
                && let Some(input) = ev.data["input"].as_str()
            {
                self.inputs.push((ev.seq, input.to_string()));
            }
        }
        if let Some(last) = foreign.last() {
            self.guard.expected_seq = Some(last.seq);
        }
        Ok(())
    }

    /// Writes `events` + `last` unless messages arrived that the run must
    /// still answer; then writes only `events` and returns false.
    pub(crate) async fn write_final(&mut self, mut events: Vec<EventKind>, last: EventKind) -> Result<bool, Stop> {
        // A failure ends the run even if messages are waiting.
        let must_end = matches!(last, EventKind::RunFailed { .. });
        if self.inputs.is_empty() || must_end {
            events.push(last);
            match self.rt.store.append_guarded(self.t, self.run_id, &self.guard, &events).await {
                Ok(stored) => {
                    self.written(&stored);
                    return Ok(true);
                }
                Err(StoreError::SeqConflict { .. }) => {
                    self.catch_up().await?;
                    if self.inputs.is_empty() || must_end {
                        self.write(&events).await?;
                        return Ok(true);
                    }
                    events.pop();
                }
                Err(e) => return Err(e.into()),
            }
        }
        self.write(&events).await?;
        Ok(false)
    }

    /// Turns queued inputs into `run.steered` events and conversation messages.
    pub(crate) fn take_inputs(&mut self, carry: &mut Vec<EventKind>, messages: &mut Vec<Message>) {
        for (queued_seq, input) in self.inputs.drain(..) {
            messages.push(Message::text(Role::User, input.clone()));
            carry.push(EventKind::RunSteered { input, queued_seq });
        }
    }
}

/// How a run over its wall time ends: a child `timed_out` (its parent's model is told).
pub(crate) fn time_up(run: &Run, secs: u64) -> EventKind {
    match run.parent_run_id {
        Some(_) => failed("timed_out", format!("the child run used up its wall time ({secs} s)")),
        None => wall_time_exceeded(secs),
    }
}

pub(crate) fn wall_time_exceeded(secs: u64) -> EventKind {
    failed("wall_time_exceeded", format!("the run used up its wall-time budget ({secs} s)"))
}

/// A run's end by failure with this code.
pub(crate) fn failed(code: &str, message: String) -> EventKind {
    EventKind::RunFailed { error: RunError::new(code, message) }
}
