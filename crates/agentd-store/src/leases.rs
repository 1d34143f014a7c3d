//! Leases: claiming runs for a node, heartbeats and release.

use std::collections::HashMap;

use agentd_core::*;
use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Arg, Backend, Exec};
use crate::store::{SqlStore, work};
use crate::*;

/// Claiming runs and holding them: the scheduler's leases.
#[async_trait]
pub trait LeaseStore: Send + Sync + 'static {
    /// Leases up to `limits.max` claimable runs to `node`: unfinished, not
    /// leased (or lease expired), first in their session's lane, within the
    /// per-tenant limit, taken round-robin across tenants.
    async fn claim_runs(&self, node: &str, limits: &ClaimLimits) -> Result<Vec<(Tenant, Run)>>;

    /// Extends `node`'s leases; returns the ids it no longer holds (taken
    /// over, finished or deleted).
    async fn renew_leases(&self, node: &str, run_ids: &[String], lease_ms: i64) -> Result<Vec<String>>;

    /// Gives up `node`'s leases on these runs (all of them when `run_ids` is `None`).
    async fn release_leases(&self, node: &str, run_ids: Option<&[String]>) -> Result<u64>;
}

#[async_trait]
impl<B: Backend> LeaseStore for SqlStore<B> {
    async fn claim_runs(&self, node: &str, limits: &ClaimLimits) -> Result<Vec<(Tenant, Run)>> {
        let (node, limits) = (node.to_string(), limits.clone());
        self.db.write(work(move |e| Box::pin(async move { claim_runs(e, &node, &limits).await }))).await
    }

    async fn renew_leases(&self, node: &str, run_ids: &[String], lease_ms: i64) -> Result<Vec<String>> {
        let (node, ids) = (node.to_string(), run_ids.to_vec());
        self.db.write(work(move |e| Box::pin(async move { renew_leases(e, &node, &ids, lease_ms).await }))).await
    }

    async fn release_leases(&self, node: &str, run_ids: Option<&[String]>) -> Result<u64> {
        let (node, ids) = (node.to_string(), run_ids.map(<[String]>::to_vec));
        self.db.write(work(move |e| Box::pin(async move { release_leases(e, &node, ids.as_deref()).await }))).await
    }
}

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
