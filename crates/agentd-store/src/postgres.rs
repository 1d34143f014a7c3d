//! PostgreSQL store for several nodes sharing one queue: row locks serialise
//! appends per run, `FOR UPDATE SKIP LOCKED` lets nodes claim runs without
//! blocking each other, and `NOTIFY` tells every node about every append.

use std::sync::Arc;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{Column, Postgres, Row as _, TypeInfo};
use tokio::sync::broadcast;

use crate::sql::{Arg, Backend, Exec, Row, Val, Work};
use crate::store::SqlStore;
use crate::{Change, Result, StoreError};

/// Advisory lock key serialising migrations when several nodes start at once.
const MIGRATION_LOCK: i64 = 0x6167_656e_7464;
const CHANNEL: &str = "agentd_events";

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Db(e.to_string())
    }
}

/// The multi-node store.
pub type PgStore = SqlStore<Pg>;

/// The PostgreSQL backend: a connection pool and the other nodes' appends.
pub struct Pg {
    pool: PgPool,
    changes: broadcast::Sender<Change>,
}

impl SqlStore<Pg> {
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
        Ok(SqlStore { db: Pg { pool, changes } })
    }
}

/// Migrations under an advisory lock, so nodes starting together take turns.
async fn migrate(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SELECT pg_advisory_lock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
    let res = crate::queries::migrate(&mut PgExec::Conn(&mut conn), &crate::migrations::postgres()).await;
    sqlx::query("SELECT pg_advisory_unlock($1)").bind(MIGRATION_LOCK).execute(&mut *conn).await?;
    res
}

#[async_trait]
impl Backend for Pg {
    async fn read<T: Send + 'static>(&self, w: Work<T>) -> Result<T> {
        w(&mut PgExec::Pool(&self.pool)).await
    }

    async fn write<T: Send + 'static>(&self, w: Work<T>) -> Result<T> {
        let mut tx = self.pool.begin().await?;
        match w(&mut PgExec::Conn(&mut tx)).await {
            Ok(v) => {
                tx.commit().await?;
                Ok(v)
            }
            Err(e) => {
                // Roll back now: a dropped transaction would keep the run row
                // locked until the connection is reused (SKIP LOCKED would skip it).
                let _ = tx.rollback().await;
                Err(e)
            }
        }
    }

    fn changes(&self) -> Option<broadcast::Receiver<Change>> {
        Some(self.changes.subscribe())
    }
}

/// The pool (reads) or one connection (a transaction, migrations).
enum PgExec<'c> {
    Pool(&'c PgPool),
    Conn(&'c mut PgConnection),
}

fn bound<'q>(sql: &'static str, args: &[Arg<'q>]) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    let mut q = sqlx::query(sql);
    for a in args {
        q = match *a {
            Arg::Text(v) => q.bind(v),
            Arg::Int(v) => q.bind(v),
            Arg::Real(v) => q.bind(v),
            Arg::Bool(v) => q.bind(v),
            Arg::List(v) => q.bind(v),
        };
    }
    q
}

fn to_row(r: &PgRow, names: &Arc<[String]>) -> Result<Row> {
    let mut vals = Vec::with_capacity(names.len());
    for (i, c) in r.columns().iter().enumerate() {
        let v = match c.type_info().name() {
            "TEXT" | "VARCHAR" | "NAME" | "BPCHAR" => r.try_get::<Option<String>, _>(i)?.map(Val::Text),
            "INT8" => r.try_get::<Option<i64>, _>(i)?.map(Val::Int),
            "INT4" => r.try_get::<Option<i32>, _>(i)?.map(|n| Val::Int(n.into())),
            "INT2" => r.try_get::<Option<i16>, _>(i)?.map(|n| Val::Int(n.into())),
            "FLOAT8" => r.try_get::<Option<f64>, _>(i)?.map(Val::Real),
            "FLOAT4" => r.try_get::<Option<f32>, _>(i)?.map(|f| Val::Real(f.into())),
            "BOOL" => r.try_get::<Option<bool>, _>(i)?.map(Val::Bool),
            other => return Err(StoreError::Corrupt(format!("{}: unsupported column type {other}", c.name()))),
        };
        vals.push(v.unwrap_or(Val::Null));
    }
    Ok(Row::new(names.clone(), vals))
}

#[async_trait]
impl Exec for PgExec<'_> {
    async fn query(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<Vec<Row>> {
        let q = bound(sql, args);
        let rows = match self {
            PgExec::Pool(p) => q.fetch_all(*p).await?,
            PgExec::Conn(c) => q.fetch_all(&mut **c).await?,
        };
        let Some(first) = rows.first() else { return Ok(vec![]) };
        let names: Arc<[String]> = first.columns().iter().map(|c| c.name().to_string()).collect();
        rows.iter().map(|r| to_row(r, &names)).collect()
    }

    async fn execute(&mut self, sql: &'static str, args: &[Arg<'_>]) -> Result<u64> {
        let q = bound(sql, args);
        let done = match self {
            PgExec::Pool(p) => q.execute(*p).await?,
            PgExec::Conn(c) => q.execute(&mut **c).await?,
        };
        Ok(done.rows_affected())
    }

    async fn batch(&mut self, sql: &'static str) -> Result<()> {
        match self {
            PgExec::Pool(p) => sqlx::raw_sql(sql).execute(*p).await?,
            PgExec::Conn(c) => sqlx::raw_sql(sql).execute(&mut **c).await?,
        };
        Ok(())
    }

    async fn lock(&mut self, key: &str) -> Result<()> {
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", crate::args![key]).await.map(drop)
    }

    async fn notify(&mut self, change: &Change) -> Result<()> {
        let payload = serde_json::to_string(change).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.execute("SELECT pg_notify($1, $2)", crate::args![CHANNEL, payload.as_str()]).await.map(drop)
    }

    async fn notify_all(&mut self, changes: &[Change]) -> Result<()> {
        let payloads = changes
            .iter()
            .map(serde_json::to_string)
            .collect::<std::result::Result<Vec<String>, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.execute("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p", crate::args![CHANNEL, &payloads])
            .await
            .map(drop)
    }
}
