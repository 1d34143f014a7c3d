//! Live fan-out of a run's events and token deltas to subscribers (SSE
//! clients, the CLI). Stored events are also in the journal; deltas are not.

use std::collections::HashMap;
use std::sync::Mutex;

use agentd_core::StoredEvent;
use agentd_providers::Delta;
use tokio::sync::broadcast;

/// One item on a run's live channel.
#[derive(Debug, Clone)]
pub enum Live {
    Event(StoredEvent),
    Delta(Delta),
    /// The journal grew elsewhere (another node) up to this seq: read it.
    Changed(i64),
}

/// The text an LLM call of a run has streamed so far (deltas are not
/// journaled): what a subscriber arriving mid-answer is sent first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Partial {
    /// The journal event the text follows: send it after that event.
    pub after_seq: i64,
    pub text: String,
    pub thinking: String,
}

#[derive(Default)]
struct Inner {
    channels: HashMap<String, broadcast::Sender<Live>>,
    /// Per run executing here: the current LLM call's text so far.
    partials: HashMap<String, Partial>,
}

/// Per-run broadcast channels, present while someone listens to a run.
/// Publishing to a run nobody listens to costs a string append (the partial).
pub struct Hub {
    inner: Mutex<Inner>,
    /// Bumped by every lifecycle event published here (or seen from another
    /// node): tenant feeds wake on it and read the journal.
    feed: tokio::sync::watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self { inner: Mutex::default(), feed: tokio::sync::watch::channel(0).0 }
    }
}

/// Items buffered per channel; a subscriber that falls further behind
/// re-reads the journal (and misses only token deltas).
const CAPACITY: usize = 256;

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain maps: still usable.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the run's channel (if missing) and subscribes to it.
    pub fn open(&self, run_id: &str) -> broadcast::Receiver<Live> {
        self.open_mid_answer(run_id).0
    }

    /// Like [`Hub::open`], with the text streamed so far by the LLM call in
    /// progress here, taken atomically: every later delta is on the receiver,
    /// none before it.
    pub fn open_mid_answer(&self, run_id: &str) -> (broadcast::Receiver<Live>, Option<Partial>) {
        let mut inner = self.lock();
        let rx = inner.channels.entry(run_id.to_string()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe();
        let partial = inner.partials.get(run_id).filter(|p| !p.text.is_empty() || !p.thinking.is_empty()).cloned();
        (rx, partial)
    }

    /// Subscribes if the run is live here.
    pub fn subscribe(&self, run_id: &str) -> Option<broadcast::Receiver<Live>> {
        self.lock().channels.get(run_id).map(|s| s.subscribe())
    }

    /// Drops channels nobody listens to (publishers look channels up by
    /// run id each time, so a dropped one is simply made again when needed).
    pub fn sweep(&self) {
        self.lock().channels.retain(|_, s| s.receiver_count() > 0);
    }

    pub fn publish(&self, run_id: &str, item: Live) {
        if let Live::Event(ev) = &item
            && agentd_core::EventType::parse(&ev.type_name).is_some_and(|t| t.is_lifecycle())
        {
            self.bump_feed();
        }
        let mut inner = self.lock();
        // Every journal event ends the text in progress (the answer is now
        // in `llm.completed`); a terminal one ends the run's buffer.
        match &item {
            Live::Event(ev) if ev.is_terminal() => {
                inner.partials.remove(run_id);
            }
            Live::Event(ev) => {
                inner.partials.insert(run_id.to_string(), Partial { after_seq: ev.seq, ..Partial::default() });
            }
            Live::Delta(d) => {
                let p = inner.partials.entry(run_id.to_string()).or_default();
                match d {
                    Delta::Text(t) => p.text.push_str(t),
                    Delta::Thinking(t) => p.thinking.push_str(t),
                }
            }
            Live::Changed(_) => {}
        }
        if let Some(s) = inner.channels.get(run_id) {
            let _ = s.send(item);
        }
    }

    /// Tells tenant feeds a lifecycle event was written.
    pub fn bump_feed(&self) {
        self.feed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Wakes when a lifecycle event is written (see [`Hub::bump_feed`]).
    pub fn feed(&self) -> tokio::sync::watch::Receiver<u64> {
        self.feed.subscribe()
    }

    /// Drops the run's channel; subscribers drain what is buffered, then see it closed.
    pub fn close(&self, run_id: &str) {
        let mut inner = self.lock();
        inner.channels.remove(run_id);
        inner.partials.remove(run_id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(seq: i64, type_name: &str) -> Live {
        Live::Event(StoredEvent {
            seq,
            run_id: "run_1".into(),
            type_name: type_name.into(),
            data: serde_json::json!({}),
            created_at: String::new(),
        })
    }

    #[test]
    fn a_late_subscriber_gets_the_text_so_far_then_only_later_deltas() {
        let hub = Hub::default();
        hub.publish("run_1", event(3, "llm.started"));
        hub.publish("run_1", Live::Delta(Delta::Thinking("hmm".into())));
        hub.publish("run_1", Live::Delta(Delta::Text("Hel".into())));
        let (mut rx, partial) = hub.open_mid_answer("run_1");
        let p = partial.expect("mid-answer");
        assert_eq!((p.after_seq, p.text.as_str(), p.thinking.as_str()), (3, "Hel", "hmm"));
        hub.publish("run_1", Live::Delta(Delta::Text("lo".into())));
        assert!(matches!(rx.try_recv(), Ok(Live::Delta(Delta::Text(t))) if t == "lo"));
        assert!(rx.try_recv().is_err(), "nothing from before the snapshot");
        // The answer journaled: nothing in progress any more.
        hub.publish("run_1", event(4, "llm.completed"));
        assert_eq!(hub.open_mid_answer("run_1").1, None);
        hub.publish("run_1", Live::Delta(Delta::Text("x".into())));
        hub.publish("run_1", event(9, "run.completed"));
        assert!(hub.lock().partials.is_empty(), "a finished run keeps no buffer");
    }
}
