//! Durable storage for sessions, runs and the run journal, behind the
//! [`Store`] trait so several database engines can implement it. Each
//! backend sits behind its cargo feature (`sqlite`, `postgres`; both default).
#![cfg_attr(not(any(feature = "sqlite", feature = "postgres")), allow(dead_code))]

mod approvals;
mod audit;
mod docs;
mod journal;
mod keys;
mod leases;
mod limits;
mod migrations;
mod plan;
#[cfg(feature = "postgres")]
mod postgres;
mod queries;
mod secrets;
mod sessions;
#[doc(hidden)]
pub mod sql;
#[cfg(feature = "sqlite")]
mod sqlite;
mod store;
#[doc(hidden)]
#[cfg(feature = "suite")]
pub mod suite;
mod tool_calls;
mod tree;
mod usage;

pub use agentd_core::{BlackboardEntry, DirectCall, SessionMessage};
use agentd_core::{Run, RunStatus, StoredEvent, Tenant};

#[cfg(feature = "postgres")]
pub use postgres::{Pg, PgStore};
#[cfg(feature = "sqlite")]
pub use sqlite::{Sqlite, SqliteStore};
pub use store::SqlStore;
pub use {
    approvals::ApprovalStore, audit::AuditStore, docs::DocStore, journal::JournalStore, keys::KeyStore,
    leases::LeaseStore, limits::LimitStore, secrets::SecretStore, sessions::SessionStore, tool_calls::ToolCallStore,
    usage::UsageStore,
};

/// A journal append seen through the database (other nodes' writes too).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Change {
    pub run_id: String,
    /// The last sequence number written.
    pub seq: i64,
    /// The type of the last event written.
    #[serde(rename = "type")]
    pub type_name: String,
}

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
    /// Another node holds this run's lease now; this node must stop writing.
    #[error("lease lost")]
    LeaseLost,
    /// Someone else appended to the journal since the writer last looked.
    #[error("journal moved on to seq {last_seq}")]
    SeqConflict { last_seq: i64 },
    /// Something with this name exists already.
    #[error("already exists")]
    AlreadyExists,
    /// The approval was answered already (or its run ended); its status.
    #[error("approval is {0}, not pending")]
    NotPending(String),
    /// The session already has an unfinished run (and the caller asked to reject).
    #[error("session busy with run {0}")]
    SessionBusy(String),
    /// A child would take its tree or its org over the operator's cap.
    #[error("{0}")]
    TreeFull(String),
    /// The org keeps as many documents of this kind as it may.
    #[error("the organisation keeps {0} of these already")]
    Full(u32),
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
    pub agent: Option<String>,
    /// The model name the run was started with (a profile or `provider/model`).
    pub model: Option<String>,
    /// Created at or after this time (RFC 3339).
    pub from: Option<String>,
    /// Created before this time (RFC 3339).
    pub to: Option<String>,
}

/// Filters for approval listings.
#[derive(Debug, Clone, Default)]
pub struct ApprovalFilter {
    pub run_id: Option<String>,
    pub session_id: Option<String>,
    pub status: Option<agentd_core::ApprovalStatus>,
}

/// What is needed to create a run.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: String,
    pub session_id: String,
    pub input: String,
    pub model: String,
    pub max_steps: u32,
    /// The agent whose settings the run uses.
    pub agent: String,
    /// Refuse with [`StoreError::SessionBusy`] if the session has an unfinished run.
    pub reject_if_busy: bool,
    /// Images that come with the input.
    pub images: Vec<agentd_core::ContentPart>,
    /// `tool_choice` for the first model call.
    pub tool_choice: Option<serde_json::Value>,
    /// The system prompt rendered from the agent's template.
    pub system: Option<String>,
    /// The version of the tenant agent the run uses.
    pub agent_version: Option<i64>,
    /// Set for a child run: where it sits in its tree (its session is created with it).
    pub child: Option<ChildOf>,
    /// What a child may not exceed.
    pub ceiling: Option<agentd_core::Ceiling>,
    /// Set for a team run.
    pub team: Option<agentd_core::TeamSpec>,
}

/// Where a child run sits in its tree.
#[derive(Debug, Clone)]
pub struct ChildOf {
    pub parent_run_id: String,
    pub root_run_id: String,
    pub depth: u32,
    /// Children of the parent that may run at once (more are held back).
    pub max_concurrent: u32,
    /// The title of the child's own session.
    pub session_title: String,
    /// Runs the whole tree may hold, its root included (checked in the
    /// transaction that makes the child, so parallel spawns cannot overshoot).
    pub max_tree_runs: u32,
    /// Unfinished runs the org may have at once for a child to be made.
    pub max_org_open_runs: u32,
}

impl ChildOf {
    /// A child one level below `parent`, in its tree, under the operator's caps.
    pub fn of(parent: &Run, max_concurrent: u32, session_title: String, caps: TreeCaps) -> Self {
        Self {
            parent_run_id: parent.id.clone(),
            root_run_id: parent.root_run_id.clone().unwrap_or_else(|| parent.id.clone()),
            depth: parent.depth + 1,
            max_concurrent,
            session_title,
            max_tree_runs: caps.max_tree_runs,
            max_org_open_runs: caps.max_org_open_runs,
        }
    }
}

/// The operator's caps a child's creation checks.
#[derive(Debug, Clone, Copy)]
pub struct TreeCaps {
    pub max_tree_runs: u32,
    pub max_org_open_runs: u32,
}

/// One version of a tenant document.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DocVersion {
    pub version: i64,
    pub doc: serde_json::Value,
    pub created_at: String,
}

impl NewRun {
    /// A run of the default agent with a fresh id, allowed to queue behind others.
    pub fn new(
        session_id: impl Into<String>,
        input: impl Into<String>,
        model: impl Into<String>,
        max_steps: u32,
    ) -> Self {
        Self {
            id: agentd_core::new_id("run"),
            session_id: session_id.into(),
            input: input.into(),
            model: model.into(),
            max_steps,
            reject_if_busy: false,
            agent: "default".into(),
            images: vec![],
            tool_choice: None,
            system: None,
            agent_version: None,
            child: None,
            ceiling: None,
            team: None,
        }
    }
}

/// Conditions an append must meet (checked in its transaction).
#[derive(Debug, Clone, Default)]
pub struct AppendGuard {
    /// The writer must hold the run's lease.
    pub lease_node: Option<String>,
    /// The journal must end at this seq (nobody else wrote in between).
    pub expected_seq: Option<i64>,
}

/// How many runs one claim may take.
#[derive(Debug, Clone, Default)]
pub struct ClaimLimits {
    /// Most runs to claim now (free slots on this node).
    pub max: u32,
    /// Most leased runs per organisation across all nodes.
    pub per_tenant: u32,
    pub lease_ms: i64,
    /// Organisations whose cap is not `per_tenant` (their `concurrent_runs`).
    pub per_org: std::collections::HashMap<String, u32>,
}

impl ClaimLimits {
    /// The cap of one organisation.
    pub fn cap(&self, org: &str) -> u32 {
        self.per_org.get(org).copied().unwrap_or(self.per_tenant)
    }

    /// The largest cap of any organisation (what the database may prefilter by).
    pub fn widest(&self) -> u32 {
        self.per_org.values().copied().fold(self.per_tenant, u32::max)
    }
}

/// What a prune removed.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize)]
pub struct PruneStats {
    pub runs: u64,
    pub events: u64,
    pub sessions: u64,
    pub messages: u64,
    pub tool_calls: u64,
}

/// Which tenants a prune applies to.
#[derive(Debug, Clone, Default)]
pub struct PruneScope {
    /// Only this organisation.
    pub org: Option<String>,
    /// Every organisation but these (they have their own time-to-live).
    pub except_orgs: Vec<String>,
}

/// Events read from a run's journal.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub after: i64,
    pub limit: u32,
    /// Only these event types (all when `None`).
    pub types: Option<Vec<String>>,
}

/// Versions of one agent kept (older ones go, unless an unfinished run reads them).
pub const MAX_AGENT_VERSIONS: u32 = 50;

/// A kind of tenant document: its spelling in the `kind` column. The
/// kinds the store itself knows are constants here; a new simple kind is
/// declared where it is defined ([`DocKind::new`]) and needs no store change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DocKind(&'static str);

impl DocKind {
    pub const HTTP_TOOL: DocKind = DocKind("http_tool");
    pub const SKILL: DocKind = DocKind("skill");
    /// Agents keep every version (`doc_versions`).
    pub const AGENT: DocKind = DocKind("agent");
    pub const PROMPT_TEMPLATE: DocKind = DocKind("prompt_template");
    pub const MCP_SERVER: DocKind = DocKind("mcp_server");
    pub const PROVIDER: DocKind = DocKind("provider");
    pub const MODEL_PROFILE: DocKind = DocKind("model_profile");
    pub const TEAM: DocKind = DocKind("team");

    /// A kind by its column value (lowercase words joined by `_`).
    pub const fn new(name: &'static str) -> DocKind {
        DocKind(name)
    }

    /// The value stored in the `kind` column.
    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// Reads an approval's status and decision columns.
pub(crate) fn approval_vocab(
    status: &str,
    decision: Option<&str>,
) -> Result<(agentd_core::ApprovalStatus, Option<agentd_core::Decision>)> {
    let st = agentd_core::ApprovalStatus::parse(status)
        .ok_or_else(|| StoreError::Corrupt(format!("status: unknown approval status {status:?}")))?;
    let d = decision
        .map(|d| agentd_core::Decision::parse(d).ok_or_else(|| StoreError::Corrupt(format!("decision: unknown {d:?}"))))
        .transpose()?;
    Ok((st, d))
}

/// A migration's checksum (FNV-1a, 64 bits): a migration edited after it
/// was applied is refused instead of silently diverging between databases.
pub(crate) fn migration_checksum(sql: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in sql.bytes() {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

/// Checks an applied migration against the file; `None` means the row
/// predates checksums (it is filled in).
pub(crate) fn check_migration(version: i64, stored: Option<&str>, sql: &str) -> Result<()> {
    match stored {
        Some(c) if c != migration_checksum(sql) => Err(StoreError::Db(format!(
            "migration {version} was changed after it was applied (checksum {c}, file {})",
            migration_checksum(sql)
        ))),
        _ => Ok(()),
    }
}

/// A tenant document as it may be stored: secrets masked in every string
/// (every write path masks, not only the journal's). An HTTP tool's header
/// values are the tenant's own credentials and lose only the server's
/// secret values; listing them shows names only.
pub fn masked_doc(t: &agentd_core::Tenant, kind: DocKind, doc: &serde_json::Value) -> serde_json::Value {
    // Maps whose values are the tenant's own credentials, by JSON pointer.
    let credentials: &[&str] = match kind {
        DocKind::HTTP_TOOL | DocKind::PROVIDER => &["/headers"],
        DocKind::MCP_SERVER => &["/config/env", "/config/headers"],
        _ => &[],
    };
    let mut d = doc.clone();
    let kept: Vec<(&str, serde_json::Value)> =
        credentials.iter().filter_map(|p| d.pointer_mut(p).map(|v| (*p, v.take()))).collect();
    agentd_core::redact::redact_value_for(Some(t), &mut d);
    for (p, mut v) in kept {
        if let Some(m) = v.as_object_mut() {
            for x in m.values_mut() {
                if let Some(s) = x.as_str() {
                    *x = serde_json::Value::String(agentd_core::redact::redact_known(s).into_owned());
                }
            }
        }
        if let Some(slot) = d.pointer_mut(p) {
            *slot = v;
        }
    }
    d
}

/// A session's title and metadata with secrets masked.
pub fn masked_session(
    t: &agentd_core::Tenant,
    title: Option<String>,
    metadata: serde_json::Value,
) -> (Option<String>, serde_json::Value) {
    let mut m = metadata;
    agentd_core::redact::redact_value_for(Some(t), &mut m);
    (title.map(|s| agentd_core::redact::redact_for(t, &s).into_owned()), m)
}

/// Everything a store does: one trait per concern, so a later concern
/// (memory, keys, audit) adds its own trait and tables without touching these.
pub trait Store:
    JournalStore
    + SessionStore
    + LeaseStore
    + DocStore
    + ToolCallStore
    + ApprovalStore
    + KeyStore
    + AuditStore
    + SecretStore
    + UsageStore
    + LimitStore
{
}

impl<T> Store for T where
    T: JournalStore
        + SessionStore
        + LeaseStore
        + DocStore
        + ToolCallStore
        + ApprovalStore
        + KeyStore
        + AuditStore
        + SecretStore
        + UsageStore
        + LimitStore
{
}

/// The store traits, for calling store methods through `dyn Store`.
pub mod prelude {
    pub use crate::{
        ApprovalStore, AuditStore, DocStore, JournalStore, KeyStore, LeaseStore, LimitStore, SecretStore, SessionStore,
        Store, ToolCallStore, UsageStore,
    };
}

/// A console login: a session cookie that acts as the API key it was made with.
#[derive(Debug, Clone, PartialEq)]
pub struct Login {
    /// SHA-256 (hex) of the cookie's token.
    pub hash: String,
    pub key_id: String,
    /// The token state-changing console requests must echo in `x-csrf-token`.
    pub csrf: String,
    pub created_at: String,
    pub expires_at: String,
    pub revoked_at: Option<String>,
}

/// A tenant's secret as listed: its name and times, never its value.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SecretMeta {
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

/// An event of the tenant-wide feed: the event and its run's session.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedEvent {
    pub session_id: String,
    pub event: StoredEvent,
}

/// One stored secret, sealed.
#[derive(Debug, Clone, PartialEq)]
pub struct SealedSecret {
    pub tenant: Tenant,
    pub name: String,
    pub sealed: String,
}

/// One run as usage counts it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunUsage {
    pub run_id: String,
    pub user: String,
    pub model: String,
    pub agent: String,
    pub usage: agentd_core::Usage,
    pub cost_usd: Option<f64>,
    pub created_at: String,
    /// `tool.result` events of the run (0 unless asked for).
    pub tool_calls: i64,
}

/// The current time as stored: RFC 3339 UTC with milliseconds.
pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A timestamp in the stored format, `age` before now.
pub fn ago(age: std::time::Duration) -> String {
    let d = chrono::Duration::from_std(age).unwrap_or(chrono::Duration::MAX);
    let t = chrono::Utc::now().checked_sub_signed(d).unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Unix milliseconds now, for leases.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Picks up to `limits.max` candidates round-robin across organisations,
/// keeping each organisation under its cap of leased runs (`active` holds
/// the current counts). Candidates come oldest first.
pub fn fair_pick(
    candidates: Vec<(Tenant, Run)>,
    active: &std::collections::HashMap<String, u32>,
    limits: &ClaimLimits,
) -> Vec<(Tenant, Run)> {
    let max = limits.max;
    let mut queues: Vec<(String, std::collections::VecDeque<(Tenant, Run)>)> = vec![];
    for c in candidates {
        match queues.iter_mut().find(|(org, _)| *org == c.0.org) {
            Some((_, q)) => q.push_back(c),
            None => queues.push((c.0.org.clone(), std::collections::VecDeque::from([c]))),
        }
    }
    let mut taken: std::collections::HashMap<String, u32> = active.clone();
    let mut out = vec![];
    while (out.len() as u32) < max {
        let mut progressed = false;
        for (org, q) in queues.iter_mut() {
            if (out.len() as u32) >= max {
                break;
            }
            let n = taken.entry(org.clone()).or_insert(0);
            if *n >= limits.cap(org) {
                continue;
            }
            if let Some(c) = q.pop_front() {
                *n += 1;
                out.push(c);
                progressed = true;
            }
        }
        if !progressed {
            break;
        }
    }
    out
}
