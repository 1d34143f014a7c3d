//! PostgreSQL store for several nodes sharing one queue: row locks serialise
//! appends per run, `FOR UPDATE SKIP LOCKED` lets nodes claim runs without
//! blocking each other, and `NOTIFY` tells every node about every append.

use std::collections::HashMap;

use agentd_core::{
    Approval, ApprovalChange, EventKind, Resolution, Run, RunError, RunStatus, Session, StoredEvent, Tenant,
};
use async_trait::async_trait;
use sqlx::postgres::{PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Postgres, Row, Transaction};
use tokio::sync::broadcast;

use crate::plan::{RunHead, plan_append};
use crate::prelude::*;
use crate::{
    AppendGuard, ApprovalFilter, Change, ClaimLimits, DirectCall, DocKind, EventQuery, NewRun, Page, PruneScope,
    PruneStats, Result, RunFilter, SessionMessage, StoreError, fair_pick, now, now_ms,
};

const MIGRATIONS: &[(i64, &str)] = &[
    (1, include_str!("../migrations/postgres/0001_init.sql")),
    (2, include_str!("../migrations/postgres/0002_tenant_docs.sql")),
    (3, include_str!("../migrations/postgres/0003_tool_calls.sql")),
    (4, include_str!("../migrations/postgres/0004_run_agent.sql")),
    (5, include_str!("../migrations/postgres/0005_approvals.sql")),
    (6, include_str!("../migrations/postgres/0006_run_profiles.sql")),
    (7, include_str!("../migrations/postgres/0007_run_cost.sql")),
    (8, include_str!("../migrations/postgres/0008_expired_status.sql")),
];
/// Advisory lock key serialising migrations when several nodes start at once.
const MIGRATION_LOCK: i64 = 0x6167_656e_7464;
const CHANNEL: &str = "agentd_events";

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// The multi-node store.
pub struct PgStore {
    pool: PgPool,
    changes: broadcast::Sender<Change>,
}

impl PgStore {
    /// Connects, applies migrations and starts listening for other nodes' appends.
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await?;
        migrate(&pool).await?;
        let (changes, _) = broadcast::channel(4096);
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(CHANNEL).await?;
        let tx = changes.clone();
        tokio::spawn(async move {
            loop {
                match listener.recv().await {
                    Ok(n) => {
                        if let Ok(c) = serde_json::from_str::<Change>(n.payload()) {
                            let _ = tx.send(c);
                        }
                    }
                    Err(e) => {
                        // PgListener reconnects on the next recv; do not spin.
                        tracing::warn!(error = %e, "LISTEN connection failed; retrying");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
        });
        Ok(Self { pool, changes })
    }
}

async fn migrate(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
    let res = async {
        sqlx::query(
            "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL)",
        )
        .execute(&mut *conn)
        .await?;
        sqlx::query("ALTER TABLE schema_migrations ADD COLUMN IF NOT EXISTS checksum TEXT").execute(&mut *conn).await?;
        for (version, sql) in MIGRATIONS {
            let done: Option<Option<String>> =
                sqlx::query_scalar("SELECT checksum FROM schema_migrations WHERE version = $1")
                    .bind(version)
                    .fetch_optional(&mut *conn)
                    .await?;
            let sum = crate::migration_checksum(sql);
            match done {
                Some(stored) => {
                    crate::check_migration(*version, stored.as_deref(), sql)?;
                    if stored.is_none() {
                        sqlx::query("UPDATE schema_migrations SET checksum = $2 WHERE version = $1")
                            .bind(version)
                            .bind(&sum)
                            .execute(&mut *conn)
                            .await?;
                    }
                }
                None => {
                    // Each migration and its record in one transaction, as on SQLite.
                    let mut tx = sqlx::Connection::begin(&mut *conn).await?;
                    sqlx::raw_sql(*sql).execute(&mut *tx).await?;
                    sqlx::query("INSERT INTO schema_migrations (version, applied_at, checksum) VALUES ($1, $2, $3)")
                        .bind(version)
                        .bind(now())
                        .bind(&sum)
                        .execute(&mut *tx)
                        .await?;
                    tx.commit().await?;
                }
            }
        }
        Ok::<_, StoreError>(())
    }
    .await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
    res
}

fn corrupt(col: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{col}: {e}"))
}

fn json_col<T: serde::de::DeserializeOwned>(row: &PgRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| corrupt(col, e))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn session_from_row(row: &PgRow) -> Result<Session> {
    Ok(Session {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        metadata: json_col(row, "metadata")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn run_from_row(row: &PgRow) -> Result<Run> {
    let status: String = row.try_get("status")?;
    let error: Option<String> = row.try_get("error")?;
    let error: Option<RunError> =
        error.map(|s| serde_json::from_str(&s).map_err(|e| corrupt("error", e))).transpose()?;
    let max_steps: i64 = row.try_get("max_steps")?;
    Ok(Run {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        input: row.try_get("input")?,
        agent: row.try_get("agent")?,
        model: row.try_get("model")?,
        max_steps: max_steps as u32,
        output: row.try_get("output")?,
        error,
        usage: json_col(row, "usage")?,
        attempted_profiles: json_col(row, "attempted_profiles")?,
        final_profile: row.try_get("final_profile")?,
        cost_usd: row.try_get("cost_usd")?,
        last_seq: row.try_get("last_seq")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn event_from_row(row: &PgRow) -> Result<StoredEvent> {
    Ok(StoredEvent {
        run_id: row.try_get("run_id")?,
        seq: row.try_get("seq")?,
        type_name: row.try_get("type")?,
        data: json_col(row, "data")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A query whose `$1` is a key and `$2`..`$4` the caller's tenant scope:
/// the shape of most lookups here.
fn scoped<'q>(
    sql: &'static str,
    key: &'q str,
    t: &'q Tenant,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    sqlx::query(sql).bind(key).bind(&t.org).bind(&t.user).bind(&t.project)
}

fn tenant_from_row(row: &PgRow) -> Result<Tenant> {
    Ok(Tenant { org: row.try_get("org")?, user: row.try_get("usr")?, project: row.try_get("project")? })
}

fn limit(l: u32) -> i64 {
    i64::from(l.clamp(1, 10_000))
}

#[async_trait]
impl JournalStore for PgStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    async fn create_run(&self, t: &Tenant, new: &NewRun) -> Result<(Run, StoredEvent)> {
        let mut tx = self.pool.begin().await?;
        match create_run_tx(&mut tx, t, new).await {
            Ok(r) => {
                tx.commit().await?;
                Ok(r)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn get_run(&self, t: &Tenant, id: &str) -> Result<Option<Run>> {
        let row = scoped("SELECT * FROM runs WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4", id, t)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn list_runs(&self, t: &Tenant, f: &RunFilter, page: &Page) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE org = $1 AND usr = $2 AND project = $3
               AND ($4::text IS NULL OR session_id = $4) AND ($5::text IS NULL OR status = $5)
               AND ($6::text IS NULL OR id < $6)
             ORDER BY id DESC LIMIT $7",
        )
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(&f.session_id)
        .bind(f.status.map(|s| s.as_str()))
        .bind(&page.after)
        .bind(limit(page.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn append_guarded(
        &self,
        t: &Tenant,
        run_id: &str,
        guard: &AppendGuard,
        events: &[EventKind],
    ) -> Result<Vec<StoredEvent>> {
        let mut tx = self.pool.begin().await?;
        match append_tx(&mut tx, t, run_id, guard, events).await {
            Ok(out) => {
                tx.commit().await?;
                Ok(out)
            }
            Err(e) => {
                // Roll back now: a dropped transaction would keep the run row
                // locked until the connection is reused (SKIP LOCKED would skip it).
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn events(&self, t: &Tenant, run_id: &str, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let rows = scoped(
            "SELECT * FROM events WHERE run_id = $1 AND org = $2 AND usr = $3 AND project = $4 AND seq > $5
               AND ($6::text[] IS NULL OR type = ANY($6))
             ORDER BY seq LIMIT $7",
            run_id,
            t,
        )
        .bind(q.after)
        .bind(&q.types)
        .bind(limit(q.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<(Tenant, Run)>> {
        let rows = sqlx::query("SELECT * FROM runs WHERE status IN ('queued', 'running') ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(|r| Ok((tenant_from_row(r)?, run_from_row(r)?))).collect()
    }

    async fn active_run(&self, t: &Tenant, session_id: &str) -> Result<Option<Run>> {
        let mut tx = self.pool.begin().await?;
        let r = active_run_tx(&mut tx, t, session_id).await?;
        tx.commit().await?;
        Ok(r)
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }

    async fn prune(&self, cutoff: &str, scope: &PruneScope) -> Result<PruneStats> {
        let mut tx = self.pool.begin().await?;
        let run_ids: Vec<String> = sqlx::query_scalar(
            "SELECT id FROM runs WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < $1
               AND ($2::text IS NULL OR org = $2) AND NOT (org = ANY($3))",
        )
        .bind(cutoff)
        .bind(&scope.org)
        .bind(&scope.except_orgs)
        .fetch_all(&mut *tx)
        .await?;
        let events = sqlx::query("DELETE FROM events WHERE run_id = ANY($1)")
            .bind(&run_ids)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("DELETE FROM approvals WHERE run_id = ANY($1)").bind(&run_ids).execute(&mut *tx).await?;
        let runs =
            sqlx::query("DELETE FROM runs WHERE id = ANY($1)").bind(&run_ids).execute(&mut *tx).await?.rows_affected();
        let idle: Vec<String> = sqlx::query_scalar(
            "SELECT s.id FROM sessions s WHERE s.updated_at < $1
               AND ($2::text IS NULL OR s.org = $2) AND NOT (s.org = ANY($3))
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.session_id = s.id)",
        )
        .bind(cutoff)
        .bind(&scope.org)
        .bind(&scope.except_orgs)
        .fetch_all(&mut *tx)
        .await?;
        let messages = sqlx::query("DELETE FROM messages WHERE session_id = ANY($1)")
            .bind(&idle)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        let sessions =
            sqlx::query("DELETE FROM sessions WHERE id = ANY($1)").bind(&idle).execute(&mut *tx).await?.rows_affected();
        let tool_calls = sqlx::query(
            "DELETE FROM tool_calls WHERE created_at < $1 AND ($2::text IS NULL OR org = $2) AND NOT (org = ANY($3))",
        )
        .bind(cutoff)
        .bind(&scope.org)
        .bind(&scope.except_orgs)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        tx.commit().await?;
        Ok(PruneStats { runs, events, sessions, messages, tool_calls })
    }
}

#[async_trait]
impl SessionStore for PgStore {
    async fn create_session(&self, t: &Tenant, title: Option<String>, metadata: serde_json::Value) -> Result<Session> {
        let ts = now();
        let (title, metadata) = crate::masked_session(title, metadata);
        let s = Session { id: agentd_core::new_id("ses"), title, metadata, created_at: ts.clone(), updated_at: ts };
        scoped(
            "INSERT INTO sessions (id, org, usr, project, title, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            &s.id,
            t,
        )
        .bind(&s.title)
        .bind(to_json(&s.metadata)?)
        .bind(&s.created_at)
        .bind(&s.updated_at)
        .execute(&self.pool)
        .await?;
        Ok(s)
    }

    async fn get_session(&self, t: &Tenant, id: &str) -> Result<Option<Session>> {
        let row = scoped("SELECT * FROM sessions WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4", id, t)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn list_sessions(&self, t: &Tenant, page: &Page) -> Result<Vec<Session>> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE org = $1 AND usr = $2 AND project = $3 AND ($4::text IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5",
        )
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(&page.after)
        .bind(limit(page.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn delete_session(&self, t: &Tenant, id: &str) -> Result<bool> {
        let mut tx = self.pool.begin().await?;
        let n = scoped("DELETE FROM sessions WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4", id, t)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        for sql in [
            "DELETE FROM events WHERE run_id IN
               (SELECT id FROM runs WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4)",
            "DELETE FROM runs WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4",
            "DELETE FROM approvals WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4",
            "DELETE FROM messages WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4",
        ] {
            scoped(sql, id, t).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn session_messages(&self, t: &Tenant, session_id: &str) -> Result<Vec<SessionMessage>> {
        let rows = scoped(
            "SELECT * FROM messages WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4 ORDER BY idx",
            session_id,
            t,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                Ok(SessionMessage {
                    index: r.try_get("idx")?,
                    run_id: r.try_get("run_id")?,
                    seq: r.try_get("seq")?,
                    message: json_col(r, "message")?,
                    created_at: r.try_get("created_at")?,
                })
            })
            .collect()
    }
}

#[async_trait]
impl LeaseStore for PgStore {
    async fn claim_runs(&self, node: &str, limits: &ClaimLimits) -> Result<Vec<(Tenant, Run)>> {
        let now = now_ms();
        let scan = i64::from(limits.max) * 4 + 16;
        let mut tx = self.pool.begin().await?;
        // SKIP LOCKED: nodes claiming at the same time take different runs.
        // Candidates ranked within their organisation, so every organisation's
        // oldest runs are seen however long another's backlog; locked after ranking.
        let rows = sqlx::query(
            "SELECT r.* FROM runs r
             WHERE r.id IN (
               SELECT id FROM (
                 SELECT c.id, row_number() OVER (PARTITION BY c.org ORDER BY c.id) AS org_rank FROM runs c
                 WHERE c.status IN ('queued', 'running')
                   AND (c.lease_until IS NULL OR c.lease_until < $1)
                   AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.session_id = c.session_id
                                     AND o.status IN ('queued', 'running', 'waiting_approval') AND o.id < c.id)
                   AND c.org NOT IN (SELECT org FROM runs WHERE status IN ('queued', 'running')
                                       AND lease_until >= $1 GROUP BY org HAVING count(*) >= $4)
               ) ranked WHERE org_rank <= $3 ORDER BY org_rank, id LIMIT $2)
               AND r.status IN ('queued', 'running')
               AND (r.lease_until IS NULL OR r.lease_until < $1)
             ORDER BY r.id
             FOR UPDATE OF r SKIP LOCKED",
        )
        .bind(now)
        .bind(scan)
        .bind(i64::from(limits.max))
        .bind(i64::from(limits.per_tenant))
        .fetch_all(&mut *tx)
        .await?;
        if rows.is_empty() {
            tx.commit().await?;
            return Ok(vec![]);
        }
        let candidates =
            rows.iter().map(|r| Ok((tenant_from_row(r)?, run_from_row(r)?))).collect::<Result<Vec<_>>>()?;
        let counts = sqlx::query(
            "SELECT org, count(*) AS n FROM runs WHERE status IN ('queued', 'running') AND lease_until >= $1 GROUP BY org",
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let mut active = HashMap::new();
        for r in &counts {
            let n: i64 = r.try_get("n")?;
            active.insert(r.try_get::<String, _>("org")?, n as u32);
        }
        let picked = fair_pick(candidates, &active, limits.max, limits.per_tenant);
        let ids: Vec<String> = picked.iter().map(|(_, r)| r.id.clone()).collect();
        sqlx::query("UPDATE runs SET lease_node = $1, lease_until = $2 WHERE id = ANY($3)")
            .bind(node)
            .bind(now + limits.lease_ms)
            .bind(&ids)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(picked)
    }

    async fn renew_leases(&self, node: &str, run_ids: &[String], lease_ms: i64) -> Result<Vec<String>> {
        let held: Vec<String> = sqlx::query_scalar(
            "UPDATE runs SET lease_until = $1
             WHERE id = ANY($2) AND lease_node = $3 AND status IN ('queued', 'running') RETURNING id",
        )
        .bind(now_ms() + lease_ms)
        .bind(run_ids)
        .bind(node)
        .fetch_all(&self.pool)
        .await?;
        Ok(run_ids.iter().filter(|id| !held.contains(id)).cloned().collect())
    }

    async fn release_leases(&self, node: &str, run_ids: Option<&[String]>) -> Result<u64> {
        let n = match run_ids {
            None => {
                sqlx::query("UPDATE runs SET lease_node = NULL, lease_until = NULL WHERE lease_node = $1")
                    .bind(node)
                    .execute(&self.pool)
                    .await?
            }
            Some(ids) => {
                sqlx::query(
                    "UPDATE runs SET lease_node = NULL, lease_until = NULL WHERE id = ANY($1) AND lease_node = $2",
                )
                .bind(ids)
                .bind(node)
                .execute(&self.pool)
                .await?
            }
        };
        Ok(n.rows_affected())
    }
}

#[async_trait]
impl DocStore for PgStore {
    async fn create_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<()> {
        let n = scoped("INSERT INTO tenant_docs (kind, org, usr, project, name, doc, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING", kind.as_str(), t)
        .bind(name)
        .bind(to_json(&crate::masked_doc(kind, doc))?)
        .bind(now())
        .execute(&self.pool)
        .await?
        .rows_affected();
        if n == 0 { Err(StoreError::AlreadyExists) } else { Ok(()) }
    }

    async fn list_docs(&self, t: &Tenant, kind: DocKind) -> Result<Vec<serde_json::Value>> {
        let rows = scoped(
            "SELECT doc FROM tenant_docs WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 ORDER BY name",
            kind.as_str(),
            t,
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| json_col(r, "doc")).collect()
    }

    async fn list_docs_all(&self, kind: DocKind) -> Result<Vec<(Tenant, serde_json::Value)>> {
        let rows = sqlx::query(
            "SELECT org, usr, project, doc FROM tenant_docs WHERE kind = $1 ORDER BY org, usr, project, name",
        )
        .bind(kind.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((tenant_from_row(r)?, json_col(r, "doc")?))).collect()
    }

    async fn replace_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<bool> {
        let n = sqlx::query(
            "UPDATE tenant_docs SET doc = $6 WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 AND name = $5",
        )
        .bind(kind.as_str())
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(name)
        .bind(to_json(&crate::masked_doc(kind, doc))?)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }

    async fn delete_doc(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<bool> {
        let n = scoped(
            "DELETE FROM tenant_docs WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 AND name = $5",
            kind.as_str(),
            t,
        )
        .bind(name)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n > 0)
    }
}

#[async_trait]
impl ToolCallStore for PgStore {
    async fn record_tool_call(&self, t: &Tenant, call: &DirectCall) -> Result<()> {
        scoped("INSERT INTO tool_calls (id, org, usr, project, session_id, record, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)", &call.id, t)
        .bind(&call.session_id)
        .bind(to_json(call)?)
        .bind(&call.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn list_tool_calls(&self, t: &Tenant, session_id: Option<&str>, page: &Page) -> Result<Vec<DirectCall>> {
        let rows = sqlx::query(
            "SELECT record FROM tool_calls WHERE org = $1 AND usr = $2 AND project = $3
               AND ($4::text IS NULL OR session_id = $4) AND ($5::text IS NULL OR id < $5) ORDER BY id DESC LIMIT $6",
        )
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(session_id)
        .bind(&page.after)
        .bind(limit(page.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| json_col(r, "record")).collect()
    }
}

#[async_trait]
impl ApprovalStore for PgStore {
    async fn list_approvals(&self, t: &Tenant, f: &ApprovalFilter, page: &Page) -> Result<Vec<Approval>> {
        let rows = sqlx::query(
            "SELECT * FROM approvals WHERE org = $1 AND usr = $2 AND project = $3
               AND ($4::text IS NULL OR run_id = $4) AND ($5::text IS NULL OR session_id = $5)
               AND ($6::text IS NULL OR status = $6) AND ($7::text IS NULL OR id > $7)
             ORDER BY id LIMIT $8",
        )
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(&f.run_id)
        .bind(&f.session_id)
        .bind(f.status.map(|s| s.as_str()))
        .bind(&page.after)
        .bind(limit(page.limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(approval_from_row).collect()
    }

    async fn get_approval(&self, t: &Tenant, id: &str) -> Result<Option<Approval>> {
        let row = scoped("SELECT * FROM approvals WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4", id, t)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(approval_from_row).transpose()
    }

    async fn resolve_approval(&self, t: &Tenant, id: &str, r: &Resolution) -> Result<(Approval, Vec<StoredEvent>)> {
        let mut tx = self.pool.begin().await?;
        match resolve_tx(&mut tx, t, id, r).await {
            Ok(out) => {
                tx.commit().await?;
                Ok(out)
            }
            Err(e) => {
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    async fn session_grant(&self, t: &Tenant, session_id: &str, approval_key: &str) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM approvals WHERE session_id = $1 AND approval_key = $2
               AND decision = 'approve_for_session' AND org = $3 AND usr = $4 AND project = $5",
        )
        .bind(session_id)
        .bind(approval_key)
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    async fn expired_approvals(&self, now: &str, max: u32) -> Result<Vec<(Tenant, String)>> {
        let rows = sqlx::query(
            "SELECT org, usr, project, id FROM approvals
             WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at < $1 ORDER BY expires_at LIMIT $2",
        )
        .bind(now)
        .bind(limit(max))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| Ok((tenant_from_row(r)?, r.try_get::<String, _>("id")?))).collect()
    }
}

/// Creates the run row and its `run.created` event inside an open transaction.
async fn create_run_tx(tx: &mut Transaction<'_, Postgres>, t: &Tenant, new: &NewRun) -> Result<(Run, StoredEvent)> {
    let ts = now();
    // Locking the session row serialises run creation per session (for reject).
    let exists: Option<String> = sqlx::query_scalar(
        "SELECT id FROM sessions WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4 FOR UPDATE",
    )
    .bind(&new.session_id)
    .bind(&t.org)
    .bind(&t.user)
    .bind(&t.project)
    .fetch_optional(&mut **tx)
    .await?;
    if exists.is_none() {
        return Err(StoreError::NotFound);
    }
    if new.reject_if_busy
        && let Some(active) = active_run_tx(tx, t, &new.session_id).await?
    {
        return Err(StoreError::SessionBusy(active.id));
    }
    scoped("INSERT INTO runs (id, org, usr, project, session_id, status, input, model, max_steps, created_at, updated_at, agent)
         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $9, $10)", &new.id, t)
    .bind(&new.session_id)
    .bind(&new.input)
    .bind(&new.model)
    .bind(i64::from(new.max_steps))
    .bind(&ts)
    .bind(&new.agent)
    .execute(&mut **tx)
    .await?;
    let created = EventKind::RunCreated {
        input: new.input.clone(),
        model: new.model.clone(),
        max_steps: new.max_steps,
        agent: new.agent.clone(),
        images: new.images.clone(),
        tool_choice: new.tool_choice.clone(),
        system: new.system.clone(),
    };
    let mut evs = append_tx(tx, t, &new.id, &AppendGuard::default(), std::slice::from_ref(&created)).await?;
    let row = sqlx::query("SELECT * FROM runs WHERE id = $1").bind(&new.id).fetch_one(&mut **tx).await?;
    let run = run_from_row(&row)?;
    let ev = evs.pop().ok_or_else(|| StoreError::Corrupt("no event".into()))?;
    Ok((run, ev))
}

fn approval_from_row(r: &PgRow) -> Result<Approval> {
    let (status, decision) = crate::approval_vocab(
        &r.try_get::<String, _>("status")?,
        r.try_get::<Option<String>, _>("decision")?.as_deref(),
    )?;
    let request: String = r.try_get("request")?;
    let request: serde_json::Value = serde_json::from_str(&request).map_err(|e| corrupt("request", e))?;
    let arguments: Option<String> = r.try_get("arguments")?;
    Ok(Approval {
        id: r.try_get("id")?,
        run_id: r.try_get("run_id")?,
        session_id: r.try_get("session_id")?,
        call_id: r.try_get("call_id")?,
        tool: r.try_get("tool")?,
        arguments_sanitized: request["arguments_sanitized"].clone(),
        approval_key: r.try_get("approval_key")?,
        risk: r.try_get("risk")?,
        reasons: serde_json::from_value(request["reasons"].clone()).unwrap_or_default(),
        rule: request["rule"].as_str().unwrap_or_default().to_string(),
        status,
        decision,
        reason: r.try_get("reason")?,
        arguments: arguments.map(|a| serde_json::from_str(&a).map_err(|e| corrupt("arguments", e))).transpose()?,
        created_at: r.try_get("created_at")?,
        expires_at: r.try_get("expires_at")?,
        resolved_at: r.try_get("resolved_at")?,
    })
}

async fn resolve_tx(
    tx: &mut Transaction<'_, Postgres>,
    t: &Tenant,
    id: &str,
    r: &Resolution,
) -> Result<(Approval, Vec<StoredEvent>)> {
    let sql = "SELECT * FROM approvals WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4";
    // Lock the run first (as every append does), then read the approval under it.
    let run_id: String =
        scoped("SELECT run_id FROM approvals WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4", id, t)
            .fetch_optional(&mut **tx)
            .await?
            .ok_or(StoreError::NotFound)?
            .try_get("run_id")?;
    sqlx::query("SELECT id FROM runs WHERE id = $1 FOR UPDATE").bind(&run_id).execute(&mut **tx).await?;
    let a = approval_from_row(&scoped(sql, id, t).fetch_one(&mut **tx).await?)?;
    if a.status != agentd_core::ApprovalStatus::Pending {
        return Err(StoreError::NotPending(a.status.to_string()));
    }
    let remaining: i64 =
        sqlx::query_scalar("SELECT count(*) FROM approvals WHERE run_id = $1 AND status = 'pending' AND id <> $2")
            .bind(&run_id)
            .bind(id)
            .fetch_one(&mut **tx)
            .await?;
    let ev = EventKind::ApprovalResolved {
        approval_id: id.to_string(),
        call_id: a.call_id.clone(),
        approval_key: a.approval_key.clone(),
        decision: r.decision,
        reason: r.reason.clone(),
        arguments: r.arguments.clone(),
        remaining: remaining as u32,
    };
    let stored = append_tx(tx, t, &run_id, &AppendGuard::default(), &[ev]).await?;
    let a = approval_from_row(&scoped(sql, id, t).fetch_one(&mut **tx).await?)?;
    Ok((a, stored))
}

async fn active_run_tx(tx: &mut Transaction<'_, Postgres>, t: &Tenant, session_id: &str) -> Result<Option<Run>> {
    let row = scoped(
        "SELECT * FROM runs WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4
           AND status IN ('queued', 'running', 'waiting_approval') ORDER BY id LIMIT 1",
        session_id,
        t,
    )
    .fetch_optional(&mut **tx)
    .await?;
    row.as_ref().map(run_from_row).transpose()
}

/// Appends events and applies their effects inside an open transaction; the
/// run row is locked, so appends to one run are serialised across nodes.
async fn append_tx(
    tx: &mut Transaction<'_, Postgres>,
    t: &Tenant,
    run_id: &str,
    guard: &AppendGuard,
    events: &[EventKind],
) -> Result<Vec<StoredEvent>> {
    let row = scoped(
        "SELECT session_id, status, last_seq, usage, lease_node, input, attempted_profiles, cost_usd FROM runs
         WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4 FOR UPDATE",
        run_id,
        t,
    )
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let session_id: String = row.try_get("session_id")?;
    let head = RunHead {
        status: row.try_get("status")?,
        last_seq: row.try_get("last_seq")?,
        usage: row.try_get("usage")?,
        lease_node: row.try_get("lease_node")?,
        input: row.try_get("input")?,
        attempted: row.try_get("attempted_profiles")?,
        images: vec![],
        cost_usd: row.try_get("cost_usd")?,
    };
    let mut head = head;
    if events.iter().any(|e| matches!(e, EventKind::RunStarted { .. })) {
        // The run starts: its input message takes the images sent with it.
        let data: Option<String> = sqlx::query_scalar("SELECT data FROM events WHERE run_id = $1 AND seq = 1")
            .bind(run_id)
            .fetch_optional(&mut **tx)
            .await?;
        head.images = crate::plan::images_of(data.as_deref());
    }
    let plan = plan_append(run_id, head, guard, events)?;
    let ts = &plan.ts;
    for ev in &plan.events {
        sqlx::query(
            "INSERT INTO events (run_id, seq, org, usr, project, type, data, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(run_id)
        .bind(ev.seq)
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(&ev.type_name)
        .bind(to_json(&ev.data)?)
        .bind(ts)
        .execute(&mut **tx)
        .await?;
    }
    for (seq, m) in &plan.messages {
        let idx: i64 = sqlx::query_scalar(
            "UPDATE sessions SET message_count = message_count + 1, updated_at = $2 WHERE id = $1
             RETURNING message_count - 1",
        )
        .bind(&session_id)
        .bind(ts)
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query(
            "INSERT INTO messages (session_id, idx, org, usr, project, run_id, seq, message, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        )
        .bind(&session_id)
        .bind(idx)
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(run_id)
        .bind(seq)
        .bind(m)
        .bind(ts)
        .execute(&mut **tx)
        .await?;
    }
    for a in &plan.approvals {
        match a {
            ApprovalChange::Open { id, call_id, tool, approval_key, risk, expires_at, request } => {
                sqlx::query(
                    "INSERT INTO approvals (id, org, usr, project, run_id, session_id, call_id, tool, approval_key,
                       risk, status, request, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12, $13)",
                )
                .bind(id)
                .bind(&t.org)
                .bind(&t.user)
                .bind(&t.project)
                .bind(run_id)
                .bind(&session_id)
                .bind(call_id)
                .bind(tool)
                .bind(approval_key)
                .bind(risk)
                .bind(to_json(request)?)
                .bind(ts)
                .bind(expires_at)
                .execute(&mut **tx)
                .await?;
            }
            ApprovalChange::Close { id, status, decision, reason, arguments } => {
                sqlx::query(
                    "UPDATE approvals SET status = $1, decision = $2, reason = $3, arguments = $4, resolved_at = $5
                     WHERE id = $6 AND run_id = $7",
                )
                .bind(status.as_str())
                .bind(decision.as_str())
                .bind(reason)
                .bind(arguments.as_ref().map(to_json).transpose()?)
                .bind(ts)
                .bind(id)
                .bind(run_id)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    if plan.close_approvals {
        sqlx::query(
            "UPDATE approvals SET status = 'cancelled', resolved_at = $1 WHERE run_id = $2 AND status = 'pending'",
        )
        .bind(ts)
        .bind(run_id)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query(
        "UPDATE runs SET status = $1, last_seq = $2, usage = $3, output = COALESCE($4, output),
           error = COALESCE($5, error), updated_at = $6,
           lease_node = CASE WHEN $8 THEN NULL ELSE lease_node END,
           lease_until = CASE WHEN $8 THEN NULL ELSE lease_until END,
           attempted_profiles = COALESCE($9, attempted_profiles), final_profile = COALESCE($10, final_profile),
           cost_usd = COALESCE($11, cost_usd)
         WHERE id = $7",
    )
    .bind(plan.status.as_str())
    .bind(plan.last_seq)
    .bind(&plan.usage)
    .bind(&plan.output)
    .bind(&plan.error)
    .bind(ts)
    .bind(run_id)
    .bind(plan.release_lease)
    .bind(&plan.attempted)
    .bind(&plan.final_profile)
    .bind(plan.cost_usd)
    .execute(&mut **tx)
    .await?;
    if let Some(last) = plan.events.last() {
        let change = Change { run_id: run_id.to_string(), seq: last.seq, type_name: last.type_name.clone() };
        sqlx::query("SELECT pg_notify($1, $2)").bind(CHANNEL).bind(to_json(&change)?).execute(&mut **tx).await?;
    }
    Ok(plan.events)
}
