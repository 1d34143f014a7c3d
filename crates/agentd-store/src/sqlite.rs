//! SQLite store: WAL mode, one writer connection (SQLite serialises writes
//! anyway; one connection avoids busy retries) and a small reader pool.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use agentd_core::{EventKind, Run, RunError, RunStatus, Session, StoredEvent, Tenant, Usage};
use async_trait::async_trait;
use sqlx::Row;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};

use crate::{EventQuery, NewRun, Page, Result, RunFilter, SessionMessage, Store, StoreError, now};

/// Schema versions, applied in order; each runs once.
const MIGRATIONS: &[(i64, &str)] = &[(1, include_str!("../migrations/sqlite/0001_init.sql"))];

/// The embedded default store.
pub struct SqliteStore {
    writer: SqlitePool,
    reader: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let opts = SqliteConnectOptions::from_str("sqlite://")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(Duration::from_secs(10))
            .foreign_keys(true);
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(opts.clone())
            .await?;
        migrate(&writer).await?;
        let reader = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(opts.read_only(true))
            .await?;
        Ok(Self { writer, reader })
    }
}

async fn migrate(pool: &SqlitePool) -> Result<()> {
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)",
    )
    .execute(pool)
    .await?;
    for (version, sql) in MIGRATIONS {
        let mut tx = pool.begin().await?;
        let done: Option<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations WHERE version = ?")
            .bind(version)
            .fetch_optional(&mut *tx)
            .await?;
        if done.is_none() {
            sqlx::raw_sql(*sql).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)")
                .bind(version)
                .bind(now())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
    }
    Ok(())
}

fn json_col<T: serde::de::DeserializeOwned>(row: &SqliteRow, col: &str) -> Result<T> {
    let s: String = row.try_get(col)?;
    serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("{col}: {e}")))
}

fn session_from_row(row: &SqliteRow) -> Result<Session> {
    Ok(Session {
        id: row.try_get("id")?,
        title: row.try_get("title")?,
        metadata: json_col(row, "metadata")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn run_from_row(row: &SqliteRow) -> Result<Run> {
    let status: String = row.try_get("status")?;
    let error: Option<String> = row.try_get("error")?;
    let error: Option<RunError> = match error {
        Some(s) => Some(serde_json::from_str(&s).map_err(|e| StoreError::Corrupt(format!("error: {e}")))?),
        None => None,
    };
    let max_steps: i64 = row.try_get("max_steps")?;
    Ok(Run {
        id: row.try_get("id")?,
        session_id: row.try_get("session_id")?,
        status: RunStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?,
        input: row.try_get("input")?,
        model: row.try_get("model")?,
        max_steps: max_steps as u32,
        output: row.try_get("output")?,
        error,
        usage: json_col(row, "usage")?,
        last_seq: row.try_get("last_seq")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

fn event_from_row(row: &SqliteRow) -> Result<StoredEvent> {
    Ok(StoredEvent {
        run_id: row.try_get("run_id")?,
        seq: row.try_get("seq")?,
        type_name: row.try_get("type")?,
        data: json_col(row, "data")?,
        created_at: row.try_get("created_at")?,
    })
}

fn tenant_from_row(row: &SqliteRow) -> Result<Tenant> {
    Ok(Tenant {
        org: row.try_get("org")?,
        user: row.try_get("usr")?,
        project: row.try_get("project")?,
    })
}

fn limit(l: u32) -> i64 {
    i64::from(l.clamp(1, 10_000))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[async_trait]
impl Store for SqliteStore {
    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.reader).await?;
        Ok(())
    }

    async fn create_session(&self, t: &Tenant, title: Option<String>, metadata: serde_json::Value) -> Result<Session> {
        let ts = now();
        let s = Session {
            id: agentd_core::new_id("ses"),
            title,
            metadata,
            created_at: ts.clone(),
            updated_at: ts,
        };
        sqlx::query(
            "INSERT INTO sessions (id, org, usr, project, title, metadata, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&s.id)
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(&s.title)
        .bind(to_json(&s.metadata)?)
        .bind(&s.created_at)
        .bind(&s.updated_at)
        .execute(&self.writer)
        .await?;
        Ok(s)
    }

    async fn get_session(&self, t: &Tenant, id: &str) -> Result<Option<Session>> {
        let row = sqlx::query("SELECT * FROM sessions WHERE id = ? AND org = ? AND usr = ? AND project = ?")
            .bind(id)
            .bind(&t.org)
            .bind(&t.user)
            .bind(&t.project)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    async fn list_sessions(&self, t: &Tenant, page: &Page) -> Result<Vec<Session>> {
        let rows = sqlx::query(
            "SELECT * FROM sessions WHERE org = ? AND usr = ? AND project = ? AND (? IS NULL OR id < ?) ORDER BY id DESC LIMIT ?",
        )
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(&page.after)
        .bind(&page.after)
        .bind(limit(page.limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(session_from_row).collect()
    }

    async fn delete_session(&self, t: &Tenant, id: &str) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let n = sqlx::query("DELETE FROM sessions WHERE id = ? AND org = ? AND usr = ? AND project = ?")
            .bind(id)
            .bind(&t.org)
            .bind(&t.user)
            .bind(&t.project)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        if n == 0 {
            return Ok(false);
        }
        for sql in [
            "DELETE FROM events WHERE run_id IN (SELECT id FROM runs WHERE session_id = ? AND org = ? AND usr = ? AND project = ?)",
            "DELETE FROM runs WHERE session_id = ? AND org = ? AND usr = ? AND project = ?",
            "DELETE FROM messages WHERE session_id = ? AND org = ? AND usr = ? AND project = ?",
        ] {
            sqlx::query(sql)
                .bind(id)
                .bind(&t.org)
                .bind(&t.user)
                .bind(&t.project)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    async fn session_messages(&self, t: &Tenant, session_id: &str) -> Result<Vec<SessionMessage>> {
        let rows = sqlx::query(
            "SELECT * FROM messages WHERE session_id = ? AND org = ? AND usr = ? AND project = ? ORDER BY idx",
        )
        .bind(session_id)
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .fetch_all(&self.reader)
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

    async fn create_run(&self, t: &Tenant, new: &NewRun) -> Result<(Run, StoredEvent)> {
        let ts = now();
        let mut tx = self.writer.begin().await?;
        let exists: Option<String> =
            sqlx::query_scalar("SELECT id FROM sessions WHERE id = ? AND org = ? AND usr = ? AND project = ?")
                .bind(&new.session_id)
                .bind(&t.org)
                .bind(&t.user)
                .bind(&t.project)
                .fetch_optional(&mut *tx)
                .await?;
        if exists.is_none() {
            return Err(StoreError::NotFound);
        }
        sqlx::query(
            "INSERT INTO runs (id, org, usr, project, session_id, status, input, model, max_steps, created_at, updated_at)
             VALUES (?, ?, ?, ?, ?, 'queued', ?, ?, ?, ?, ?)",
        )
        .bind(&new.id)
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(&new.session_id)
        .bind(&new.input)
        .bind(&new.model)
        .bind(i64::from(new.max_steps))
        .bind(&ts)
        .bind(&ts)
        .execute(&mut *tx)
        .await?;
        let created = EventKind::RunCreated {
            input: new.input.clone(),
            model: new.model.clone(),
            max_steps: new.max_steps,
        };
        let mut evs = append_tx(&mut tx, t, &new.id, std::slice::from_ref(&created)).await?;
        let run = sqlx::query("SELECT * FROM runs WHERE id = ?")
            .bind(&new.id)
            .fetch_one(&mut *tx)
            .await?;
        let run = run_from_row(&run)?;
        tx.commit().await?;
        let ev = evs.pop().ok_or_else(|| StoreError::Corrupt("no event".into()))?;
        Ok((run, ev))
    }

    async fn get_run(&self, t: &Tenant, id: &str) -> Result<Option<Run>> {
        let row = sqlx::query("SELECT * FROM runs WHERE id = ? AND org = ? AND usr = ? AND project = ?")
            .bind(id)
            .bind(&t.org)
            .bind(&t.user)
            .bind(&t.project)
            .fetch_optional(&self.reader)
            .await?;
        row.as_ref().map(run_from_row).transpose()
    }

    async fn list_runs(&self, t: &Tenant, f: &RunFilter, page: &Page) -> Result<Vec<Run>> {
        let rows = sqlx::query(
            "SELECT * FROM runs WHERE org = ? AND usr = ? AND project = ?
               AND (? IS NULL OR session_id = ?) AND (? IS NULL OR status = ?) AND (? IS NULL OR id < ?)
             ORDER BY id DESC LIMIT ?",
        )
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(&f.session_id)
        .bind(&f.session_id)
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.status.map(|s| s.as_str()))
        .bind(&page.after)
        .bind(&page.after)
        .bind(limit(page.limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(run_from_row).collect()
    }

    async fn append(&self, t: &Tenant, run_id: &str, events: &[EventKind]) -> Result<Vec<StoredEvent>> {
        let mut tx = self.writer.begin().await?;
        let out = append_tx(&mut tx, t, run_id, events).await?;
        tx.commit().await?;
        Ok(out)
    }

    async fn events(&self, t: &Tenant, run_id: &str, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let types = match &q.types {
            Some(v) => Some(to_json(v)?),
            None => None,
        };
        let rows = sqlx::query(
            "SELECT * FROM events WHERE run_id = ? AND org = ? AND usr = ? AND project = ? AND seq > ?
               AND (? IS NULL OR type IN (SELECT value FROM json_each(?)))
             ORDER BY seq LIMIT ?",
        )
        .bind(run_id)
        .bind(&t.org)
        .bind(&t.user)
        .bind(&t.project)
        .bind(q.after)
        .bind(&types)
        .bind(&types)
        .bind(limit(q.limit))
        .fetch_all(&self.reader)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    async fn unfinished_runs(&self) -> Result<Vec<(Tenant, Run)>> {
        let rows = sqlx::query("SELECT * FROM runs WHERE status IN ('queued', 'running') ORDER BY id")
            .fetch_all(&self.reader)
            .await?;
        rows.iter()
            .map(|r| Ok((tenant_from_row(r)?, run_from_row(r)?)))
            .collect()
    }
}

/// Appends events and applies their effects inside an open transaction.
async fn append_tx(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    t: &Tenant,
    run_id: &str,
    events: &[EventKind],
) -> Result<Vec<StoredEvent>> {
    let row = sqlx::query(
        "SELECT session_id, status, last_seq, usage FROM runs WHERE id = ? AND org = ? AND usr = ? AND project = ?",
    )
    .bind(run_id)
    .bind(&t.org)
    .bind(&t.user)
    .bind(&t.project)
    .fetch_optional(&mut **tx)
    .await?
    .ok_or(StoreError::NotFound)?;
    let session_id: String = row.try_get("session_id")?;
    let status: String = row.try_get("status")?;
    let mut seq: i64 = row.try_get("last_seq")?;
    let mut usage: Usage = json_col(&row, "usage")?;
    let mut status = RunStatus::parse(&status).ok_or_else(|| StoreError::Corrupt(format!("status {status}")))?;
    let ts = now();
    let mut out = Vec::with_capacity(events.len());
    let (mut output, mut error) = (None, None);
    for ev in events {
        if status.is_terminal() {
            return Err(StoreError::RunFinished);
        }
        seq += 1;
        let data = ev.data();
        sqlx::query("INSERT INTO events (run_id, seq, org, usr, project, type, data, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(run_id)
            .bind(seq)
            .bind(&t.org)
            .bind(&t.user)
            .bind(&t.project)
            .bind(ev.type_name())
            .bind(to_json(&data)?)
            .bind(&ts)
            .execute(&mut **tx)
            .await?;
        let fx = ev.effects();
        if let Some(m) = fx.message {
            sqlx::query(
                "INSERT INTO messages (session_id, idx, org, usr, project, run_id, seq, message, created_at)
                 SELECT ?, message_count, ?, ?, ?, ?, ?, ?, ? FROM sessions WHERE id = ?",
            )
            .bind(&session_id)
            .bind(&t.org)
            .bind(&t.user)
            .bind(&t.project)
            .bind(run_id)
            .bind(seq)
            .bind(to_json(&m)?)
            .bind(&ts)
            .bind(&session_id)
            .execute(&mut **tx)
            .await?;
            sqlx::query("UPDATE sessions SET message_count = message_count + 1, updated_at = ? WHERE id = ?")
                .bind(&ts)
                .bind(&session_id)
                .execute(&mut **tx)
                .await?;
        }
        if let Some(u) = fx.usage {
            usage.add(&u);
        }
        if let Some(s) = fx.status {
            status = s;
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
    let error = match error {
        Some(e) => Some(to_json(&e)?),
        None => None,
    };
    sqlx::query(
        "UPDATE runs SET status = ?, last_seq = ?, usage = ?, output = COALESCE(?, output), error = COALESCE(?, error), updated_at = ? WHERE id = ?",
    )
    .bind(status.as_str())
    .bind(seq)
    .bind(to_json(&usage)?)
    .bind(output)
    .bind(error)
    .bind(&ts)
    .bind(run_id)
    .execute(&mut **tx)
    .await?;
    Ok(out)
}
