//! Durable storage for sessions, runs and the run journal, behind the
//! [`Store`] trait so several database engines can implement it.

mod sqlite;
#[doc(hidden)]
pub mod suite;

use agentd_core::{EventKind, Message, Run, RunStatus, Session, StoredEvent, Tenant};
use async_trait::async_trait;

pub use sqlite::SqliteStore;

/// Errors a store reports.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    /// The run already reached a terminal state; nothing more may be appended.
    #[error("run already finished")]
    RunFinished,
    #[error("database error: {0}")]
    Db(String),
    /// The store's worker threads are gone (the process is shutting down).
    #[error("store is closed")]
    Closed,
    #[error("corrupt row: {0}")]
    Corrupt(String),
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// Cursor pagination: rows with ids after `after`, at most `limit`.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub after: Option<String>,
    pub limit: u32,
}

/// Filters for run listings.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub session_id: Option<String>,
    pub status: Option<RunStatus>,
}

/// What is needed to create a run.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub session_id: String,
    pub input: String,
    pub model: String,
    pub max_steps: u32,
}

/// A message of a session with where it came from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SessionMessage {
    pub index: i64,
    pub run_id: String,
    pub seq: i64,
    #[serde(flatten)]
    pub message: Message,
    pub created_at: String,
}

/// Events read from a run's journal.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub after: i64,
    pub limit: u32,
    /// Only these event types (all when `None`).
    pub types: Option<Vec<String>>,
}

/// Transactions over the journal and the rows derived from it.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;

    async fn create_session(&self, t: &Tenant, title: Option<String>, metadata: serde_json::Value) -> Result<Session>;
    async fn get_session(&self, t: &Tenant, id: &str) -> Result<Option<Session>>;
    async fn list_sessions(&self, t: &Tenant, page: &Page) -> Result<Vec<Session>>;
    /// Deletes a session with its runs, events and messages. False if unknown.
    async fn delete_session(&self, t: &Tenant, id: &str) -> Result<bool>;
    async fn session_messages(&self, t: &Tenant, session_id: &str) -> Result<Vec<SessionMessage>>;

    /// Inserts the run row and its `run.created` event in one transaction.
    async fn create_run(&self, t: &Tenant, new: &NewRun) -> Result<(Run, StoredEvent)>;
    async fn get_run(&self, t: &Tenant, id: &str) -> Result<Option<Run>>;
    async fn list_runs(&self, t: &Tenant, filter: &RunFilter, page: &Page) -> Result<Vec<Run>>;

    /// Appends events with the next sequence numbers and applies their
    /// effects to the run and session rows, all in one transaction.
    /// Fails with [`StoreError::RunFinished`] once the run is terminal.
    async fn append(&self, t: &Tenant, run_id: &str, events: &[EventKind]) -> Result<Vec<StoredEvent>>;
    async fn events(&self, t: &Tenant, run_id: &str, q: &EventQuery) -> Result<Vec<StoredEvent>>;

    /// Runs of every tenant that have not reached a terminal state.
    async fn unfinished_runs(&self) -> Result<Vec<(Tenant, Run)>>;
}

/// The current time as stored: RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
