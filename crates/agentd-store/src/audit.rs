//! The audit log of changes.

use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Backend, Exec};
use crate::store::{SqlStore, work};
use crate::*;

/// The audit log: who changed what through the API.
#[async_trait]
pub trait AuditStore: Send + Sync + 'static {
    async fn record_audit(&self, e: &agentd_core::AuditEntry) -> Result<()>;

    /// Entries oldest first (of one organisation; every org when `None`).
    async fn list_audit(&self, org: Option<&str>, page: &Page) -> Result<Vec<agentd_core::AuditEntry>>;
}

#[async_trait]
impl<B: Backend> AuditStore for SqlStore<B> {
    async fn record_audit(&self, entry: &agentd_core::AuditEntry) -> Result<()> {
        let entry = entry.clone();
        self.db.write(work(move |e| Box::pin(async move { record_audit(e, &entry).await }))).await
    }

    async fn list_audit(&self, org: Option<&str>, page: &Page) -> Result<Vec<agentd_core::AuditEntry>> {
        let (org, page) = (org.map(str::to_string), page.clone());
        self.db.read(work(move |e| Box::pin(async move { list_audit(e, org.as_deref(), &page).await }))).await
    }
}

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
