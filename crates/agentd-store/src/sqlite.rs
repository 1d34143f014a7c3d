//! SQLite store (WAL). All writes go through one writer thread that owns
//! the write connection and commits whatever is queued as one transaction
//! (group commit, each request in its own savepoint); reads run on the
//! blocking pool over a small set of read-only connections. One thread hop
//! per request instead of one per statement.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_core::{
    Approval, ApprovalChange, EventKind, Resolution, Run, RunError, RunStatus, Session, StoredEvent, Tenant,
};
use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};
use tokio::sync::{mpsc, oneshot};

use crate::plan::{RunHead, plan_append};
use crate::prelude::*;
use crate::{
    AppendGuard, ApprovalFilter, ClaimLimits, DirectCall, DocKind, EventQuery, NewRun, Page, PruneScope, PruneStats,
    Result, RunFilter, SessionMessage, StoreError, fair_pick, now, now_ms,
};

/// Schema versions, applied in order; each runs once.
const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/sqlite/0001_init.sql")),
    (2, include_str!("../migrations/sqlite/0002_leases.sql")),
    (3, include_str!("../migrations/sqlite/0003_tenant_docs.sql")),
    (4, include_str!("../migrations/sqlite/0004_tool_calls.sql")),
    (5, include_str!("../migrations/sqlite/0005_run_agent.sql")),
    (6, include_str!("../migrations/sqlite/0006_approvals.sql")),
    (7, include_str!("../migrations/sqlite/0007_run_profiles.sql")),
    (8, include_str!("../migrations/sqlite/0008_run_cost.sql")),
    (9, include_str!("../migrations/sqlite/0009_expired_status.sql")),
];

/// Most requests committed together in one transaction.
const MAX_BATCH: usize = 128;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// Runs a request's statements; returns whether they succeeded and how to
/// hand the result back once the batch is committed (or failed).
type Job = Box<dyn FnOnce(&Connection) -> (bool, Deliver) + Send>;
type Deliver = Box<dyn FnOnce(Option<&str>) + Send>;

/// The embedded default store.
pub struct SqliteStore {
    writer: mpsc::UnboundedSender<Job>,
    readers: Arc<ReadPool>,
}

/// Reader threads of the store's own: tool work and anything else on
/// tokio's blocking pool can never take the threads reads need.
struct ReadPool {
    jobs: std::sync::mpsc::SyncSender<ReadJob>,
}

type ReadJob = Box<dyn FnOnce(Result<&Connection>) + Send>;
/// Threads (each with its own read-only connection) serving reads.
const READERS: usize = 4;

impl ReadPool {
    fn start(path: &Path) -> Result<Self> {
        let (tx, rx) = std::sync::mpsc::sync_channel::<ReadJob>(1024);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..READERS {
            let (rx, path) = (rx.clone(), path.to_path_buf());
            std::thread::Builder::new()
                .name(format!("agentd-sqlite-reader-{i}"))
                .spawn(move || {
                    let mut conn: Option<Connection> = None;
                    loop {
                        let job = match rx.lock().unwrap_or_else(|e| e.into_inner()).recv() {
                            Ok(j) => j,
                            Err(_) => return,
                        };
                        if conn.is_none() {
                            match open_conn(&path, OpenFlags::SQLITE_OPEN_READ_ONLY) {
                                Ok(c) => conn = Some(c),
                                Err(e) => {
                                    job(Err(e));
                                    continue;
                                }
                            }
                        }
                        if let Some(c) = conn.as_ref() {
                            job(Ok(c));
                        }
                    }
                })
                .map_err(|e| StoreError::Db(format!("cannot start reader thread: {e}")))?;
        }
        Ok(Self { jobs: tx })
    }
}

fn open_conn(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let conn = open_conn(&p, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(%mode, "SQLite refused WAL mode");
            }
            migrate(&conn)?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Db(e.to_string()))??;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("agentd-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Db(format!("cannot start writer thread: {e}")))?;
        Ok(Self { writer: tx, readers: Arc::new(ReadPool::start(&path)?) })
    }

    /// Runs `f` inside the writer's transaction; the result arrives after commit.
    async fn write<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let r = f(conn);
            let ok = r.is_ok();
            let deliver: Deliver = Box::new(move |commit_err| {
                let r = match (commit_err, r) {
                    (Some(e), Ok(_)) => Err(StoreError::Db(e.to_string())),
                    (_, r) => r,
                };
                let _ = tx.send(r);
            });
            (ok, deliver)
        });
        self.writer.send(job).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    /// Runs `f` on a read-only connection on one of the store's reader threads.
    async fn read<T: Send + 'static>(&self, f: impl FnOnce(&Connection) -> Result<T> + Send + 'static) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = tx.send(conn.and_then(f));
        });
        let jobs = self.readers.jobs.clone();
        // A full queue waits for room without holding an async thread.
        match jobs.try_send(job) {
            Ok(()) => {}
            Err(std::sync::mpsc::TrySendError::Full(job)) => {
                tokio::task::spawn_blocking(move || jobs.send(job))
                    .await
                    .map_err(|e| StoreError::Db(e.to_string()))?
                    .map_err(|_| StoreError::Closed)?;
            }
            Err(std::sync::mpsc::TrySendError::Disconnected(_)) => return Err(StoreError::Closed),
        }
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

fn writer_loop(conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            let msg = e.to_string();
            for job in batch {
                // Nothing ran: report the failure without running the job.
                drop(job);
                tracing::error!(error = %msg, "SQLite BEGIN failed");
            }
            continue;
        }
        let mut delivers = Vec::with_capacity(batch.len());
        for job in batch {
            let sp = conn.execute_batch("SAVEPOINT req");
            let (ok, deliver) = job(&conn);
            if sp.is_ok() {
                let undo = if ok { "RELEASE req" } else { "ROLLBACK TO req; RELEASE req" };
                if let Err(e) = conn.execute_batch(undo) {
                    tracing::error!(error = %e, "SQLite savepoint failed");
                }
            }
            delivers.push(deliver);
        }
        let commit = conn.execute_batch("COMMIT").err().map(|e| e.to_string());
        if commit.is_some() {
            let _ = conn.execute_batch("ROLLBACK");
        }
        for d in delivers {
            d(commit.as_deref());
        }
    }
}

/// Applies each migration once, in its own transaction, and checks the ones
/// applied before against their checksums.
fn migrate(conn: &Connection) -> Result<()> {
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )?;
    let has_checksum: bool = conn
        .query_row("SELECT count(*) FROM pragma_table_info('schema_migrations') WHERE name = 'checksum'", [], |r| {
            r.get::<_, i64>(0)
        })
        .map(|n| n > 0)?;
    if !has_checksum {
        conn.execute_batch("ALTER TABLE schema_migrations ADD COLUMN checksum TEXT")?;
    }
    for (version, sql) in MIGRATIONS {
        let done: Option<Option<String>> = conn
            .query_row("SELECT checksum FROM schema_migrations WHERE version = ?1", [version], |r| r.get(0))
            .optional()?;
        let sum = crate::migration_checksum(sql);
        match done {
            Some(stored) => {
                crate::check_migration(*version, stored.as_deref(), sql)?;
                if stored.is_none() {
                    conn.execute(
                        "UPDATE schema_migrations SET checksum = ?2 WHERE version = ?1",
                        params![version, sum],
                    )?;
                }
            }
            None => {
                let tx = conn.unchecked_transaction()?;
                tx.execute_batch(sql)?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at, checksum) VALUES (?1, ?2, ?3)",
                    params![version, now(), sum],
                )?;
                tx.commit()?;
            }
        }
    }
    Ok(())
}

fn corrupt(col: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{col}: {e}"))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &Row<'_>, col: &str) -> Result<T> {
    let s: String = row.get(col)?;
    serde_json::from_str(&s).map_err(|e| corrupt(col, e))
}

fn session_from_row(row: &Row<'_>) -> Result<Session> {
    Ok(Session {
        id: row.get("id")?,
        title: row.get("title")?,
        metadata: json_col(row, "metadata")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn run_from_row(row: &Row<'_>) -> Result<Run> {
    let status: String = row.get("status")?;
    let error: Option<String> = row.get("error")?;
    let error: Option<RunError> =
        error.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("error", e))).transpose()?;
    Ok(Run {
        id: row.get("id")?,
        session_id: row.get("session_id")?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        input: row.get("input")?,
        agent: row.get("agent")?,
        model: row.get("model")?,
        max_steps: row.get("max_steps")?,
        output: row.get("output")?,
        error,
        usage: json_col(row, "usage")?,
        attempted_profiles: json_col(row, "attempted_profiles")?,
        final_profile: row.get("final_profile")?,
        cost_usd: row.get("cost_usd")?,
        last_seq: row.get("last_seq")?,
        created_at: row.get("created_at")?,
        updated_at: row.get("updated_at")?,
    })
}

fn event_from_row(row: &Row<'_>) -> Result<StoredEvent> {
    Ok(StoredEvent {
        run_id: row.get("run_id")?,
        seq: row.get("seq")?,
        type_name: row.get("type")?,
        data: json_col(row, "data")?,
        created_at: row.get("created_at")?,
    })
}

fn tenant_from_row(row: &Row<'_>) -> Result<Tenant> {
    Ok(Tenant { org: row.get("org")?, user: row.get("usr")?, project: row.get("project")? })
}

fn limit(l: u32) -> i64 {
    i64::from(l.clamp(1, 10_000))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Collects mapped rows, keeping the first mapping error.
fn collect<T>(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
    f: fn(&Row<'_>) -> Result<T>,
) -> Result<Vec<T>> {
    let mut rows = stmt.query(params)?;
    let mut out = vec![];
    while let Some(r) = rows.next()? {
        out.push(f(r)?);
    }
    Ok(out)
}

#[async_trait]
impl JournalStore for SqliteStore {
    async fn ping(&self) -> Result<()> {
        // Both doors: a reader thread and the writer must answer.
        self.read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await?;
        self.write(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0)).map(|_| ())?)).await
    }

    async fn create_run(&self, t: &Tenant, new: &NewRun) -> Result<(Run, StoredEvent)> {
        let (t, new) = (t.clone(), new.clone());
        self.write(move |c| {
            let ts = now();
            let exists: Option<String> = c
                .prepare_cached("SELECT id FROM sessions WHERE id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4")?
                .query_row(params![new.session_id, t.org, t.user, t.project], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::NotFound);
            }
            if new.reject_if_busy
                && let Some(active) = active_run_tx(c, &t, &new.session_id)?
            {
                return Err(StoreError::SessionBusy(active.id));
            }
            c.prepare_cached(
                "INSERT INTO runs (id, org, usr, project, session_id, status, input, model, max_steps, created_at, updated_at, agent)
                 VALUES (?1, ?2, ?3, ?4, ?5, 'queued', ?6, ?7, ?8, ?9, ?9, ?10)",
            )?
            .execute(params![
                new.id,
                t.org,
                t.user,
                t.project,
                new.session_id,
                new.input,
                new.model,
                new.max_steps,
                ts,
                new.agent
            ])?;
            let created = EventKind::RunCreated {
                input: new.input.clone(),
                model: new.model.clone(),
                max_steps: new.max_steps,
                agent: new.agent.clone(),
                images: new.images.clone(),
        tool_choice: new.tool_choice.clone(),
        system: new.system.clone(),
            };
            let mut evs = append_tx(c, &t, &new.id, &AppendGuard::default(), std::slice::from_ref(&created))?;
            let mut st = c.prepare_cached("SELECT * FROM runs WHERE id = ?1")?;
            let run = collect(&mut st, [&new.id], run_from_row)?.pop().ok_or(StoreError::NotFound)?;
            let ev = evs.pop().ok_or_else(|| StoreError::Corrupt("no event".into()))?;
            Ok((run, ev))
        })
        .await
    }

    async fn get_run(&self, t: &Tenant, id: &str) -> Result<Option<Run>> {
        let (t, id) = (t.clone(), id.to_string());
        self.read(move |c| {
            let mut st =
                c.prepare_cached("SELECT * FROM runs WHERE id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4")?;
            Ok(collect(&mut st, params![id, t.org, t.user, t.project], run_from_row)?.pop())
        })
        .await
    }

    async fn list_runs(&self, t: &Tenant, f: &RunFilter, page: &Page) -> Result<Vec<Run>> {
        let (t, f, page) = (t.clone(), f.clone(), page.clone());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT * FROM runs WHERE org = ?1 AND usr = ?2 AND project = ?3
                   AND (?4 IS NULL OR session_id = ?4) AND (?5 IS NULL OR status = ?5) AND (?6 IS NULL OR id < ?6)
                 ORDER BY id DESC LIMIT ?7",
            )?;
            let status = f.status.map(|s| s.as_str());
            collect(
                &mut st,
                params![t.org, t.user, t.project, f.session_id, status, page.after, limit(page.limit)],
                run_from_row,
            )
        })
        .await
    }

    async fn append_guarded(
        &self,
        t: &Tenant,
        run_id: &str,
        guard: &AppendGuard,
        events: &[EventKind],
    ) -> Result<Vec<StoredEvent>> {
        let (t, id, guard, events) = (t.clone(), run_id.to_string(), guard.clone(), events.to_vec());
        self.write(move |c| append_tx(c, &t, &id, &guard, &events)).await
    }

    async fn events(&self, t: &Tenant, run_id: &str, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let types = q.types.as_ref().map(to_json).transpose()?;
        let (t, id, after, lim) = (t.clone(), run_id.to_string(), q.after, limit(q.limit));
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT * FROM events WHERE run_id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4 AND seq > ?5
                   AND (?6 IS NULL OR type IN (SELECT value FROM json_each(?6)))
                 ORDER BY seq LIMIT ?7",
            )?;
            collect(&mut st, params![id, t.org, t.user, t.project, after, types, lim], event_from_row)
        })
        .await
    }

    async fn unfinished_runs(&self) -> Result<Vec<(Tenant, Run)>> {
        self.read(|c| {
            let mut st = c.prepare_cached("SELECT * FROM runs WHERE status IN ('queued', 'running') ORDER BY id")?;
            collect(&mut st, [], |r| Ok((tenant_from_row(r)?, run_from_row(r)?)))
        })
        .await
    }

    async fn active_run(&self, t: &Tenant, session_id: &str) -> Result<Option<Run>> {
        let (t, sid) = (t.clone(), session_id.to_string());
        self.read(move |c| active_run_tx(c, &t, &sid)).await
    }

    async fn prune(&self, cutoff: &str, scope: &PruneScope) -> Result<PruneStats> {
        let (cutoff, org, except) = (cutoff.to_string(), scope.org.clone(), to_json(&scope.except_orgs)?);
        self.write(move |c| {
            // Which organisations: ?2 = only this one (or all), ?3 = JSON list to skip.
            let runs = "SELECT id FROM runs WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < ?1
                          AND (?2 IS NULL OR org = ?2) AND org NOT IN (SELECT value FROM json_each(?3))";
            let events =
                c.execute(&format!("DELETE FROM events WHERE run_id IN ({runs})"), params![cutoff, org, except])?;
            c.execute(&format!("DELETE FROM approvals WHERE run_id IN ({runs})"), params![cutoff, org, except])?;
            let runs = c.execute(&format!("DELETE FROM runs WHERE id IN ({runs})"), params![cutoff, org, except])?;
            let idle = "SELECT s.id FROM sessions s WHERE s.updated_at < ?1
                          AND (?2 IS NULL OR s.org = ?2) AND s.org NOT IN (SELECT value FROM json_each(?3))
                          AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.session_id = s.id)";
            let messages =
                c.execute(&format!("DELETE FROM messages WHERE session_id IN ({idle})"), params![cutoff, org, except])?;
            let sessions =
                c.execute(&format!("DELETE FROM sessions WHERE id IN ({idle})"), params![cutoff, org, except])?;
            let tool_calls = c.execute(
                "DELETE FROM tool_calls WHERE created_at < ?1 AND (?2 IS NULL OR org = ?2)
                   AND org NOT IN (SELECT value FROM json_each(?3))",
                params![cutoff, org, except],
            )?;
            Ok(PruneStats {
                runs: runs as u64,
                events: events as u64,
                sessions: sessions as u64,
                messages: messages as u64,
                tool_calls: tool_calls as u64,
            })
        })
        .await
    }
}

#[async_trait]
impl SessionStore for SqliteStore {
    async fn create_session(&self, t: &Tenant, title: Option<String>, metadata: serde_json::Value) -> Result<Session> {
        let ts = now();
        let (title, metadata) = crate::masked_session(title, metadata);
        let s = Session { id: agentd_core::new_id("ses"), title, metadata, created_at: ts.clone(), updated_at: ts };
        let (t, row) = (t.clone(), s.clone());
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO sessions (id, org, usr, project, title, metadata, created_at, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            )?
            .execute(params![
                row.id,
                t.org,
                t.user,
                t.project,
                row.title,
                to_json(&row.metadata)?,
                row.created_at,
                row.updated_at
            ])?;
            Ok(())
        })
        .await?;
        Ok(s)
    }

    async fn get_session(&self, t: &Tenant, id: &str) -> Result<Option<Session>> {
        let (t, id) = (t.clone(), id.to_string());
        self.read(move |c| {
            let mut st =
                c.prepare_cached("SELECT * FROM sessions WHERE id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4")?;
            Ok(collect(&mut st, params![id, t.org, t.user, t.project], session_from_row)?.pop())
        })
        .await
    }

    async fn list_sessions(&self, t: &Tenant, page: &Page) -> Result<Vec<Session>> {
        let (t, page) = (t.clone(), page.clone());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT * FROM sessions WHERE org = ?1 AND usr = ?2 AND project = ?3 AND (?4 IS NULL OR id < ?4)
                 ORDER BY id DESC LIMIT ?5",
            )?;
            collect(&mut st, params![t.org, t.user, t.project, page.after, limit(page.limit)], session_from_row)
        })
        .await
    }

    async fn delete_session(&self, t: &Tenant, id: &str) -> Result<bool> {
        let (t, id) = (t.clone(), id.to_string());
        self.write(move |c| {
            let p = params![id, t.org, t.user, t.project];
            let n = c.execute("DELETE FROM sessions WHERE id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4", p)?;
            if n == 0 {
                return Ok(false);
            }
            c.execute(
                "DELETE FROM events WHERE run_id IN
                   (SELECT id FROM runs WHERE session_id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4)",
                p,
            )?;
            c.execute("DELETE FROM runs WHERE session_id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4", p)?;
            c.execute("DELETE FROM approvals WHERE session_id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4", p)?;
            c.execute("DELETE FROM messages WHERE session_id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4", p)?;
            Ok(true)
        })
        .await
    }

    async fn session_messages(&self, t: &Tenant, session_id: &str) -> Result<Vec<SessionMessage>> {
        let (t, id) = (t.clone(), session_id.to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT * FROM messages WHERE session_id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4 ORDER BY idx",
            )?;
            collect(&mut st, params![id, t.org, t.user, t.project], |r| {
                Ok(SessionMessage {
                    index: r.get("idx")?,
                    run_id: r.get("run_id")?,
                    seq: r.get("seq")?,
                    message: json_col(r, "message")?,
                    created_at: r.get("created_at")?,
                })
            })
        })
        .await
    }
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn claim_runs(&self, node: &str, limits: &ClaimLimits) -> Result<Vec<(Tenant, Run)>> {
        let (node, limits) = (node.to_string(), limits.clone());
        self.write(move |c| {
            let now = now_ms();
            let scan = i64::from(limits.max) * 4 + 16;
            // Candidates ranked within their organisation, so every
            // organisation's oldest runs are seen however long another's backlog.
            let mut st = c.prepare_cached(
                "SELECT * FROM (
                   SELECT r.*, row_number() OVER (PARTITION BY r.org ORDER BY r.id) AS org_rank FROM runs r
                   WHERE r.status IN ('queued', 'running')
                     AND (r.lease_until IS NULL OR r.lease_until < ?1)
                     AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.session_id = r.session_id
                                       AND o.status IN ('queued', 'running', 'waiting_approval') AND o.id < r.id)
                     AND r.org NOT IN (SELECT org FROM runs WHERE status IN ('queued', 'running')
                                         AND lease_until >= ?1 GROUP BY org HAVING count(*) >= ?4)
                 ) WHERE org_rank <= ?3 ORDER BY org_rank, id LIMIT ?2",
            )?;
            let (per_org, full) = (i64::from(limits.max), i64::from(limits.per_tenant));
            let candidates = collect(&mut st, params![now, scan, per_org, full], |r| {
                Ok((tenant_from_row(r)?, run_from_row(r)?))
            })?;
            if candidates.is_empty() {
                return Ok(vec![]);
            }
            let mut active = std::collections::HashMap::new();
            let mut st = c.prepare_cached(
                "SELECT org, count(*) FROM runs WHERE status IN ('queued', 'running') AND lease_until >= ?1 GROUP BY org",
            )?;
            let mut rows = st.query([now])?;
            while let Some(r) = rows.next()? {
                active.insert(r.get::<_, String>(0)?, r.get::<_, u32>(1)?);
            }
            let picked = fair_pick(candidates, &active, limits.max, limits.per_tenant);
            let mut upd = c.prepare_cached("UPDATE runs SET lease_node = ?1, lease_until = ?2 WHERE id = ?3")?;
            for (_, run) in &picked {
                upd.execute(params![node, now + limits.lease_ms, run.id])?;
            }
            Ok(picked)
        })
        .await
    }

    async fn renew_leases(&self, node: &str, run_ids: &[String], lease_ms: i64) -> Result<Vec<String>> {
        let (node, ids) = (node.to_string(), run_ids.to_vec());
        self.write(move |c| {
            let until = now_ms() + lease_ms;
            let mut st = c.prepare_cached(
                "UPDATE runs SET lease_until = ?1
                 WHERE id = ?2 AND lease_node = ?3 AND status IN ('queued', 'running')",
            )?;
            let mut lost = vec![];
            for id in ids {
                if st.execute(params![until, id, node])? == 0 {
                    lost.push(id);
                }
            }
            Ok(lost)
        })
        .await
    }

    async fn release_leases(&self, node: &str, run_ids: Option<&[String]>) -> Result<u64> {
        let (node, ids) = (node.to_string(), run_ids.map(<[String]>::to_vec));
        self.write(move |c| {
            let n = match ids {
                None => {
                    c.execute("UPDATE runs SET lease_node = NULL, lease_until = NULL WHERE lease_node = ?1", [&node])?
                }
                Some(ids) => {
                    let mut st = c.prepare_cached(
                        "UPDATE runs SET lease_node = NULL, lease_until = NULL WHERE id = ?1 AND lease_node = ?2",
                    )?;
                    let mut n = 0;
                    for id in ids {
                        n += st.execute(params![id, node])?;
                    }
                    n
                }
            };
            Ok(n as u64)
        })
        .await
    }
}

#[async_trait]
impl DocStore for SqliteStore {
    async fn create_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<()> {
        let (t, kind, name, doc) =
            (t.clone(), kind.as_str().to_string(), name.to_string(), to_json(&crate::masked_doc(kind, doc))?);
        self.write(move |c| {
            let n = c.execute(
                "INSERT INTO tenant_docs (kind, org, usr, project, name, doc, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT DO NOTHING",
                params![kind, t.org, t.user, t.project, name, doc, now()],
            )?;
            if n == 0 { Err(StoreError::AlreadyExists) } else { Ok(()) }
        })
        .await
    }

    async fn list_docs(&self, t: &Tenant, kind: DocKind) -> Result<Vec<serde_json::Value>> {
        let (t, kind) = (t.clone(), kind.as_str().to_string());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT doc FROM tenant_docs WHERE kind = ?1 AND org = ?2 AND usr = ?3 AND project = ?4 ORDER BY name",
            )?;
            collect(&mut st, params![kind, t.org, t.user, t.project], |r| json_col(r, "doc"))
        })
        .await
    }

    async fn list_docs_all(&self, kind: DocKind) -> Result<Vec<(Tenant, serde_json::Value)>> {
        let kind = kind.as_str().to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT org, usr, project, doc FROM tenant_docs WHERE kind = ?1 ORDER BY org, usr, project, name",
            )?;
            collect(&mut st, params![kind], |r| Ok((tenant_from_row(r)?, json_col(r, "doc")?)))
        })
        .await
    }

    async fn replace_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<bool> {
        let (t, kind, name, doc) =
            (t.clone(), kind.as_str().to_string(), name.to_string(), to_json(&crate::masked_doc(kind, doc))?);
        self.write(move |c| {
            let n = c.execute(
                "UPDATE tenant_docs SET doc = ?6 WHERE kind = ?1 AND org = ?2 AND usr = ?3 AND project = ?4 AND name = ?5",
                params![kind, t.org, t.user, t.project, name, doc],
            )?;
            Ok(n > 0)
        })
        .await
    }

    async fn delete_doc(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<bool> {
        let (t, kind, name) = (t.clone(), kind.as_str().to_string(), name.to_string());
        self.write(move |c| {
            let n = c.execute(
                "DELETE FROM tenant_docs WHERE kind = ?1 AND org = ?2 AND usr = ?3 AND project = ?4 AND name = ?5",
                params![kind, t.org, t.user, t.project, name],
            )?;
            Ok(n > 0)
        })
        .await
    }
}

#[async_trait]
impl ToolCallStore for SqliteStore {
    async fn record_tool_call(&self, t: &Tenant, call: &DirectCall) -> Result<()> {
        let (t, call, record) = (t.clone(), call.clone(), to_json(call)?);
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO tool_calls (id, org, usr, project, session_id, record, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            )?
            .execute(params![call.id, t.org, t.user, t.project, call.session_id, record, call.created_at])?;
            Ok(())
        })
        .await
    }

    async fn list_tool_calls(&self, t: &Tenant, session_id: Option<&str>, page: &Page) -> Result<Vec<DirectCall>> {
        let (t, sid, page) = (t.clone(), session_id.map(str::to_string), page.clone());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT record FROM tool_calls WHERE org = ?1 AND usr = ?2 AND project = ?3
                   AND (?4 IS NULL OR session_id = ?4) AND (?5 IS NULL OR id < ?5) ORDER BY id DESC LIMIT ?6",
            )?;
            collect(&mut st, params![t.org, t.user, t.project, sid, page.after, limit(page.limit)], |r| {
                json_col(r, "record")
            })
        })
        .await
    }
}

#[async_trait]
impl ApprovalStore for SqliteStore {
    async fn list_approvals(&self, t: &Tenant, f: &ApprovalFilter, page: &Page) -> Result<Vec<Approval>> {
        let (t, f, page) = (t.clone(), f.clone(), page.clone());
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT * FROM approvals WHERE org = ?1 AND usr = ?2 AND project = ?3
                   AND (?4 IS NULL OR run_id = ?4) AND (?5 IS NULL OR session_id = ?5)
                   AND (?6 IS NULL OR status = ?6) AND (?7 IS NULL OR id > ?7)
                 ORDER BY id LIMIT ?8",
            )?;
            let status = f.status.map(|s| s.as_str());
            let p = params![t.org, t.user, t.project, f.run_id, f.session_id, status, page.after, limit(page.limit)];
            collect(&mut st, p, approval_from_row)
        })
        .await
    }

    async fn get_approval(&self, t: &Tenant, id: &str) -> Result<Option<Approval>> {
        let (t, id) = (t.clone(), id.to_string());
        self.read(move |c| get_approval_tx(c, &t, &id)).await
    }

    async fn resolve_approval(&self, t: &Tenant, id: &str, r: &Resolution) -> Result<(Approval, Vec<StoredEvent>)> {
        let (t, id, r) = (t.clone(), id.to_string(), r.clone());
        self.write(move |c| {
            let a = get_approval_tx(c, &t, &id)?.ok_or(StoreError::NotFound)?;
            if a.status != agentd_core::ApprovalStatus::Pending {
                return Err(StoreError::NotPending(a.status.to_string()));
            }
            let remaining: u32 = c
                .prepare_cached("SELECT count(*) FROM approvals WHERE run_id = ?1 AND status = 'pending' AND id != ?2")?
                .query_row(params![a.run_id, id], |row| row.get(0))?;
            let ev = EventKind::ApprovalResolved {
                approval_id: id.clone(),
                call_id: a.call_id.clone(),
                approval_key: a.approval_key.clone(),
                decision: r.decision,
                reason: r.reason.clone(),
                arguments: r.arguments.clone(),
                remaining,
            };
            let stored = append_tx(c, &t, &a.run_id, &AppendGuard::default(), &[ev])?;
            let a = get_approval_tx(c, &t, &id)?.ok_or(StoreError::NotFound)?;
            Ok((a, stored))
        })
        .await
    }

    async fn session_grant(&self, t: &Tenant, session_id: &str, approval_key: &str) -> Result<bool> {
        let (t, sid, key) = (t.clone(), session_id.to_string(), approval_key.to_string());
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM approvals WHERE session_id = ?1 AND approval_key = ?2
                       AND decision = 'approve_for_session' AND org = ?3 AND usr = ?4 AND project = ?5",
                )?
                .query_row(params![sid, key, t.org, t.user, t.project], |r| r.get(0))?;
            Ok(n > 0)
        })
        .await
    }

    async fn expired_approvals(&self, now: &str, max: u32) -> Result<Vec<(Tenant, String)>> {
        let now = now.to_string();
        self.read(move |c| {
            let mut st = c.prepare_cached(
                "SELECT org, usr, project, id FROM approvals
                 WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at < ?1 ORDER BY expires_at LIMIT ?2",
            )?;
            collect(&mut st, params![now, limit(max)], |r| Ok((tenant_from_row(r)?, r.get::<_, String>("id")?)))
        })
        .await
    }
}

fn approval_from_row(r: &Row<'_>) -> Result<Approval> {
    let (status, decision) =
        crate::approval_vocab(&r.get::<_, String>("status")?, r.get::<_, Option<String>>("decision")?.as_deref())?;
    let request: serde_json::Value = json_col(r, "request")?;
    let arguments: Option<String> = r.get("arguments")?;
    Ok(Approval {
        id: r.get("id")?,
        run_id: r.get("run_id")?,
        session_id: r.get("session_id")?,
        call_id: r.get("call_id")?,
        tool: r.get("tool")?,
        arguments_sanitized: request["arguments_sanitized"].clone(),
        approval_key: r.get("approval_key")?,
        risk: r.get("risk")?,
        reasons: serde_json::from_value(request["reasons"].clone()).unwrap_or_default(),
        rule: request["rule"].as_str().unwrap_or_default().to_string(),
        status,
        decision,
        reason: r.get("reason")?,
        arguments: arguments.map(|a| serde_json::from_str(&a).map_err(|e| corrupt("arguments", e))).transpose()?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        resolved_at: r.get("resolved_at")?,
    })
}

fn get_approval_tx(c: &Connection, t: &Tenant, id: &str) -> Result<Option<Approval>> {
    let mut st =
        c.prepare_cached("SELECT * FROM approvals WHERE id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4")?;
    Ok(collect(&mut st, params![id, t.org, t.user, t.project], approval_from_row)?.pop())
}

fn active_run_tx(c: &Connection, t: &Tenant, session_id: &str) -> Result<Option<Run>> {
    let mut st = c.prepare_cached(
        "SELECT * FROM runs WHERE session_id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4
           AND status IN ('queued', 'running', 'waiting_approval') ORDER BY id LIMIT 1",
    )?;
    Ok(collect(&mut st, params![session_id, t.org, t.user, t.project], run_from_row)?.pop())
}

/// Appends events and applies their effects inside the writer's transaction.
fn append_tx(
    c: &Connection,
    t: &Tenant,
    run_id: &str,
    guard: &AppendGuard,
    events: &[EventKind],
) -> Result<Vec<StoredEvent>> {
    let (session_id, head) = c
        .prepare_cached(
            "SELECT session_id, status, last_seq, usage, lease_node, input, attempted_profiles, cost_usd FROM runs
             WHERE id = ?1 AND org = ?2 AND usr = ?3 AND project = ?4",
        )?
        .query_row(params![run_id, t.org, t.user, t.project], |r| {
            let head = RunHead {
                status: r.get(1)?,
                last_seq: r.get(2)?,
                usage: r.get(3)?,
                lease_node: r.get(4)?,
                input: r.get(5)?,
                attempted: r.get(6)?,
                images: vec![],
                cost_usd: r.get(7)?,
            };
            Ok((r.get::<_, String>(0)?, head))
        })
        .optional()?
        .ok_or(StoreError::NotFound)?;
    let mut head = head;
    if events.iter().any(|e| matches!(e, EventKind::RunStarted { .. })) {
        // The run starts: its input message takes the images sent with it.
        let data: Option<String> = c
            .prepare_cached("SELECT data FROM events WHERE run_id = ?1 AND seq = 1")?
            .query_row([run_id], |r| r.get(0))
            .optional()?;
        head.images = crate::plan::images_of(data.as_deref());
    }
    let plan = plan_append(run_id, head, guard, events)?;
    let ts = &plan.ts;
    let mut ins = c.prepare_cached(
        "INSERT INTO events (run_id, seq, org, usr, project, type, data, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    for ev in &plan.events {
        ins.execute(params![run_id, ev.seq, t.org, t.user, t.project, ev.type_name, to_json(&ev.data)?, ts])?;
    }
    for (seq, m) in &plan.messages {
        c.prepare_cached(
            "INSERT INTO messages (session_id, idx, org, usr, project, run_id, seq, message, created_at)
             SELECT ?1, message_count, ?2, ?3, ?4, ?5, ?6, ?7, ?8 FROM sessions WHERE id = ?1",
        )?
        .execute(params![session_id, t.org, t.user, t.project, run_id, seq, m, ts])?;
        c.prepare_cached("UPDATE sessions SET message_count = message_count + 1, updated_at = ?1 WHERE id = ?2")?
            .execute(params![ts, session_id])?;
    }
    for a in &plan.approvals {
        match a {
            ApprovalChange::Open { id, call_id, tool, approval_key, risk, expires_at, request } => {
                c.prepare_cached(
                    "INSERT INTO approvals (id, org, usr, project, run_id, session_id, call_id, tool, approval_key,
                       risk, status, request, created_at, expires_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, 'pending', ?11, ?12, ?13)",
                )?
                .execute(params![
                    id,
                    t.org,
                    t.user,
                    t.project,
                    run_id,
                    session_id,
                    call_id,
                    tool,
                    approval_key,
                    risk,
                    to_json(request)?,
                    ts,
                    expires_at
                ])?;
            }
            ApprovalChange::Close { id, status, decision, reason, arguments } => {
                let args = arguments.as_ref().map(to_json).transpose()?;
                c.prepare_cached(
                    "UPDATE approvals SET status = ?1, decision = ?2, reason = ?3, arguments = ?4, resolved_at = ?5
                     WHERE id = ?6 AND run_id = ?7",
                )?
                .execute(params![status.as_str(), decision.as_str(), reason, args, ts, id, run_id])?;
            }
        }
    }
    if plan.close_approvals {
        c.prepare_cached(
            "UPDATE approvals SET status = 'cancelled', resolved_at = ?1 WHERE run_id = ?2 AND status = 'pending'",
        )?
        .execute(params![ts, run_id])?;
    }
    c.prepare_cached(
        "UPDATE runs SET status = ?1, last_seq = ?2, usage = ?3, output = COALESCE(?4, output),
           error = COALESCE(?5, error), updated_at = ?6,
           lease_node = CASE WHEN ?8 THEN NULL ELSE lease_node END,
           lease_until = CASE WHEN ?8 THEN NULL ELSE lease_until END,
           attempted_profiles = COALESCE(?9, attempted_profiles), final_profile = COALESCE(?10, final_profile),
           cost_usd = COALESCE(?11, cost_usd)
         WHERE id = ?7",
    )?
    .execute(params![
        plan.status.as_str(),
        plan.last_seq,
        plan.usage,
        plan.output,
        plan.error,
        ts,
        run_id,
        plan.release_lease,
        plan.attempted,
        plan.final_profile,
        plan.cost_usd
    ])?;
    Ok(plan.events)
}
