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

/// Per-run broadcast channels, present while someone listens to a run.
/// Publishing to a run nobody listens to costs nothing.
pub struct Hub {
    channels: Mutex<HashMap<String, broadcast::Sender<Live>>>,
    /// Bumped by every lifecycle event published here (or seen from another
    /// node): tenant feeds wake on it and read the journal.
    feed: tokio::sync::watch::Sender<u64>,
}

impl Default for Hub {
    fn default() -> Self {
        Self { channels: Mutex::default(), feed: tokio::sync::watch::channel(0).0 }
    }
}

/// Items buffered per channel; a subscriber that falls further behind
/// re-reads the journal (and misses only token deltas).
const CAPACITY: usize = 256;

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<Live>>> {
        // A panic while holding this lock leaves a plain map: still usable.
        self.channels.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the run's channel (if missing) and subscribes to it.
    pub fn open(&self, run_id: &str) -> broadcast::Receiver<Live> {
        self.lock().entry(run_id.to_string()).or_insert_with(|| broadcast::channel(CAPACITY).0).subscribe()
    }

    /// Subscribes if the run is live here.
    pub fn subscribe(&self, run_id: &str) -> Option<broadcast::Receiver<Live>> {
        self.lock().get(run_id).map(|s| s.subscribe())
    }

    /// Drops channels nobody listens to (publishers look channels up by
    /// run id each time, so a dropped one is simply made again when needed).
    pub fn sweep(&self) {
        self.lock().retain(|_, s| s.receiver_count() > 0);
    }

    pub fn publish(&self, run_id: &str, item: Live) {
        if let Live::Event(ev) = &item
            && agentd_core::EventType::parse(&ev.type_name).is_some_and(|t| t.is_lifecycle())
        {
            self.bump_feed();
        }
        if let Some(s) = self.lock().get(run_id) {
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
        self.lock().remove(run_id);
    }
}
