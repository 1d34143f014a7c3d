//! Run trees: child runs created with their parent's `child.spawned`, a run's
//! end rolled up to its parent (usage, cost, held siblings, `children.done`),
//! and cancelling a whole subtree.

use std::collections::{HashMap, HashSet};

use agentd_core::*;

use crate::journal::{append, create_run};
use crate::plan::{RunHead, plan_append};
use crate::queries::*;
use crate::sql::Exec;
use crate::*;

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

pub(crate) async fn child_held(e: &mut dyn Exec, id: &str) -> Result<bool> {
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

pub(crate) async fn active_run(e: &mut dyn Exec, t: &Tenant, session_id: &str) -> Result<Option<Run>> {
    let sql = "SELECT * FROM runs WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4
                 AND status IN ('queued', 'running', 'waiting_approval', 'waiting_children') ORDER BY id LIMIT 1";
    one(e.query_opt(sql, &scoped(session_id, t)).await?, run_from_row)
}

pub(crate) async fn append_inner(
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
pub(crate) async fn end_of_child_run(
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
pub(crate) async fn cancel_subtree(e: &mut dyn Exec, t: &Tenant, run_id: &str) -> Result<()> {
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
pub(crate) async fn wake_if_done(e: &mut dyn Exec, t: &Tenant, run_id: &str) -> Result<()> {
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
