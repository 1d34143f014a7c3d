//! Every statement the store runs and every row mapping, written once for
//! all backends in PostgreSQL's spelling (`$n`, `= ANY($n)`, `FOR UPDATE`);
//! the SQLite backend translates the few spellings SQLite lacks.

use std::collections::{HashMap, HashSet};

use agentd_core::{Approval, ApprovalChange, EventKind, Resolution, Run, RunStatus, Session, StoredEvent, Tenant};

use crate::plan::{RunHead, plan_append};
use crate::sql::{Arg, Exec, Row};
use crate::{
    AppendGuard, ApprovalFilter, Change, ClaimLimits, DirectCall, DocKind, EventQuery, NewRun, Page, PruneScope,
    PruneStats, Result, RunFilter, SessionMessage, StoreError, args, fair_pick, now, now_ms,
};

/// The arguments of a lookup by key within the caller's tenant: `$1` the key, `$2..$4` the scope.
fn scoped<'a>(key: &'a str, t: &'a Tenant) -> [Arg<'a>; 4] {
    [key.into(), t.org.as_str().into(), t.user.as_str().into(), t.project.as_str().into()]
}

fn limit(l: u32) -> i64 {
    i64::from(l.clamp(1, 10_000))
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn corrupt(col: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{col}: {e}"))
}

fn session_from_row(r: &Row) -> Result<Session> {
    Ok(Session {
        id: r.get("id")?,
        title: r.get("title")?,
        metadata: r.json("metadata")?,
        created_at: r.get("created_at")?,
        updated_at: r.get("updated_at")?,
    })
}

/// A run's own cost plus its descendants' (`None` when neither is priced).
fn add_costs(own: Option<f64>, below: Option<f64>) -> Option<f64> {
    if own.is_none() && below.is_none() { None } else { Some(own.unwrap_or(0.0) + below.unwrap_or(0.0)) }
}

fn run_from_row(r: &Row) -> Result<Run> {
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

fn event_from_row(r: &Row) -> Result<StoredEvent> {
    Ok(StoredEvent {
        run_id: r.get("run_id")?,
        seq: r.get("seq")?,
        type_name: r.get("type")?,
        data: r.json("data")?,
        created_at: r.get("created_at")?,
    })
}

fn tenant_from_row(r: &Row) -> Result<Tenant> {
    Ok(Tenant { org: r.get("org")?, user: r.get("usr")?, project: r.get("project")? })
}

fn tenant_run(r: &Row) -> Result<(Tenant, Run)> {
    Ok((tenant_from_row(r)?, run_from_row(r)?))
}

fn approval_from_row(r: &Row) -> Result<Approval> {
    let (status, decision) =
        crate::approval_vocab(&r.get::<String>("status")?, r.get::<Option<String>>("decision")?.as_deref())?;
    let request: serde_json::Value = r.json("request")?;
    Ok(Approval {
        id: r.get("id")?,
        run_id: r.get("run_id")?,
        session_id: r.get("session_id")?,
        call_id: r.get("call_id")?,
        tool: r.get("tool")?,
        arguments_sanitized: request["arguments_sanitized"].clone(),
        approval_key: r.get("approval_key")?,
        risk: {
            let risk: String = r.get("risk")?;
            agentd_core::policy::Risk::parse(&risk).ok_or_else(|| StoreError::Corrupt(format!("risk: {risk:?}")))?
        },
        reasons: serde_json::from_value(request["reasons"].clone()).unwrap_or_default(),
        rule: request["rule"].as_str().unwrap_or_default().to_string(),
        status,
        decision,
        reason: r.get("reason")?,
        arguments: r.opt_json("arguments")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        resolved_at: r.get("resolved_at")?,
        resolved_by: r.get("resolved_by")?,
    })
}

fn all<T>(rows: Vec<Row>, f: fn(&Row) -> Result<T>) -> Result<Vec<T>> {
    rows.iter().map(f).collect()
}

fn one<T>(row: Option<Row>, f: fn(&Row) -> Result<T>) -> Result<Option<T>> {
    row.as_ref().map(f).transpose()
}

async fn count(e: &mut dyn Exec, sql: &'static str, args: &[Arg<'_>]) -> Result<i64> {
    e.query_opt(sql, args).await?.map(|r| r.get("n")).transpose().map(Option::unwrap_or_default)
}

/// Creates the schema or brings it up to date: each migration once, in its
/// own transaction, and the ones applied before checked against their checksums.
pub(crate) async fn migrate(e: &mut dyn Exec, migrations: &[(i64, &'static str)]) -> Result<()> {
    e.batch("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, applied_at TEXT NOT NULL, checksum TEXT)")
        .await?;
    // Databases from before checksums have the table without the column.
    if e.query("SELECT checksum FROM schema_migrations LIMIT 1", &[]).await.is_err() {
        e.batch("ALTER TABLE schema_migrations ADD COLUMN checksum TEXT").await?;
    }
    for (version, sql) in migrations {
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

// ---- runs and the journal ----

pub(crate) async fn create_run(e: &mut dyn Exec, t: &Tenant, new: &NewRun) -> Result<(Run, StoredEvent)> {
    if let Some(c) = &new.child {
        // A child has a session of its own (its conversation), made with it.
        let ts = now();
        let meta = to_json(&serde_json::json!({"parent_run_id": c.parent_run_id, "root_run_id": c.root_run_id}))?;
        e.execute(
            "INSERT INTO sessions (id, org, usr, project, title, metadata, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
            args![&new.session_id, &t.org, &t.user, &t.project, &c.session_title, &meta, &ts],
        )
        .await?;
    }
    // Locking the session row serialises run creation per session (for reject).
    let sql = "SELECT id FROM sessions WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4 FOR UPDATE";
    if e.query_opt(sql, &scoped(&new.session_id, t)).await?.is_none() {
        return Err(StoreError::NotFound);
    }
    if new.reject_if_busy
        && let Some(active) = active_run(e, t, &new.session_id).await?
    {
        return Err(StoreError::SessionBusy(active.id));
    }
    let (parent, root, depth) = match &new.child {
        Some(c) => (Some(c.parent_run_id.as_str()), c.root_run_id.as_str(), i64::from(c.depth)),
        None => (None, new.id.as_str(), 0),
    };
    if let Some(c) = &new.child {
        let in_tree = count(e, "SELECT count(*) AS n FROM runs WHERE root_run_id = $1", args![&c.root_run_id]).await?;
        if in_tree >= i64::from(c.max_tree_runs) {
            return Err(StoreError::TreeFull(format!(
                "refused: this run's tree already holds {in_tree} runs (the server's max_tree_runs is {})",
                c.max_tree_runs
            )));
        }
        let open = count(
            e,
            "SELECT count(*) AS n FROM runs WHERE org = $1 AND status NOT IN ('completed', 'failed', 'cancelled')",
            args![&t.org],
        )
        .await?;
        if open >= i64::from(c.max_org_open_runs) {
            return Err(StoreError::TreeFull(format!(
                "refused: the organisation has {open} unfinished runs (the server's max_org_open_runs is {})",
                c.max_org_open_runs
            )));
        }
    }
    let held = match &new.child {
        Some(c) => {
            let running = count(
                e,
                "SELECT count(*) AS n FROM runs WHERE parent_run_id = $1 AND held = 0
                   AND status NOT IN ('completed', 'failed', 'cancelled')",
                args![&c.parent_run_id],
            )
            .await?;
            running >= i64::from(c.max_concurrent.max(1))
        }
        None => false,
    };
    e.execute(
        "INSERT INTO runs (id, org, usr, project, session_id, status, input, model, max_steps, created_at, updated_at, agent,
           parent_run_id, root_run_id, depth, agent_version, held)
         VALUES ($1, $2, $3, $4, $5, 'queued', $6, $7, $8, $9, $9, $10, $11, $12, $13, $14, $15)",
        args![
            &new.id,
            &t.org,
            &t.user,
            &t.project,
            &new.session_id,
            &new.input,
            &new.model,
            new.max_steps,
            &now(),
            &new.agent,
            parent,
            root,
            depth,
            new.agent_version,
            i64::from(held)
        ],
    )
    .await?;
    let created = EventKind::RunCreated {
        input: new.input.clone(),
        model: new.model.clone(),
        max_steps: new.max_steps,
        agent: new.agent.clone(),
        images: new.images.clone(),
        tool_choice: new.tool_choice.clone(),
        system: new.system.clone(),
        ceiling: new.ceiling.clone(),
        team: new.team.clone(),
    };
    let mut evs = append(e, t, &new.id, &AppendGuard::default(), std::slice::from_ref(&created)).await?;
    let run = get_run(e, t, &new.id).await?.ok_or(StoreError::NotFound)?;
    let ev = evs.pop().ok_or_else(|| StoreError::Corrupt("no event".into()))?;
    Ok((run, ev))
}

/// Creates a child and journals `child.spawned` on its parent, together.
pub(crate) async fn create_child_run(
    e: &mut dyn Exec,
    t: &Tenant,
    parent_id: &str,
    guard: &AppendGuard,
    new: &NewRun,
    spawned: &EventKind,
) -> Result<(Run, Vec<StoredEvent>)> {
    // The parent's row is locked first (its append), so the count of running
    // siblings that decides `held` cannot race a sibling ending.
    let lock = "SELECT id FROM runs WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4 FOR UPDATE";
    e.query_opt(lock, &scoped(parent_id, t)).await?.ok_or(StoreError::NotFound)?;
    let (child, _) = create_run(e, t, new).await?;
    let mut spawned = spawned.clone();
    if let EventKind::ChildSpawned { held, .. } = &mut spawned {
        *held = child_held(e, &child.id).await?;
    }
    let evs = append(e, t, parent_id, guard, std::slice::from_ref(&spawned)).await?;
    Ok((child, evs))
}

async fn child_held(e: &mut dyn Exec, id: &str) -> Result<bool> {
    Ok(count(e, "SELECT held AS n FROM runs WHERE id = $1", args![id]).await? != 0)
}

pub(crate) async fn list_children(e: &mut dyn Exec, t: &Tenant, run_id: &str) -> Result<Vec<Run>> {
    let sql = "SELECT * FROM runs WHERE parent_run_id = $1 AND org = $2 AND usr = $3 AND project = $4 ORDER BY id";
    all(e.query(sql, &scoped(run_id, t)).await?, run_from_row)
}

pub(crate) async fn descendants(e: &mut dyn Exec, t: &Tenant, run_id: &str) -> Result<Vec<(String, RunStatus)>> {
    let sql = "WITH RECURSIVE sub(id) AS (
                 SELECT id FROM runs WHERE parent_run_id = $1
                 UNION ALL
                 SELECT r.id FROM runs r JOIN sub ON r.parent_run_id = sub.id
               )
               SELECT r.id, r.status FROM runs r JOIN sub ON r.id = sub.id
               WHERE r.org = $2 AND r.usr = $3 AND r.project = $4";
    let rows = e.query(sql, &scoped(run_id, t)).await?;
    rows.iter()
        .map(|r| {
            let status: String = r.get("status")?;
            Ok((r.get("id")?, RunStatus::parse(&status).ok_or_else(|| corrupt("status", &status))?))
        })
        .collect()
}

pub(crate) async fn get_run(e: &mut dyn Exec, t: &Tenant, id: &str) -> Result<Option<Run>> {
    let sql = "SELECT * FROM runs WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4";
    one(e.query_opt(sql, &scoped(id, t)).await?, run_from_row)
}

pub(crate) async fn list_runs(e: &mut dyn Exec, t: &Tenant, f: &RunFilter, page: &Page) -> Result<Vec<Run>> {
    let rows = e
        .query(
            "SELECT * FROM runs WHERE org = $1 AND usr = $2 AND project = $3
               AND ($4 IS NULL OR session_id = $4) AND ($5 IS NULL OR status = $5) AND ($6 IS NULL OR id < $6)
               AND ($8 IS NULL OR agent = $8) AND ($9 IS NULL OR model = $9)
               AND ($10 IS NULL OR created_at >= $10) AND ($11 IS NULL OR created_at < $11)
             ORDER BY id DESC LIMIT $7",
            args![
                &t.org,
                &t.user,
                &t.project,
                &f.session_id,
                f.status.map(|s| s.as_str()),
                &page.after,
                limit(page.limit),
                &f.agent,
                &f.model,
                &f.from,
                &f.to
            ],
        )
        .await?;
    all(rows, run_from_row)
}

pub(crate) async fn events(e: &mut dyn Exec, t: &Tenant, run_id: &str, q: &EventQuery) -> Result<Vec<StoredEvent>> {
    let rows = e
        .query(
            "SELECT * FROM events WHERE run_id = $1 AND org = $2 AND usr = $3 AND project = $4 AND seq > $5
               AND ($6 IS NULL OR type = ANY($6))
             ORDER BY seq LIMIT $7",
            args![run_id, &t.org, &t.user, &t.project, q.after, &q.types, limit(q.limit)],
        )
        .await?;
    all(rows, event_from_row)
}

pub(crate) async fn tenant_feed(
    e: &mut dyn Exec,
    t: &Tenant,
    types: &[String],
    since: &str,
    max: u32,
) -> Result<Vec<crate::FeedEvent>> {
    let rows = e
        .query(
            "SELECT e.*, r.session_id FROM events e JOIN runs r ON r.id = e.run_id
             WHERE e.org = $1 AND e.usr = $2 AND e.project = $3 AND e.created_at >= $4 AND e.type = ANY($5)
             ORDER BY e.created_at, e.run_id, e.seq LIMIT $6",
            args![&t.org, &t.user, &t.project, since, types, limit(max)],
        )
        .await?;
    all(rows, |r| Ok(crate::FeedEvent { session_id: r.get("session_id")?, event: event_from_row(r)? }))
}

pub(crate) async fn unfinished_runs(e: &mut dyn Exec) -> Result<Vec<(Tenant, Run)>> {
    all(e.query("SELECT * FROM runs WHERE status IN ('queued', 'running') ORDER BY id", &[]).await?, tenant_run)
}

pub(crate) async fn active_run(e: &mut dyn Exec, t: &Tenant, session_id: &str) -> Result<Option<Run>> {
    let sql = "SELECT * FROM runs WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4
                 AND status IN ('queued', 'running', 'waiting_approval', 'waiting_children') ORDER BY id LIMIT 1";
    one(e.query_opt(sql, &scoped(session_id, t)).await?, run_from_row)
}

/// Appends events and applies their effects; the run row is locked, so
/// appends to one run are serialised across nodes.
pub(crate) fn append<'a>(
    e: &'a mut dyn Exec,
    t: &'a Tenant,
    run_id: &'a str,
    guard: &'a AppendGuard,
    events: &'a [EventKind],
) -> futures::future::BoxFuture<'a, Result<Vec<StoredEvent>>> {
    // Boxed: ending a run appends to its parent and children in the same transaction.
    Box::pin(append_inner(e, t, run_id, guard, events))
}

async fn append_inner(
    e: &mut dyn Exec,
    t: &Tenant,
    run_id: &str,
    guard: &AppendGuard,
    events: &[EventKind],
) -> Result<Vec<StoredEvent>> {
    let row = e
        .query_opt(
            "SELECT session_id, status, last_seq, usage, lease_node, input, attempted_profiles, cost_usd, parent_run_id,
               child_usage, child_cost_usd FROM runs
             WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4 FOR UPDATE",
            &scoped(run_id, t),
        )
        .await?
        .ok_or(StoreError::NotFound)?;
    let session_id: String = row.get("session_id")?;
    let mut head = RunHead {
        status: row.get("status")?,
        last_seq: row.get("last_seq")?,
        usage: row.get("usage")?,
        lease_node: row.get("lease_node")?,
        input: row.get("input")?,
        attempted: row.get("attempted_profiles")?,
        images: vec![],
        cost_usd: row.get("cost_usd")?,
    };
    if events.iter().any(|e| matches!(e, EventKind::RunStarted { .. })) {
        // The run starts: its input message takes the images sent with it.
        let first = e.query_opt("SELECT data FROM events WHERE run_id = $1 AND seq = 1", args![run_id]).await?;
        let data: Option<String> = first.map(|r| r.get("data")).transpose()?;
        head.images = crate::plan::images_of(data.as_deref());
    }
    let plan = plan_append(t, run_id, head, guard, events)?;
    let ts = plan.ts.as_str();
    for ev in &plan.events {
        e.execute(
            "INSERT INTO events (run_id, seq, org, usr, project, type, data, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
            args![run_id, ev.seq, &t.org, &t.user, &t.project, &ev.type_name, &to_json(&ev.data)?, ts],
        )
        .await?;
    }
    for (seq, m) in &plan.messages {
        let idx = e
            .query_opt(
                "UPDATE sessions SET message_count = message_count + 1, updated_at = $2 WHERE id = $1
                 RETURNING message_count - 1 AS idx",
                args![&session_id, ts],
            )
            .await?
            .ok_or(StoreError::NotFound)?
            .get::<i64>("idx")?;
        e.execute(
            "INSERT INTO messages (session_id, idx, org, usr, project, run_id, seq, message, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            args![&session_id, idx, &t.org, &t.user, &t.project, run_id, *seq, m, ts],
        )
        .await?;
    }
    for a in &plan.approvals {
        match a {
            ApprovalChange::Open { id, call_id, tool, approval_key, risk, expires_at, request } => {
                e.execute(
                    "INSERT INTO approvals (id, org, usr, project, run_id, session_id, call_id, tool, approval_key,
                       risk, status, request, created_at, expires_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending', $11, $12, $13)",
                    args![
                        id,
                        &t.org,
                        &t.user,
                        &t.project,
                        run_id,
                        &session_id,
                        call_id,
                        tool,
                        approval_key,
                        risk.as_str(),
                        &to_json(request)?,
                        ts,
                        expires_at
                    ],
                )
                .await?;
            }
            ApprovalChange::Close { id, status, decision, reason, arguments, resolved_by } => {
                let args_json = arguments.as_ref().map(to_json).transpose()?;
                e.execute(
                    "UPDATE approvals SET status = $1, decision = $2, reason = $3, arguments = $4, resolved_at = $5,
                       resolved_by = $8
                     WHERE id = $6 AND run_id = $7",
                    args![status.as_str(), decision.as_str(), reason, &args_json, ts, id, run_id, resolved_by],
                )
                .await?;
            }
        }
    }
    if let Some(title) = &plan.session_title {
        e.execute("UPDATE sessions SET title = $1, updated_at = $2 WHERE id = $3", args![title, ts, &session_id])
            .await?;
    }
    if plan.close_approvals {
        e.execute(
            "UPDATE approvals SET status = 'cancelled', resolved_at = $1 WHERE run_id = $2 AND status = 'pending'",
            args![ts, run_id],
        )
        .await?;
    }
    e.execute(
        "UPDATE runs SET status = $1, last_seq = $2, usage = $3, output = COALESCE($4, output),
           error = COALESCE($5, error), updated_at = $6,
           lease_node = CASE WHEN $8 THEN NULL ELSE lease_node END,
           lease_until = CASE WHEN $8 THEN NULL ELSE lease_until END,
           attempted_profiles = COALESCE($9, attempted_profiles), final_profile = COALESCE($10, final_profile),
           cost_usd = COALESCE($11, cost_usd), waiting_on = COALESCE($12, waiting_on)
         WHERE id = $7",
        args![
            plan.status.as_str(),
            plan.last_seq,
            &plan.usage,
            &plan.output,
            &plan.error,
            ts,
            run_id,
            plan.release_lease,
            &plan.attempted,
            &plan.final_profile,
            plan.cost_usd,
            &plan.waiting_on
        ],
    )
    .await?;
    if let Some(last) = plan.events.last() {
        e.notify(&Change { run_id: run_id.to_string(), seq: last.seq, type_name: last.type_name.clone() }).await?;
    }
    if plan.waits {
        // The children may all have ended before the run got to wait for them.
        wake_if_done(e, t, run_id).await?;
    }
    if plan.ended {
        let parent: Option<String> = row.get("parent_run_id")?;
        let mut tree: agentd_core::Usage = row.json("child_usage")?;
        tree.add(&serde_json::from_str(&plan.usage).map_err(|e| corrupt("usage", e))?);
        let cost = add_costs(plan.cost_usd.or(row.get("cost_usd")?), row.get("child_cost_usd")?);
        end_of_child_run(e, t, run_id, parent.as_deref(), (&tree, cost)).await?;
    }
    Ok(plan.events)
}

/// What ending a run does to its tree: its unfinished children are cancelled;
/// its parent gets its usage, a held sibling its slot, and, when this was the
/// last child it waited for, `children.done` (so it is queued exactly once).
async fn end_of_child_run(
    e: &mut dyn Exec,
    t: &Tenant,
    run_id: &str,
    parent: Option<&str>,
    (tree, cost): (&agentd_core::Usage, Option<f64>),
) -> Result<()> {
    cancel_subtree(e, t, run_id).await?;
    let Some(parent) = parent else { return Ok(()) };
    let row = e
        .query_opt("SELECT status, child_usage FROM runs WHERE id = $1 FOR UPDATE", args![parent])
        .await?
        .ok_or(StoreError::NotFound)?;
    let mut sum: agentd_core::Usage = row.json("child_usage")?;
    sum.add(tree);
    e.execute(
        "UPDATE runs SET child_usage = $1,
           child_cost_usd = CASE WHEN $3 IS NULL THEN child_cost_usd ELSE COALESCE(child_cost_usd, 0) + $3 END
         WHERE id = $2",
        args![&to_json(&sum)?, parent, cost],
    )
    .await?;
    e.execute(
        "UPDATE runs SET held = 0 WHERE id = (SELECT id FROM runs WHERE parent_run_id = $1 AND held = 1
           AND status = 'queued' ORDER BY id LIMIT 1)",
        args![parent],
    )
    .await?;
    if row.get::<String>("status")? == RunStatus::WaitingChildren.as_str() {
        wake_if_done(e, t, parent).await?;
    }
    Ok(())
}

/// Cancels every unfinished run below `run_id` (which just ended) in a few
/// statements, whatever the tree's size: each gets its `run.cancelled`, its
/// pending approvals close, and usage rolls up bottom-first as if each had
/// ended alone. SKIP LOCKED: a run locked by its own append (ending at this
/// moment, and about to lock its parent's row) is left, with what is below
/// it, to the runtime, which cancels what is still open after this commits;
/// waiting for it would deadlock.
async fn cancel_subtree(e: &mut dyn Exec, t: &Tenant, run_id: &str) -> Result<()> {
    let rows = e
        .query(
            "WITH RECURSIVE sub(id) AS (
                 SELECT id FROM runs WHERE parent_run_id = $1
                 UNION ALL
                 SELECT r.id FROM runs r JOIN sub ON r.parent_run_id = sub.id
             )
             SELECT id, parent_run_id, depth, last_seq, usage, child_usage, cost_usd, child_cost_usd FROM runs
             WHERE id IN (SELECT id FROM sub) AND status NOT IN ('completed', 'failed', 'cancelled')
               AND org = $2 AND usr = $3 AND project = $4
             ORDER BY id FOR UPDATE SKIP LOCKED",
            &scoped(run_id, t),
        )
        .await?;
    if rows.is_empty() {
        return Ok(());
    }
    struct Node {
        parent: String,
        depth: i64,
        seq: i64,
        tree: agentd_core::Usage,
        cost: Option<f64>,
    }
    let mut nodes: HashMap<String, Node> = HashMap::new();
    for r in &rows {
        let mut tree: agentd_core::Usage = r.json("child_usage")?;
        tree.add(&r.json("usage")?);
        let node = Node {
            parent: r.get::<Option<String>>("parent_run_id")?.unwrap_or_default(),
            depth: r.get("depth")?,
            seq: r.get::<i64>("last_seq")? + 1,
            tree,
            cost: add_costs(r.get("cost_usd")?, r.get("child_cost_usd")?),
        };
        nodes.insert(r.get("id")?, node);
    }
    // Only runs whose whole line up to `run_id` is cancelled here; the rest
    // hang below a run this transaction could not lock.
    let mut by_depth: Vec<(String, i64)> = nodes.iter().map(|(id, n)| (id.clone(), n.depth)).collect();
    by_depth.sort_by_key(|(_, d)| *d);
    let mut kept: HashSet<String> = HashSet::new();
    for (id, _) in &by_depth {
        let parent = &nodes[id].parent;
        if parent == run_id || kept.contains(parent) {
            kept.insert(id.clone());
        }
    }
    nodes.retain(|id, _| kept.contains(id));
    let ids: Vec<String> = nodes.keys().cloned().collect();
    let ts = now();
    let reason = "its parent run ended";
    let data = to_json(&serde_json::json!({ "reason": reason }))?;
    let error = to_json(&agentd_core::RunError::new("cancelled", reason))?;
    let cancelled = agentd_core::EventType::RunCancelled.name();
    e.execute(
        "INSERT INTO events (run_id, seq, org, usr, project, type, data, created_at)
         SELECT id, last_seq + 1, org, usr, project, $2, $3, $4 FROM runs WHERE id = ANY($1)",
        args![&ids, cancelled, &data, &ts],
    )
    .await?;
    e.execute(
        "UPDATE runs SET status = 'cancelled', last_seq = last_seq + 1, error = COALESCE(error, $2), updated_at = $3,
           lease_node = NULL, lease_until = NULL
         WHERE id = ANY($1)",
        args![&ids, &error, &ts],
    )
    .await?;
    e.execute(
        "UPDATE approvals SET status = 'cancelled', resolved_at = $2 WHERE run_id = ANY($1) AND status = 'pending'",
        args![&ids, &ts],
    )
    .await?;
    // Usage rolls up deepest first: each run's tree goes to its parent's.
    let mut order: Vec<(String, i64)> = nodes.iter().map(|(id, n)| (id.clone(), n.depth)).collect();
    order.sort_by_key(|(_, d)| std::cmp::Reverse(*d));
    let mut into: HashMap<String, (agentd_core::Usage, Option<f64>)> = HashMap::new();
    for (id, _) in &order {
        let (tree, cost, parent) = {
            let n = &nodes[id];
            let below = into.get(id).cloned().unwrap_or_default();
            let mut tree = n.tree;
            tree.add(&below.0);
            (tree, add_costs(n.cost, below.1), n.parent.clone())
        };
        let slot = into.entry(parent).or_default();
        slot.0.add(&tree);
        slot.1 = add_costs(slot.1, cost);
    }
    for (id, (usage, cost)) in into {
        let Some(row) = e.query_opt("SELECT child_usage FROM runs WHERE id = $1", args![&id]).await? else { continue };
        let mut sum: agentd_core::Usage = row.json("child_usage")?;
        sum.add(&usage);
        e.execute(
            "UPDATE runs SET child_usage = $1,
               child_cost_usd = CASE WHEN $3 IS NULL THEN child_cost_usd ELSE COALESCE(child_cost_usd, 0) + $3 END
             WHERE id = $2",
            args![&to_json(&sum)?, &id, cost],
        )
        .await?;
    }
    let changes: Vec<Change> = nodes
        .iter()
        .map(|(id, n)| Change { run_id: id.clone(), seq: n.seq, type_name: cancelled.to_string() })
        .collect();
    e.notify_all(&changes).await?;
    Ok(())
}

/// Appends `children.done` to a run waiting for children once all of them ended.
async fn wake_if_done(e: &mut dyn Exec, t: &Tenant, run_id: &str) -> Result<()> {
    let row = e.query_opt("SELECT waiting_on FROM runs WHERE id = $1", args![run_id]).await?;
    let ids: Vec<String> = match row {
        Some(r) => r.opt_json("waiting_on")?.unwrap_or_default(),
        None => return Ok(()),
    };
    let open = count(
        e,
        "SELECT count(*) AS n FROM runs WHERE id = ANY($1) AND status NOT IN ('completed', 'failed', 'cancelled')",
        args![&ids],
    )
    .await?;
    if open == 0 {
        append(e, t, run_id, &AppendGuard::default(), &[EventKind::ChildrenDone { child_run_ids: ids }]).await?;
    }
    Ok(())
}

/// Deletes finished runs (with their events and approvals) and idle sessions.
pub(crate) async fn prune(e: &mut dyn Exec, cutoff: &str, scope: &PruneScope) -> Result<PruneStats> {
    let within = args![cutoff, &scope.org, &scope.except_orgs];
    let runs = e
        .query(
            "SELECT id FROM runs WHERE status IN ('completed', 'failed', 'cancelled') AND updated_at < $1
               AND ($2 IS NULL OR org = $2) AND NOT (org = ANY($3))",
            within,
        )
        .await?;
    let run_ids = runs.iter().map(|r| r.get("id")).collect::<Result<Vec<String>>>()?;
    let events = e.execute("DELETE FROM events WHERE run_id = ANY($1)", args![&run_ids]).await?;
    e.execute("DELETE FROM approvals WHERE run_id = ANY($1)", args![&run_ids]).await?;
    let runs = e.execute("DELETE FROM runs WHERE id = ANY($1)", args![&run_ids]).await?;
    let idle = e
        .query(
            "SELECT s.id FROM sessions s WHERE s.updated_at < $1
               AND ($2 IS NULL OR s.org = $2) AND NOT (s.org = ANY($3))
               AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.session_id = s.id)",
            within,
        )
        .await?;
    let idle = idle.iter().map(|r| r.get("id")).collect::<Result<Vec<String>>>()?;
    let messages = e.execute("DELETE FROM messages WHERE session_id = ANY($1)", args![&idle]).await?;
    let sessions = e.execute("DELETE FROM sessions WHERE id = ANY($1)", args![&idle]).await?;
    let tool_calls = e
        .execute(
            "DELETE FROM tool_calls WHERE created_at < $1 AND ($2 IS NULL OR org = $2) AND NOT (org = ANY($3))",
            within,
        )
        .await?;
    Ok(PruneStats { runs, events, sessions, messages, tool_calls })
}

// ---- sessions ----

pub(crate) async fn create_session(e: &mut dyn Exec, t: &Tenant, s: &Session) -> Result<()> {
    e.execute(
        "INSERT INTO sessions (id, org, usr, project, title, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![&s.id, &t.org, &t.user, &t.project, &s.title, &to_json(&s.metadata)?, &s.created_at, &s.updated_at],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get_session(e: &mut dyn Exec, t: &Tenant, id: &str) -> Result<Option<Session>> {
    let sql = "SELECT * FROM sessions WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4";
    one(e.query_opt(sql, &scoped(id, t)).await?, session_from_row)
}

pub(crate) async fn list_sessions(e: &mut dyn Exec, t: &Tenant, page: &Page) -> Result<Vec<Session>> {
    let rows = e
        .query(
            "SELECT * FROM sessions WHERE org = $1 AND usr = $2 AND project = $3 AND ($4 IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5",
            args![&t.org, &t.user, &t.project, &page.after, limit(page.limit)],
        )
        .await?;
    all(rows, session_from_row)
}

pub(crate) async fn delete_session(e: &mut dyn Exec, t: &Tenant, id: &str) -> Result<bool> {
    let sql = "DELETE FROM sessions WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4";
    if e.execute(sql, &scoped(id, t)).await? == 0 {
        return Ok(false);
    }
    for sql in [
        "DELETE FROM events WHERE run_id IN
           (SELECT id FROM runs WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4)",
        "DELETE FROM runs WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4",
        "DELETE FROM approvals WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4",
        "DELETE FROM messages WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4",
    ] {
        e.execute(sql, &scoped(id, t)).await?;
    }
    Ok(true)
}

pub(crate) async fn session_messages(e: &mut dyn Exec, t: &Tenant, session_id: &str) -> Result<Vec<SessionMessage>> {
    let sql = "SELECT * FROM messages WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4 ORDER BY idx";
    all(e.query(sql, &scoped(session_id, t)).await?, |r| {
        Ok(SessionMessage {
            index: r.get("idx")?,
            run_id: r.get("run_id")?,
            seq: r.get("seq")?,
            message: r.json("message")?,
            created_at: r.get("created_at")?,
        })
    })
}

// ---- leases ----

/// Claims runs for `node`. On PostgreSQL, `SKIP LOCKED` lets nodes claiming
/// at the same time take different runs; SQLite has one writer.
pub(crate) async fn claim_runs(e: &mut dyn Exec, node: &str, limits: &ClaimLimits) -> Result<Vec<(Tenant, Run)>> {
    let now = now_ms();
    let scan = i64::from(limits.max) * 4 + 16;
    // Candidates ranked within their organisation, so every organisation's
    // oldest runs are seen however long another's backlog; locked after ranking.
    let rows = e
        .query(
            "SELECT r.* FROM runs r
             WHERE r.id IN (
               SELECT id FROM (
                 SELECT c.id, row_number() OVER (PARTITION BY c.org ORDER BY c.id) AS org_rank FROM runs c
                 WHERE c.status IN ('queued', 'running') AND c.held = 0
                   AND (c.lease_until IS NULL OR c.lease_until < $1)
                   AND NOT EXISTS (SELECT 1 FROM runs o WHERE o.session_id = c.session_id
                                     AND o.status IN ('queued', 'running', 'waiting_approval', 'waiting_children')
                                     AND o.id < c.id)
                   AND c.org NOT IN (SELECT org FROM runs WHERE status IN ('queued', 'running')
                                       AND lease_until >= $1 GROUP BY org HAVING count(*) >= $4)
               ) ranked WHERE org_rank <= $3 ORDER BY org_rank, id LIMIT $2)
               AND r.status IN ('queued', 'running')
               AND (r.lease_until IS NULL OR r.lease_until < $1)
             ORDER BY r.id
             FOR UPDATE OF r SKIP LOCKED",
            args![now, scan, limits.max, limits.widest()],
        )
        .await?;
    if rows.is_empty() {
        return Ok(vec![]);
    }
    let candidates = all(rows, tenant_run)?;
    let counts = e
        .query(
            "SELECT org, count(*) AS n FROM runs WHERE status IN ('queued', 'running') AND lease_until >= $1 GROUP BY org",
            args![now],
        )
        .await?;
    let mut active = HashMap::new();
    for r in &counts {
        active.insert(r.get::<String>("org")?, r.get::<u32>("n")?);
    }
    let picked = fair_pick(candidates, &active, limits);
    let ids: Vec<String> = picked.iter().map(|(_, r)| r.id.clone()).collect();
    e.execute(
        "UPDATE runs SET lease_node = $1, lease_until = $2 WHERE id = ANY($3)",
        args![node, now + limits.lease_ms, &ids],
    )
    .await?;
    Ok(picked)
}

pub(crate) async fn renew_leases(
    e: &mut dyn Exec,
    node: &str,
    run_ids: &[String],
    lease_ms: i64,
) -> Result<Vec<String>> {
    let held = e
        .query(
            "UPDATE runs SET lease_until = $1
             WHERE id = ANY($2) AND lease_node = $3 AND status IN ('queued', 'running') RETURNING id",
            args![now_ms() + lease_ms, run_ids, node],
        )
        .await?;
    let held = held.iter().map(|r| r.get("id")).collect::<Result<Vec<String>>>()?;
    Ok(run_ids.iter().filter(|id| !held.contains(id)).cloned().collect())
}

pub(crate) async fn release_leases(e: &mut dyn Exec, node: &str, run_ids: Option<&[String]>) -> Result<u64> {
    e.execute(
        "UPDATE runs SET lease_node = NULL, lease_until = NULL WHERE ($1 IS NULL OR id = ANY($1)) AND lease_node = $2",
        &[Arg::List(run_ids), node.into()],
    )
    .await
}

// ---- tenant documents ----

pub(crate) async fn create_doc(e: &mut dyn Exec, t: &Tenant, kind: DocKind, name: &str, doc: &str) -> Result<()> {
    let n = e
        .execute(
            "INSERT INTO tenant_docs (kind, org, usr, project, name, doc, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING",
            args![kind.as_str(), &t.org, &t.user, &t.project, name, doc, &now()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::AlreadyExists);
    }
    add_version(e, t, kind, name, doc).await
}

/// Agents keep every version: a run reads the one it started with.
async fn add_version(e: &mut dyn Exec, t: &Tenant, kind: DocKind, name: &str, doc: &str) -> Result<()> {
    if kind != DocKind::AGENT {
        return Ok(());
    }
    let last = count(
        e,
        "SELECT COALESCE(max(version), 0) AS n FROM doc_versions WHERE kind = $1 AND org = $2 AND usr = $3
           AND project = $4 AND name = $5",
        args![kind.as_str(), &t.org, &t.user, &t.project, name],
    )
    .await?;
    e.execute(
        "INSERT INTO doc_versions (kind, org, usr, project, name, version, doc, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![kind.as_str(), &t.org, &t.user, &t.project, name, last + 1, doc, &now()],
    )
    .await?;
    Ok(())
}

fn version_from_row(r: &Row) -> Result<crate::DocVersion> {
    Ok(crate::DocVersion { version: r.get("version")?, doc: r.json("doc")?, created_at: r.get("created_at")? })
}

pub(crate) async fn doc_versions(
    e: &mut dyn Exec,
    t: &Tenant,
    kind: DocKind,
    name: &str,
    version: Option<i64>,
) -> Result<Vec<crate::DocVersion>> {
    let rows = e
        .query(
            "SELECT version, doc, created_at FROM doc_versions WHERE kind = $1 AND org = $2 AND usr = $3
               AND project = $4 AND name = $5 AND ($6 IS NULL OR version = $6) ORDER BY version",
            args![kind.as_str(), &t.org, &t.user, &t.project, name, version],
        )
        .await?;
    all(rows, version_from_row)
}

pub(crate) async fn post_blackboard(e: &mut dyn Exec, t: &Tenant, b: &crate::BlackboardEntry) -> Result<bool> {
    let n = e
        .execute(
            "INSERT INTO blackboard (id, org, usr, project, team, author, kind, content, run_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            args![
                &b.id,
                &t.org,
                &t.user,
                &t.project,
                &b.team,
                &b.author,
                &b.kind,
                &b.content,
                &b.run_id,
                &b.created_at
            ],
        )
        .await?;
    Ok(n > 0)
}

pub(crate) async fn blackboard(e: &mut dyn Exec, t: &Tenant, team: &str) -> Result<Vec<crate::BlackboardEntry>> {
    let sql = "SELECT * FROM blackboard WHERE team = $1 AND org = $2 AND usr = $3 AND project = $4
               ORDER BY created_at, id";
    all(e.query(sql, &scoped(team, t)).await?, |r| {
        Ok(crate::BlackboardEntry {
            id: r.get("id")?,
            team: r.get("team")?,
            author: r.get("author")?,
            kind: r.get("kind")?,
            content: r.get("content")?,
            run_id: r.get("run_id")?,
            created_at: r.get("created_at")?,
        })
    })
}

pub(crate) async fn list_docs(e: &mut dyn Exec, t: &Tenant, kind: DocKind) -> Result<Vec<serde_json::Value>> {
    let sql = "SELECT doc FROM tenant_docs WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 ORDER BY name";
    all(e.query(sql, &scoped(kind.as_str(), t)).await?, |r| r.json("doc"))
}

pub(crate) async fn list_docs_all(e: &mut dyn Exec, kind: DocKind) -> Result<Vec<(Tenant, serde_json::Value)>> {
    let sql = "SELECT org, usr, project, doc FROM tenant_docs WHERE kind = $1 ORDER BY org, usr, project, name";
    all(e.query(sql, args![kind.as_str()]).await?, |r| Ok((tenant_from_row(r)?, r.json("doc")?)))
}

pub(crate) async fn replace_doc(e: &mut dyn Exec, t: &Tenant, kind: DocKind, name: &str, doc: &str) -> Result<bool> {
    let n = e
        .execute(
            "UPDATE tenant_docs SET doc = $6 WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 AND name = $5",
            args![kind.as_str(), &t.org, &t.user, &t.project, name, doc],
        )
        .await?;
    if n > 0 {
        add_version(e, t, kind, name, doc).await?;
    }
    Ok(n > 0)
}

pub(crate) async fn delete_doc(e: &mut dyn Exec, t: &Tenant, kind: DocKind, name: &str) -> Result<bool> {
    let n = e
        .execute(
            "DELETE FROM tenant_docs WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 AND name = $5",
            args![kind.as_str(), &t.org, &t.user, &t.project, name],
        )
        .await?;
    Ok(n > 0)
}

// ---- direct tool calls ----

pub(crate) async fn record_tool_call(e: &mut dyn Exec, t: &Tenant, call: &DirectCall) -> Result<()> {
    e.execute(
        "INSERT INTO tool_calls (id, org, usr, project, session_id, record, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![&call.id, &t.org, &t.user, &t.project, &call.session_id, &to_json(call)?, &call.created_at],
    )
    .await?;
    Ok(())
}

pub(crate) async fn list_tool_calls(
    e: &mut dyn Exec,
    t: &Tenant,
    session_id: Option<&str>,
    page: &Page,
) -> Result<Vec<DirectCall>> {
    let rows = e
        .query(
            "SELECT record FROM tool_calls WHERE org = $1 AND usr = $2 AND project = $3
               AND ($4 IS NULL OR session_id = $4) AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6",
            args![&t.org, &t.user, &t.project, session_id, &page.after, limit(page.limit)],
        )
        .await?;
    all(rows, |r| r.json("record"))
}

// ---- approvals ----

pub(crate) async fn list_approvals(
    e: &mut dyn Exec,
    t: &Tenant,
    f: &ApprovalFilter,
    page: &Page,
) -> Result<Vec<Approval>> {
    let rows = e
        .query(
            "SELECT * FROM approvals WHERE org = $1 AND usr = $2 AND project = $3
               AND ($4 IS NULL OR run_id = $4) AND ($5 IS NULL OR session_id = $5)
               AND ($6 IS NULL OR status = $6) AND ($7 IS NULL OR id > $7)
             ORDER BY id LIMIT $8",
            args![
                &t.org,
                &t.user,
                &t.project,
                &f.run_id,
                &f.session_id,
                f.status.map(|s| s.as_str()),
                &page.after,
                limit(page.limit)
            ],
        )
        .await?;
    all(rows, approval_from_row)
}

pub(crate) async fn get_approval(e: &mut dyn Exec, t: &Tenant, id: &str) -> Result<Option<Approval>> {
    let sql = "SELECT * FROM approvals WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4";
    one(e.query_opt(sql, &scoped(id, t)).await?, approval_from_row)
}

pub(crate) async fn resolve_approval(
    e: &mut dyn Exec,
    t: &Tenant,
    id: &str,
    r: &Resolution,
) -> Result<(Approval, Vec<StoredEvent>)> {
    // Lock the run first (as every append does), then read the approval under it.
    let a = get_approval(e, t, id).await?.ok_or(StoreError::NotFound)?;
    e.query("SELECT id FROM runs WHERE id = $1 FOR UPDATE", args![&a.run_id]).await?;
    let a = get_approval(e, t, id).await?.ok_or(StoreError::NotFound)?;
    if a.status != agentd_core::ApprovalStatus::Pending {
        return Err(StoreError::NotPending(a.status.to_string()));
    }
    let remaining = count(
        e,
        "SELECT count(*) AS n FROM approvals WHERE run_id = $1 AND status = 'pending' AND id <> $2",
        args![&a.run_id, id],
    )
    .await?;
    let ev = EventKind::ApprovalResolved {
        approval_id: id.to_string(),
        call_id: a.call_id.clone(),
        approval_key: a.approval_key.clone(),
        decision: r.decision,
        reason: r.reason.clone(),
        arguments: r.arguments.clone(),
        remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
        resolved_by: r.resolved_by.clone(),
    };
    let stored = append(e, t, &a.run_id, &AppendGuard::default(), &[ev]).await?;
    let a = get_approval(e, t, id).await?.ok_or(StoreError::NotFound)?;
    Ok((a, stored))
}

pub(crate) async fn session_grant(e: &mut dyn Exec, t: &Tenant, session_id: &str, key: &str) -> Result<bool> {
    let n = count(
        e,
        "SELECT count(*) AS n FROM approvals WHERE session_id = $1 AND approval_key = $2
           AND decision = 'approve_for_session' AND org = $3 AND usr = $4 AND project = $5",
        args![session_id, key, &t.org, &t.user, &t.project],
    )
    .await?;
    Ok(n > 0)
}

pub(crate) async fn expired_approvals(e: &mut dyn Exec, now: &str, max: u32) -> Result<Vec<(Tenant, String)>> {
    let rows = e
        .query(
            "SELECT org, usr, project, id FROM approvals
             WHERE status = 'pending' AND expires_at IS NOT NULL AND expires_at < $1 ORDER BY expires_at LIMIT $2",
            args![now, limit(max)],
        )
        .await?;
    all(rows, |r| Ok((tenant_from_row(r)?, r.get("id")?)))
}

// ---- API keys ----

fn key_from_row(r: &Row) -> Result<agentd_core::ApiKey> {
    let role: String = r.get("role")?;
    Ok(agentd_core::ApiKey {
        id: r.get("id")?,
        name: r.get("name")?,
        role: agentd_core::KeyRole::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        org: r.get("org")?,
        user: r.get("usr")?,
        project: r.get("project")?,
        prefix: r.get("prefix")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        last_used_at: r.get("last_used_at")?,
        revoked_at: r.get("revoked_at")?,
    })
}

pub(crate) async fn create_key(e: &mut dyn Exec, k: &agentd_core::ApiKey, hash: &str) -> Result<()> {
    e.execute(
        "INSERT INTO api_keys (id, prefix, hash, name, role, org, usr, project, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        args![
            &k.id,
            &k.prefix,
            hash,
            &k.name,
            k.role.as_str(),
            &k.org,
            &k.user,
            &k.project,
            &k.created_at,
            &k.expires_at
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn keys_by_prefix(e: &mut dyn Exec, prefix: &str) -> Result<Vec<(agentd_core::ApiKey, String)>> {
    let rows = e.query("SELECT * FROM api_keys WHERE prefix = $1", args![prefix]).await?;
    all(rows, |r| Ok((key_from_row(r)?, r.get("hash")?)))
}

pub(crate) async fn get_key(e: &mut dyn Exec, id: &str) -> Result<Option<agentd_core::ApiKey>> {
    one(e.query_opt("SELECT * FROM api_keys WHERE id = $1", args![id]).await?, key_from_row)
}

pub(crate) async fn list_keys(e: &mut dyn Exec, org: Option<&str>) -> Result<Vec<agentd_core::ApiKey>> {
    let rows = e.query("SELECT * FROM api_keys WHERE ($1 IS NULL OR org = $1) ORDER BY id DESC", args![org]).await?;
    all(rows, key_from_row)
}

pub(crate) async fn revoke_key(e: &mut dyn Exec, id: &str, at: &str) -> Result<bool> {
    let n =
        e.execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", args![id, at]).await?;
    Ok(n > 0)
}

pub(crate) async fn create_login(e: &mut dyn Exec, l: &crate::Login) -> Result<()> {
    e.execute(
        "INSERT INTO console_logins (hash, key_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        args![&l.hash, &l.key_id, &l.csrf, &l.created_at, &l.expires_at],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get_login(e: &mut dyn Exec, hash: &str) -> Result<Option<crate::Login>> {
    one(e.query_opt("SELECT * FROM console_logins WHERE hash = $1", args![hash]).await?, |r| {
        Ok(crate::Login {
            hash: r.get("hash")?,
            key_id: r.get("key_id")?,
            csrf: r.get("csrf")?,
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
            revoked_at: r.get("revoked_at")?,
        })
    })
}

pub(crate) async fn revoke_login(e: &mut dyn Exec, hash: &str, at: &str) -> Result<bool> {
    let sql = "UPDATE console_logins SET revoked_at = $2 WHERE hash = $1 AND revoked_at IS NULL";
    Ok(e.execute(sql, args![hash, at]).await? > 0)
}

pub(crate) async fn touch_key(e: &mut dyn Exec, id: &str, at: &str) -> Result<()> {
    e.execute("UPDATE api_keys SET last_used_at = $2 WHERE id = $1", args![id, at]).await?;
    Ok(())
}

pub(crate) async fn any_active_key(e: &mut dyn Exec) -> Result<bool> {
    Ok(count(e, "SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL", &[]).await? > 0)
}

// ---- audit ----

pub(crate) async fn record_audit(e: &mut dyn Exec, a: &agentd_core::AuditEntry) -> Result<()> {
    e.execute(
        "INSERT INTO audit_log (id, org, key_id, role, usr, method, route, path, status, request_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        args![
            &a.id,
            &a.org,
            &a.key_id,
            a.role.map(|r| r.as_str()),
            &a.user,
            &a.method,
            &a.route,
            &a.path,
            i64::from(a.status),
            &a.request_id,
            &a.created_at
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn list_audit(
    e: &mut dyn Exec,
    org: Option<&str>,
    page: &Page,
) -> Result<Vec<agentd_core::AuditEntry>> {
    let rows = e
        .query(
            "SELECT * FROM audit_log WHERE ($1 IS NULL OR org = $1) AND ($2 IS NULL OR id > $2) ORDER BY id LIMIT $3",
            args![org, &page.after, limit(page.limit)],
        )
        .await?;
    all(rows, |r| {
        let role: Option<String> = r.get("role")?;
        Ok(agentd_core::AuditEntry {
            id: r.get("id")?,
            org: r.get("org")?,
            key_id: r.get("key_id")?,
            role: role.map(|x| agentd_core::KeyRole::parse(&x).ok_or_else(|| corrupt("role", &x))).transpose()?,
            user: r.get("usr")?,
            method: r.get("method")?,
            route: r.get("route")?,
            path: r.get("path")?,
            status: u16::try_from(r.get::<i64>("status")?).map_err(|e| corrupt("status", e))?,
            request_id: r.get("request_id")?,
            created_at: r.get("created_at")?,
        })
    })
}

// ---- secrets ----

pub(crate) async fn put_secret(e: &mut dyn Exec, t: &Tenant, name: &str, sealed: &str) -> Result<()> {
    e.execute(
        "INSERT INTO secrets (org, usr, project, name, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (org, usr, project, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        args![&t.org, &t.user, &t.project, name, sealed, &now()],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get_secret(e: &mut dyn Exec, t: &Tenant, name: &str) -> Result<Option<String>> {
    let sql = "SELECT sealed FROM secrets WHERE name = $1 AND org = $2 AND usr = $3 AND project = $4";
    one(e.query_opt(sql, &scoped(name, t)).await?, |r| r.get("sealed"))
}

pub(crate) async fn list_secrets(e: &mut dyn Exec, t: &Tenant) -> Result<Vec<crate::SecretMeta>> {
    let rows = e
        .query(
            "SELECT name, created_at, updated_at FROM secrets WHERE org = $1 AND usr = $2 AND project = $3 ORDER BY name",
            args![&t.org, &t.user, &t.project],
        )
        .await?;
    all(rows, |r| {
        Ok(crate::SecretMeta {
            name: r.get("name")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    })
}

pub(crate) async fn delete_secret(e: &mut dyn Exec, t: &Tenant, name: &str) -> Result<bool> {
    let sql = "DELETE FROM secrets WHERE name = $1 AND org = $2 AND usr = $3 AND project = $4";
    Ok(e.execute(sql, &scoped(name, t)).await? > 0)
}

pub(crate) async fn all_sealed_secrets(e: &mut dyn Exec) -> Result<Vec<crate::SealedSecret>> {
    let rows = e
        .query("SELECT org, usr, project, name, sealed FROM secrets ORDER BY org, usr, project, name", args![])
        .await?;
    all(rows, |r| {
        Ok(crate::SealedSecret {
            tenant: Tenant { org: r.get("org")?, user: r.get("usr")?, project: r.get("project")? },
            name: r.get("name")?,
            sealed: r.get("sealed")?,
        })
    })
}

/// Run inside one transaction: any row changed since it was read rolls all back.
pub(crate) async fn reseal_secrets(e: &mut dyn Exec, changes: &[(crate::SealedSecret, String)]) -> Result<()> {
    for (old, new) in changes {
        let t = &old.tenant;
        let n = e
            .execute(
                "UPDATE secrets SET sealed = $1 WHERE org = $2 AND usr = $3 AND project = $4 AND name = $5 AND sealed = $6",
                args![new, &t.org, &t.user, &t.project, &old.name, &old.sealed],
            )
            .await?;
        if n != 1 {
            return Err(StoreError::Db(format!(
                "secret {} of {}/{} changed meanwhile; nothing was changed",
                old.name, t.org, t.user
            )));
        }
    }
    Ok(())
}

// ---- usage ----

#[allow(clippy::too_many_arguments)] // the trait's filter, one statement
pub(crate) async fn run_usage(
    e: &mut dyn Exec,
    org: &str,
    user: Option<&str>,
    project: Option<&str>,
    from: &str,
    to: &str,
    max: u32,
    tool_calls: bool,
) -> Result<Vec<crate::RunUsage>> {
    let within = args![org, user, from, to, project];
    let rows = e
        .query(
            "SELECT id, usr, model, agent, usage, cost_usd, created_at FROM runs
             WHERE org = $1 AND ($2 IS NULL OR usr = $2) AND created_at >= $3 AND created_at < $4
               AND ($6 IS NULL OR project = $6)
             ORDER BY id LIMIT $5",
            args![org, user, from, to, max.clamp(1, 100_000), project],
        )
        .await?;
    let calls = if tool_calls {
        e.query(
            "SELECT e.run_id, count(*) AS n FROM events e JOIN runs r ON r.id = e.run_id
                 WHERE r.org = $1 AND ($2 IS NULL OR r.usr = $2) AND r.created_at >= $3 AND r.created_at < $4
                   AND e.type = $5 AND ($6 IS NULL OR r.project = $6)
                 GROUP BY e.run_id",
            &[within[0], within[1], within[2], within[3], agentd_core::EventType::ToolResult.name().into(), within[4]],
        )
        .await?
    } else {
        vec![]
    };
    let mut per_run = HashMap::new();
    for r in &calls {
        per_run.insert(r.get::<String>("run_id")?, r.get::<i64>("n")?);
    }
    all(rows, |r| {
        let id: String = r.get("id")?;
        Ok(crate::RunUsage {
            tool_calls: 0,
            run_id: id,
            user: r.get("usr")?,
            model: r.get("model")?,
            agent: r.get("agent")?,
            usage: r.json("usage")?,
            cost_usd: r.get("cost_usd")?,
            created_at: r.get("created_at")?,
        })
    })
    .map(|mut v| {
        for u in &mut v {
            u.tool_calls = per_run.get(&u.run_id).copied().unwrap_or(0);
        }
        v
    })
}

// ---- organisation limits ----

pub(crate) async fn put_org_limits(e: &mut dyn Exec, org: &str, limits: &serde_json::Value) -> Result<()> {
    e.execute(
        "INSERT INTO org_limits (org, limits, updated_at) VALUES ($1, $2, $3)
         ON CONFLICT (org) DO UPDATE SET limits = excluded.limits, updated_at = excluded.updated_at",
        args![org, &to_json(limits)?, &now()],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get_org_limits(e: &mut dyn Exec, org: &str) -> Result<Option<serde_json::Value>> {
    one(e.query_opt("SELECT limits FROM org_limits WHERE org = $1", args![org]).await?, |r| r.json("limits"))
}

pub(crate) async fn list_org_limits(e: &mut dyn Exec) -> Result<Vec<(String, serde_json::Value)>> {
    let rows = e.query("SELECT org, limits FROM org_limits ORDER BY org", args![]).await?;
    all(rows, |r| Ok((r.get::<String>("org")?, r.json("limits")?)))
}
