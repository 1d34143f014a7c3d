//! Approvals: the rows derived from approval events, answers and session
//! grants.

use agentd_core::*;
use async_trait::async_trait;

use crate::journal::append;
use crate::queries::*;
use crate::sql::{Backend, Exec, Row};
use crate::store::{SqlStore, work};
use crate::*;

/// Approvals: the rows derived from approval events, answers and grants.
#[async_trait]
pub trait ApprovalStore: Send + Sync + 'static {
    /// The tenant's approvals, oldest first.
    async fn list_approvals(&self, t: &Tenant, f: &ApprovalFilter, page: &Page) -> Result<Vec<Approval>>;

    async fn get_approval(&self, t: &Tenant, id: &str) -> Result<Option<Approval>>;

    /// Answers a pending approval: appends `approval.resolved` to its run (which
    /// is queued again once none of its approvals is pending) in one transaction.
    /// `NotFound` for an unknown id, `NotPending` if it was answered already.
    async fn resolve_approval(&self, t: &Tenant, id: &str, r: &Resolution) -> Result<(Approval, Vec<StoredEvent>)>;

    /// Whether a person approved this key for the whole session.
    async fn session_grant(&self, t: &Tenant, session_id: &str, approval_key: &str) -> Result<bool>;

    /// Pending approvals of every tenant whose expiry is before `now`.
    async fn expired_approvals(&self, now: &str, limit: u32) -> Result<Vec<(Tenant, String)>>;
}

#[async_trait]
impl<B: Backend> ApprovalStore for SqlStore<B> {
    async fn list_approvals(&self, t: &Tenant, f: &ApprovalFilter, page: &Page) -> Result<Vec<Approval>> {
        let (t, f, page) = (t.clone(), f.clone(), page.clone());
        self.db.read(work(move |e| Box::pin(async move { list_approvals(e, &t, &f, &page).await }))).await
    }

    async fn get_approval(&self, t: &Tenant, id: &str) -> Result<Option<Approval>> {
        let (t, id) = (t.clone(), id.to_string());
        self.db.read(work(move |e| Box::pin(async move { get_approval(e, &t, &id).await }))).await
    }

    async fn resolve_approval(&self, t: &Tenant, id: &str, r: &Resolution) -> Result<(Approval, Vec<StoredEvent>)> {
        let (t, id, r) = (t.clone(), id.to_string(), r.clone());
        self.db.write(work(move |e| Box::pin(async move { resolve_approval(e, &t, &id, &r).await }))).await
    }

    async fn session_grant(&self, t: &Tenant, session_id: &str, approval_key: &str) -> Result<bool> {
        let (t, sid, key) = (t.clone(), session_id.to_string(), approval_key.to_string());
        self.db.read(work(move |e| Box::pin(async move { session_grant(e, &t, &sid, &key).await }))).await
    }

    async fn expired_approvals(&self, now: &str, max: u32) -> Result<Vec<(Tenant, String)>> {
        let now = now.to_string();
        self.db.read(work(move |e| Box::pin(async move { expired_approvals(e, &now, max).await }))).await
    }
}

pub(crate) fn approval_from_row(r: &Row) -> Result<Approval> {
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
