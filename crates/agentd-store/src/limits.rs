//! Organisations' quotas set over the API.

use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Backend, Exec};
use crate::store::{SqlStore, work};
use crate::*;

/// Quotas set per organisation over the API (JSON, read by the runtime).
#[async_trait]
pub trait LimitStore: Send + Sync + 'static {
    /// Sets (replaces) an organisation's quotas.
    async fn put_org_limits(&self, org: &str, limits: &serde_json::Value) -> Result<()>;

    /// An organisation's quotas, if any were set.
    async fn get_org_limits(&self, org: &str) -> Result<Option<serde_json::Value>>;

    /// Every organisation's quotas that were set.
    async fn list_org_limits(&self) -> Result<Vec<(String, serde_json::Value)>>;
}

#[async_trait]
impl<B: Backend> LimitStore for SqlStore<B> {
    async fn put_org_limits(&self, org: &str, limits: &serde_json::Value) -> Result<()> {
        let (org, limits) = (org.to_string(), limits.clone());
        self.db.write(work(move |e| Box::pin(async move { put_org_limits(e, &org, &limits).await }))).await
    }

    async fn get_org_limits(&self, org: &str) -> Result<Option<serde_json::Value>> {
        let org = org.to_string();
        self.db.read(work(move |e| Box::pin(async move { get_org_limits(e, &org).await }))).await
    }

    async fn list_org_limits(&self) -> Result<Vec<(String, serde_json::Value)>> {
        self.db.read(work(move |e| Box::pin(async move { list_org_limits(e).await }))).await
    }
}

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
