//! What every part of the store shares: row mappings, tenant-scoped
//! arguments, JSON columns and migrations. Each concern's statements live in
//! its own module beside its trait (`journal.rs`, `docs.rs`, …), written once
//! for all backends in PostgreSQL's spelling (`$n`, `= ANY($n)`, `FOR
//! UPDATE`); the SQLite backend translates the few spellings SQLite lacks.

use agentd_core::*;

use crate::sql::{Arg, Exec, Row};
use crate::*;

/// The arguments of a lookup by key within the caller's tenant: `$1` the key, `$2..$4` the scope.
pub(crate) fn scoped<'a>(key: &'a str, t: &'a Tenant) -> [Arg<'a>; 4] {
    [key.into(), t.org.as_str().into(), t.user.as_str().into(), t.project.as_str().into()]
}

pub(crate) fn limit(l: u32) -> i64 {
    i64::from(l.clamp(1, 10_000))
}

pub(crate) fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn corrupt(col: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{col}: {e}"))
}

pub(crate) fn session_from_row(r: &Row) -> Result<Session> {
    Ok(Session {
        id: r.get("id")?,
        title: r.get("title")?,
        metadata: r.json("metadata")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

/// A run's own cost plus its descendants' (`None` when neither is priced).
pub(crate) fn add_costs(own: Option<f64>, below: Option<f64>) -> Option<f64> {
    if own.is_none() && below.is_none() { None } else { Some(own.unwrap_or(0.0) + below.unwrap_or(0.0)) }
}

pub(crate) fn run_from_row(r: &Row) -> Result<Run> {
    let status: String = r.get("status")?;
    let usage: agentd_core::Usage = r.json("usage")?;
    let mut tree_usage: agentd_core::Usage = r.json("child_usage")?;
    tree_usage.add(&usage);
    let cost_usd: Option<f64> = r.get("cost_usd")?;
    let tree_cost_usd = add_costs(cost_usd, r.get("child_cost_usd")?);
    Ok(Run {
        id: r.get("id")?,
        session_id: r.get("session_id")?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        input: r.get("input")?,
        agent: r.get("agent")?,
        model: r.get("model")?,
        max_steps: r.get("max_steps")?,
        output: r.get("output")?,
        error: r.opt_json("error")?,
        usage,
        tree_usage,
        tree_cost_usd,
        parent_run_id: r.get("parent_run_id")?,
        root_run_id: r.get::<Option<String>>("root_run_id")?.or_else(|| r.get("id").ok()),
        depth: r.get("depth")?,
        agent_version: r.get("agent_version")?,
        attempted_profiles: r.json("attempted_profiles")?,
        final_profile: r.get("final_profile")?,
        cost_usd,
        last_seq: r.get("last_seq")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

pub(crate) fn event_from_row(r: &Row) -> Result<StoredEvent> {
    Ok(StoredEvent {
        run_id: r.get("run_id")?,
        seq: r.get("seq")?,
        type_name: r.get("type")?,
        data: r.json("data")?,
        created_at: r.get("created_at")?,
    })
}

pub(crate) fn tenant_from_row(r: &Row) -> Result<Tenant> {
    Ok(Tenant { org: r.get("org")?, user: r.get("usr")?, project: r.get("project")? })
}

pub(crate) fn tenant_run(r: &Row) -> Result<(Tenant, Run)> {
    Ok((tenant_from_row(r)?, run_from_row(r)?))
}

pub(crate) fn all<T>(rows: Vec<Row>, f: fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

pub(crate) fn one<T>(row: Option<Row>, f: fn(&Row) -> Result<T>) -> Result<Option<T>> {
    row.as_ref().map(f).transpose()
}

pub(crate) async fn count(e: &mut dyn Exec, sql: &'static str, args: &[Arg<'_>]) -> Result<i64> {
    e.query_opt(sql, args).await?.map(|r| r.get("n")).transpose().map(Option::unwrap_or_default)
}

/// Creates the schema or brings it up to date: each migration once, in its
/// own transaction, and the ones applied before checked against their checksums.
pub(crate) async fn migrate(e: &mut dyn Exec, plan: &crate::migrations::Plan) -> Result<()> {
    e.batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL, checksum TEXT)")
        .await?;
    // Databases from before checksums have the table without the column.
    if e.query("SELECT checksum FROM schema_migrations LIMIT 1", &[]).await.is_err() {
        e.batch("ALTER TABLE schema_migrations ADD COLUMN checksum TEXT").await?;
    }
    // A database from before versions came from file names keeps its common
    // migrations under the numbers it counted them with.
    e.execute(crate::migrations::RENUMBER, args![plan.old_common_first]).await?;
    for (version, sql) in &plan.list {
        let done = e.query_opt("SELECT checksum FROM schema_migrations WHERE version = $1", args![*version]).await?;
        let sum = crate::migration_checksum(sql);
        match done {
            Some(row) => {
                let stored: Option<String> = row.get("checksum")?;
                crate::check_migration(*version, stored.as_deref(), sql)?;
                if stored.is_none() {
                    e.execute("UPDATE schema_migrations SET checksum = $2 WHERE version = $1", args![*version, &sum])
                        .await?;
                }
            }
            None => {
                e.batch("BEGIN").await?;
                let applied = async {
                    e.batch(sql).await?;
                    e.execute(
                        "INSERT INTO schema_migrations (version, applied_at, checksum) VALUES ($1, $2, $3)",
                        args![*version, &now(), &sum],
                    )
                    .await
                }
                .await;
                match applied {
                    Ok(_) => e.batch("COMMIT").await?,
                    Err(err) => {
                        let _ = e.batch("ROLLBACK").await;
                        return Err(err);
                    }
                }
            }
        }
    }
    Ok(())
}
