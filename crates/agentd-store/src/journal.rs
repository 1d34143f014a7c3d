//! Runs and their journal: creation, guarded appends with their derived rows,
//! reads, the tenant feed, pruning.

use agentd_core::*;
use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Backend, Exec};
use crate::store::{SqlStore, work};
use crate::tree::{active_run, append_inner, create_child_run, descendants, list_children};
use crate::*;

/// Runs and their journal: creation, appends with their derived rows, reads, pruning.
#[async_trait]
pub trait JournalStore: Send + Sync + 'static {
    /// Checks the database answers.
    async fn ping(&self) -> Result<()>;

    /// Inserts the run row and its `run.created` event in one transaction.
    async fn create_run(&self, t: &Tenant, new: &NewRun) -> Result<(Run, StoredEvent)>;

    async fn get_run(&self, t: &Tenant, id: &str) -> Result<Option<Run>>;

    async fn list_runs(&self, t: &Tenant, filter: &RunFilter, page: &Page) -> Result<Vec<Run>>;

    /// Appends events with the next sequence numbers and applies their
    /// effects to the run and session rows, all in one transaction.
    /// Fails with [`StoreError::RunFinished`] once the run is terminal, and
    /// with `LeaseLost` / `SeqConflict` when the guard does not hold.
    async fn append_guarded(
        &self,
        t: &Tenant,
        run_id: &str,
        guard: &AppendGuard,
        events: &[EventKind],
    ) -> Result<Vec<StoredEvent>>;

    /// Appends without conditions (API writes such as cancel).
    async fn append(&self, t: &Tenant, run_id: &str, events: &[EventKind]) -> Result<Vec<StoredEvent>> {
        self.append_guarded(t, run_id, &AppendGuard::default(), events).await
    }

    async fn events(&self, t: &Tenant, run_id: &str, q: &EventQuery) -> Result<Vec<StoredEvent>>;

    /// The tenant's events of these types written at or after `since`
    /// (RFC 3339), oldest first, each with its run's session.
    async fn tenant_feed(&self, t: &Tenant, types: &[String], since: &str, limit: u32) -> Result<Vec<FeedEvent>>;

    /// Creates a child run (with its own session) and appends `spawned`
    /// (`child.spawned`) to the parent under `guard`, in one transaction;
    /// the child is held back when the parent already has `max_concurrent`
    /// children running. Returns the child and the parent's new events.
    async fn create_child_run(
        &self,
        t: &Tenant,
        parent_id: &str,
        guard: &AppendGuard,
        new: &NewRun,
        spawned: &EventKind,
    ) -> Result<(Run, Vec<StoredEvent>)>;

    /// The children of a run, oldest first.
    async fn list_children(&self, t: &Tenant, run_id: &str) -> Result<Vec<Run>>;

    /// Every run below this one in its tree, with its status, in one query.
    async fn descendants(&self, t: &Tenant, run_id: &str) -> Result<Vec<(String, agentd_core::RunStatus)>>;

    /// Runs of every tenant that have not reached a terminal state.
    async fn unfinished_runs(&self) -> Result<Vec<(Tenant, Run)>>;

    /// The oldest unfinished run of a session: the one its lane is serving.
    async fn active_run(&self, t: &Tenant, session_id: &str) -> Result<Option<Run>>;

    /// Appends made anywhere (including other nodes), when the database can
    /// tell (PostgreSQL LISTEN/NOTIFY); `None` for a single-process store.
    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        None
    }

    /// Deletes finished runs (and their events) last updated before `cutoff`,
    /// and sessions idle since then that have no runs left.
    async fn prune(&self, cutoff: &str, scope: &PruneScope) -> Result<PruneStats>;
}

#[async_trait]
impl<B: Backend> JournalStore for SqlStore<B> {
    async fn ping(&self) -> Result<()> {
        // Both doors must answer (on SQLite: a reader thread and the writer).
        let probe = || work(|e| Box::pin(async move { e.query("SELECT 1", &[]).await.map(drop) }));
        self.db.read(probe()).await?;
        self.db.write(probe()).await
    }

    async fn create_run(&self, t: &Tenant, new: &NewRun) -> Result<(Run, StoredEvent)> {
        let (t, new) = (t.clone(), new.clone());
        self.db.write(work(move |e| Box::pin(async move { create_run(e, &t, &new).await }))).await
    }

    async fn get_run(&self, t: &Tenant, id: &str) -> Result<Option<Run>> {
        let (t, id) = (t.clone(), id.to_string());
        self.db.read(work(move |e| Box::pin(async move { get_run(e, &t, &id).await }))).await
    }

    async fn list_runs(&self, t: &Tenant, f: &RunFilter, page: &Page) -> Result<Vec<Run>> {
        let (t, f, page) = (t.clone(), f.clone(), page.clone());
        self.db.read(work(move |e| Box::pin(async move { list_runs(e, &t, &f, &page).await }))).await
    }

    async fn append_guarded(
        &self,
        t: &Tenant,
        run_id: &str,
        guard: &AppendGuard,
        events: &[EventKind],
    ) -> Result<Vec<StoredEvent>> {
        let (t, id, guard, events) = (t.clone(), run_id.to_string(), guard.clone(), events.to_vec());
        self.db.write(work(move |e| Box::pin(async move { append(e, &t, &id, &guard, &events).await }))).await
    }

    async fn events(&self, t: &Tenant, run_id: &str, query: &EventQuery) -> Result<Vec<StoredEvent>> {
        let (t, id, query) = (t.clone(), run_id.to_string(), query.clone());
        self.db.read(work(move |e| Box::pin(async move { events(e, &t, &id, &query).await }))).await
    }

    async fn tenant_feed(
        &self,
        t: &Tenant,
        types: &[String],
        since: &str,
        limit: u32,
    ) -> Result<Vec<crate::FeedEvent>> {
        let (t, types, since) = (t.clone(), types.to_vec(), since.to_string());
        self.db.read(work(move |e| Box::pin(async move { tenant_feed(e, &t, &types, &since, limit).await }))).await
    }

    async fn create_child_run(
        &self,
        t: &Tenant,
        parent_id: &str,
        guard: &AppendGuard,
        new: &NewRun,
        spawned: &EventKind,
    ) -> Result<(Run, Vec<StoredEvent>)> {
        let (t, pid, guard, new, ev) = (t.clone(), parent_id.to_string(), guard.clone(), new.clone(), spawned.clone());
        self.db
            .write(work(move |e| Box::pin(async move { create_child_run(e, &t, &pid, &guard, &new, &ev).await })))
            .await
    }

    async fn list_children(&self, t: &Tenant, run_id: &str) -> Result<Vec<Run>> {
        let (t, id) = (t.clone(), run_id.to_string());
        self.db.read(work(move |e| Box::pin(async move { list_children(e, &t, &id).await }))).await
    }

    async fn descendants(&self, t: &Tenant, run_id: &str) -> Result<Vec<(String, agentd_core::RunStatus)>> {
        let (t, id) = (t.clone(), run_id.to_string());
        self.db.read(work(move |e| Box::pin(async move { descendants(e, &t, &id).await }))).await
    }

    async fn unfinished_runs(&self) -> Result<Vec<(Tenant, Run)>> {
        self.db.read(work(|e| Box::pin(async move { unfinished_runs(e).await }))).await
    }

    async fn active_run(&self, t: &Tenant, session_id: &str) -> Result<Option<Run>> {
        let (t, sid) = (t.clone(), session_id.to_string());
        self.db.read(work(move |e| Box::pin(async move { active_run(e, &t, &sid).await }))).await
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        self.db.changes()
    }

    async fn prune(&self, cutoff: &str, scope: &PruneScope) -> Result<PruneStats> {
        let (cutoff, scope) = (cutoff.to_string(), scope.clone());
        self.db.write(work(move |e| Box::pin(async move { prune(e, &cutoff, &scope).await }))).await
    }
}

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
