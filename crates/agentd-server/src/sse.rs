//! A run's journal as Server-Sent Events: the stored backlog after a cursor,
//! then live events and deltas, ending after the terminal event.

use std::collections::HashSet;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use agentd_core::{StoredEvent, Tenant};
use agentd_providers::Delta;
use agentd_runtime::EventQuery;
use agentd_runtime::{Live, Runtime};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

/// Streams a run's events with `seq > after`. `rx` is an already open live
/// subscription (so nothing between creation and streaming is lost).
pub(crate) fn run_events(
    rt: Arc<Runtime>,
    t: Tenant,
    run_id: String,
    after: i64,
    rx: Option<broadcast::Receiver<Live>>,
) -> Response {
    let (tx, out) = mpsc::channel(256);
    tokio::spawn(async move {
        let mut f = Feed { rt, t, run_id, last: after, tx, partial: None, under: None, following: HashSet::new() };
        if let Err(Closed) = f.pump(rx).await {
            tracing::debug!(run_id = %f.run_id, "SSE client went away");
        }
    });
    Sse::new(ReceiverStream::new(out)).keep_alive(KeepAlive::default()).into_response()
}

/// The client disconnected (or the database failed): stop streaming.
struct Closed;

struct Feed {
    rt: Arc<Runtime>,
    t: Tenant,
    run_id: String,
    last: i64,
    tx: mpsc::Sender<Result<Event, Infallible>>,
    /// The text streamed before this client came, sent after its event.
    partial: Option<agentd_runtime::Partial>,
    /// Set for a descendant's feed: its events go out as `child.event`
    /// frames (without ids: the cursor is the top run's) under this parent.
    under: Option<String>,
    /// Children whose events this feed already forwards.
    following: HashSet<String>,
}

enum Progress {
    Open,
    Ended,
}

impl Feed {
    async fn pump(&mut self, rx: Option<broadcast::Receiver<Live>>) -> Result<(), Closed> {
        // A receiver opened when the run was created has seen everything,
        // deltas included: read it in order (the journal fills any gap).
        // Otherwise subscribe first, then read the backlog, so nothing falls
        // in between; for a run on another node the channel carries `Changed`.
        let from_creation = rx.is_some();
        let mut rx = match rx {
            Some(rx) => Some(rx),
            None => {
                let (rx, partial) = self.rt.hub().open_mid_answer(&self.run_id);
                self.partial = partial.filter(|_| self.under.is_none());
                Some(rx)
            }
        };
        if self.last > 0 {
            // Resumed past the `child.spawned` events: follow the children there are.
            if let Ok(children) = self.rt.run_children(&self.t, &self.run_id).await {
                for c in children {
                    self.follow(&c.id);
                }
            }
        }
        // A cursor past the journal's end (`Last-Event-ID: 9223372036854775807`)
        // would make every later event look already seen: clamp it.
        if !from_creation {
            let run = self.run().await?;
            self.last = self.last.clamp(0, run.map_or(0, |r| r.last_seq));
            self.send_partial_after(self.last).await?;
        }
        if !from_creation && let Progress::Ended = self.backfill().await? {
            return Ok(());
        }
        loop {
            let Some(live) = rx.as_mut() else {
                // Not executing in this process: poll the journal.
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    _ = self.tx.closed() => return Err(Closed),
                }
                if let Progress::Ended = self.backfill().await? {
                    return Ok(());
                }
                rx = Some(self.rt.hub().open(&self.run_id));
                continue;
            };
            let item = tokio::select! {
                r = live.recv() => r,
                _ = self.tx.closed() => return Err(Closed),
                // A safety net should a notification from another node be lost.
                _ = tokio::time::sleep(Duration::from_secs(1)) => Ok(Live::Changed(i64::MAX)),
            };
            match item {
                Ok(Live::Event(ev)) if ev.seq == self.last + 1 => {
                    if let Progress::Ended = self.send_event(&ev).await? {
                        return Ok(());
                    }
                }
                Ok(Live::Event(ev)) if ev.seq <= self.last => {}
                Ok(Live::Delta(_)) if self.under.is_some() => {}
                Ok(Live::Delta(d)) => self.send(delta_frame(&d)).await?,
                Ok(Live::Changed(seq)) if seq <= self.last => {}
                // A gap, a change elsewhere or a lagging receiver: the journal is the truth.
                Ok(Live::Event(_)) | Ok(Live::Changed(_)) | Err(broadcast::error::RecvError::Lagged(_)) => {
                    if let Progress::Ended = self.backfill().await? {
                        return Ok(());
                    }
                }
                Err(broadcast::error::RecvError::Closed) => {
                    rx = None;
                    if let Progress::Ended = self.backfill().await? {
                        return Ok(());
                    }
                }
            }
        }
    }

    /// The run as it stands (`None` once deleted).
    async fn run(&self) -> Result<Option<agentd_core::Run>, Closed> {
        match self.rt.get_run(&self.t, &self.run_id).await {
            Ok(r) => Ok(Some(r)),
            Err(agentd_runtime::RuntimeError::RunNotFound(_)) => Ok(None),
            Err(_) => Err(Closed),
        }
    }

    async fn send(&self, ev: Event) -> Result<(), Closed> {
        self.tx.send(Ok(ev)).await.map_err(|_| Closed)
    }

    async fn send_event(&mut self, ev: &StoredEvent) -> Result<Progress, Closed> {
        let frame = match &self.under {
            None => {
                let data = serde_json::to_string(ev).map_err(|_| Closed)?;
                Event::default().id(ev.seq.to_string()).event(&ev.type_name).data(data)
            }
            Some(parent) => {
                let data = serde_json::json!({"child_run_id": self.run_id, "parent_run_id": parent, "event": ev});
                Event::default().event(agentd_core::event_type::CHILD_EVENT).data(data.to_string())
            }
        };
        self.send(frame).await?;
        if ev.event_type() == Some(agentd_core::EventType::ChildSpawned)
            && let Some(child) = ev.data["child_run_id"].as_str()
        {
            self.follow(child);
        }
        self.last = ev.seq;
        self.send_partial_after(ev.seq).await?;
        Ok(if ev.is_terminal() { Progress::Ended } else { Progress::Open })
    }

    /// Sends the text in progress once the client has the event it follows
    /// (a client already past that event gets nothing: it saw the text live).
    async fn send_partial_after(&mut self, seq: i64) -> Result<(), Closed> {
        let Some(p) = self.partial.take_if(|p| p.after_seq <= seq) else { return Ok(()) };
        if p.after_seq < seq {
            return Ok(());
        }
        let data = agentd_api::Delta {
            text: (!p.text.is_empty()).then_some(p.text),
            thinking: (!p.thinking.is_empty()).then_some(p.thinking),
        };
        let frame = Event::default().event(agentd_core::event_type::PARTIAL_EVENT);
        self.send(frame.data(serde_json::to_string(&data).unwrap_or_default())).await
    }

    /// Forwards a child's events (and, through it, its descendants') into this stream.
    fn follow(&mut self, child: &str) {
        if !self.following.insert(child.to_string()) {
            return;
        }
        let mut f = Feed {
            rt: self.rt.clone(),
            t: self.t.clone(),
            run_id: child.to_string(),
            last: 0,
            tx: self.tx.clone(),
            partial: None,
            under: Some(self.run_id.clone()),
            following: HashSet::new(),
        };
        tokio::spawn(async move {
            let _ = f.pump(None).await;
        });
    }

    /// Sends every stored event after `last`.
    async fn backfill(&mut self) -> Result<Progress, Closed> {
        let mut finished = false;
        loop {
            let q = EventQuery { after: self.last, limit: 500, types: None };
            let evs = self.rt.run_events(&self.t, &self.run_id, &q).await.map_err(|e| {
                tracing::warn!(error = %e, "reading events for SSE failed");
                Closed
            })?;
            let n = evs.len();
            for ev in &evs {
                if let Progress::Ended = self.send_event(ev).await? {
                    return Ok(Progress::Ended);
                }
            }
            if n == 0 {
                // Nothing after the cursor: if the run is over (or gone), so is
                // the stream — a client resuming at or past the end must not hang.
                // (Read the journal once more after seeing it finished, so a
                // terminal event appended in between is still sent.)
                if finished {
                    return Ok(Progress::Ended);
                }
                let run = self.run().await?;
                if run.is_none_or(|r| r.status.is_terminal()) {
                    finished = true;
                    continue;
                }
            }
            if n < 500 {
                return Ok(Progress::Open);
            }
        }
    }
}

fn delta_frame(d: &Delta) -> Event {
    let data = match d {
        Delta::Text(t) => agentd_api::Delta { text: Some(t.clone()), thinking: None },
        Delta::Thinking(t) => agentd_api::Delta { text: None, thinking: Some(t.clone()) },
    };
    Event::default().event(agentd_core::event_type::DELTA_EVENT).data(serde_json::to_string(&data).unwrap_or_default())
}
