//! SQLite store (WAL). All writes go through one writer thread that owns
//! the write connection and commits whatever is queued as one transaction
//! (group commit, each request in its own savepoint); reads run on the
//! store's own reader threads over read-only connections. One thread hop
//! per request instead of one per statement.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use crate::sql::{Arg, Backend, Exec, Row, Val, Work};
use crate::store::SqlStore;
use crate::{Result, StoreError};

/// Most requests committed together in one transaction.
const MAX_BATCH: usize = 128;
/// Threads (each with its own read-only connection) serving reads.
const READERS: usize = 4;

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// The embedded default store.
pub type SqliteStore = SqlStore<Sqlite>;

/// Runs a request's statements; returns whether they succeeded and how to
/// hand the result back once the batch is committed (or failed).
type Job = Box<dyn FnOnce(&mut Connection) -> (bool, Deliver) + Send>;
type Deliver = Box<dyn FnOnce(Option<&str>) + Send>;
type ReadJob = Box<dyn FnOnce(Result<&mut Connection>) + Send>;

/// The SQLite backend: the writer thread and the reader threads.
pub struct Sqlite {
    writer: mpsc::UnboundedSender<Job>,
    /// Reader threads of the store's own: tool work and anything else on
    /// tokio's blocking pool can never take the threads reads need.
    readers: std::sync::mpsc::SyncSender<ReadJob>,
}

fn start_readers(path: &Path) -> Result<std::sync::mpsc::SyncSender<ReadJob>> {
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
                    if let Some(c) = conn.as_mut() {
                        job(Ok(c));
                    }
                }
            })
            .map_err(|e| StoreError::Db(format!("cannot start reader thread: {e}")))?;
    }
    Ok(tx)
}

fn open_conn(path: &Path, flags: OpenFlags) -> Result<Connection> {
    let conn = Connection::open_with_flags(path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.execute_batch("PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;")?;
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl SqlStore<Sqlite> {
    /// Opens (creating if needed) the database file and applies migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let path = path.to_path_buf();
        let p = path.clone();
        let conn = tokio::task::spawn_blocking(move || -> Result<Connection> {
            let mut conn = open_conn(&p, OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE)?;
            let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
            if !mode.eq_ignore_ascii_case("wal") {
                tracing::warn!(%mode, "SQLite refused WAL mode");
            }
            futures::executor::block_on(crate::queries::migrate(&mut Conn(&mut conn), &crate::migrations::sqlite()))?;
            Ok(conn)
        })
        .await
        .map_err(|e| StoreError::Db(e.to_string()))??;
        let (tx, rx) = mpsc::unbounded_channel();
        std::thread::Builder::new()
            .name("agentd-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx))
            .map_err(|e| StoreError::Db(format!("cannot start writer thread: {e}")))?;
        Ok(SqlStore { db: Sqlite { writer: tx, readers: start_readers(&path)? } })
    }
}

/// Runs a unit of work on this thread: every statement of a SQLite
/// connection completes synchronously, so its future never waits.
fn run_here<T>(c: &mut Connection, w: Work<T>) -> Result<T> {
    futures::executor::block_on(w(&mut Conn(c)))
}

#[async_trait]
impl Backend for Sqlite {
    async fn write<T: Send + 'static>(&self, w: Work<T>) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let r = run_here(conn, w);
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

    async fn read<T: Send + 'static>(&self, w: Work<T>) -> Result<T> {
        let (tx, rx) = oneshot::channel();
        let job: ReadJob = Box::new(move |conn| {
            let _ = tx.send(conn.and_then(|c| run_here(c, w)));
        });
        let jobs = self.readers.clone();
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

fn writer_loop(mut conn: Connection, mut rx: mpsc::UnboundedReceiver<Job>) {
    while let Some(first) = rx.blocking_recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(j) => batch.push(j),
                Err(_) => break,
            }
        }
        if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
            // Nothing ran: dropping the jobs reports the failure to their callers.
            tracing::error!(error = %e, requests = batch.len(), "SQLite BEGIN failed");
            continue;
        }
        let mut delivers = Vec::with_capacity(batch.len());
        for job in batch {
            let sp = conn.execute_batch("SAVEPOINT req");
            let (ok, deliver) = job(&mut conn);
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

/// One SQLite connection seen as an [`Exec`].
struct Conn<'a>(&'a mut Connection);

thread_local! {
    /// Statements in SQLite's spelling, by the address of the shared text.
    static SPELLED: RefCell<HashMap<(usize, usize), Rc<str>>> = RefCell::new(HashMap::new());
}

/// A shared statement in SQLite's spelling: `?n` for `$n`, JSON lists for
/// arrays, and no row locks (the single writer serialises everything).
fn sqlite_sql(sql: &'static str) -> Rc<str> {
    let key = (sql.as_ptr() as usize, sql.len());
    SPELLED.with(|m| m.borrow_mut().entry(key).or_insert_with(|| translate(sql).into()).clone())
}

fn translate(sql: &str) -> String {
    let sql = sql
        .replace(" FOR UPDATE OF r SKIP LOCKED", "")
        .replace(" FOR UPDATE SKIP LOCKED", "")
        .replace(" FOR UPDATE", "");
    let mut out = String::with_capacity(sql.len() + 32);
    let mut rest = sql.as_str();
    while let Some(i) = rest.find("= ANY($") {
        out.push_str(&rest[..i]);
        let after = &rest[i + "= ANY($".len()..];
        let digits = after.find(')').unwrap_or(after.len());
        out.push_str(&format!("IN (SELECT value FROM json_each(${}))", &after[..digits]));
        rest = after.get(digits + 1..).unwrap_or("");
    }
    out.push_str(rest);
    out.replace('$', "?")
}

impl Conn<'_> {
    fn prepare(&self, sql: &'static str, args: &[Arg<'_>]) -> Result<rusqlite::CachedStatement<'_>> {
        let mut st = self.0.prepare_cached(&sqlite_sql(sql))?;
        if st.parameter_count() != args.len() {
            return Err(StoreError::Db(format!(
                "statement wants {} arguments, got {}",
                st.parameter_count(),
                args.len()
            )));
        }
        for (i, a) in args.iter().enumerate() {
            let i = i + 1;
            match *a {
                Arg::Text(v) => st.raw_bind_parameter(i, v)?,
                Arg::Int(v) => st.raw_bind_parameter(i, v)?,
                Arg::Real(v) => st.raw_bind_parameter(i, v)?,
                Arg::Bool(v) => st.raw_bind_parameter(i, v)?,
                Arg::List(v) => {
                    let json =
                        v.map(serde_json::to_string).transpose().map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    st.raw_bind_parameter(i, json)?
                }
            }
        }
        Ok(st)
    }
}

#[async_trait]
impl Exec for Conn<'_> {
    async fn query(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let mut st = self.prepare(sql, args)?;
        let names: Arc<[String]> = st.column_names().map(String::from).collect();
        let mut rows = st.raw_query();
        let mut out = vec![];
        while let Some(r) = rows.next()? {
            let mut vals = Vec::with_capacity(names.len());
            for i in 0..names.len() {
                vals.push(match r.get_ref(i)? {
                    ValueRef::Null => Val::Null,
                    ValueRef::Integer(n) => Val::Int(n),
                    ValueRef::Real(f) => Val::Real(f),
                    ValueRef::Text(t) | ValueRef::Blob(t) => Val::Text(String::from_utf8_lossy(t).into_owned()),
                });
            }
            out.push(Row::new(names.clone(), vals));
        }
        Ok(out)
    }

    async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        Ok(self.prepare(sql, args)?.raw_execute()? as u64)
    }

    async fn batch(&mut self, sql: &'static str) -> Result<()> {
        Ok(self.0.execute_batch(sql)?)
    }
}

#[cfg(test)]
mod tests {
    use super::translate;

    #[test]
    fn statements_are_spelled_for_sqlite() {
        assert_eq!(
            translate("SELECT * FROM t WHERE id = $1 AND ($2 IS NULL OR type = ANY($2)) FOR UPDATE"),
            "SELECT * FROM t WHERE id = ?1 AND (?2 IS NULL OR type IN (SELECT value FROM json_each(?2)))"
        );
        assert_eq!(
            translate("SELECT r.* FROM runs r ORDER BY r.id FOR UPDATE OF r SKIP LOCKED"),
            "SELECT r.* FROM runs r ORDER BY r.id"
        );
        assert_eq!(
            translate("SELECT id FROM runs ORDER BY id FOR UPDATE SKIP LOCKED"),
            "SELECT id FROM runs ORDER BY id"
        );
    }
}
