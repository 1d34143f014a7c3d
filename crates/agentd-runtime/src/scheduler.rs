//! Claiming queued and orphaned runs under leases, heartbeats, and the
//! per-run task that executes a claimed run.

use std::sync::Arc;
use std::time::Duration;

use agentd_core::{Run, Tenant};
use agentd_store::ClaimLimits;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{Active, OnDrop, Runtime};

/// Limits and timings of the scheduler (`[scheduler]` in `agentd.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct SchedulerSettings {
    /// Runs this node executes at once.
    pub max_concurrent_runs: u32,
    /// Runs one organisation may have executing at once, across all nodes.
    pub per_tenant_concurrent_runs: u32,
    /// How long a lease lasts without renewal (renewed every third of it).
    pub lease_ms: u64,
    /// How often to look for claimable runs when nothing wakes the scheduler.
    pub poll_ms: u64,
    /// How long SIGTERM waits for runs to reach a step boundary.
    pub shutdown_grace_ms: u64,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 256,
            per_tenant_concurrent_runs: 64,
            lease_ms: 30_000,
            poll_ms: 1_000,
            shutdown_grace_ms: 10_000,
        }
    }
}

impl Runtime {
    /// Starts the scheduler and heartbeat. Leases this node id held before
    /// (a previous process) are released first so its runs resume at once.
    pub async fn start(self: &Arc<Self>) -> Result<(), agentd_store::StoreError> {
        let released = self.store.release_leases(&self.node_id, None).await?;
        if released > 0 {
            tracing::info!(runs = released, node = %self.node_id, "resuming runs this node held before it stopped");
        }
        // A node without any provider serves the API only: it would fail
        // every run it claimed, so it claims none.
        if self.models.is_empty() {
            tracing::warn!("no provider configured: this node serves the API but executes no runs");
        } else {
            let rt = self.clone();
            tokio::spawn(async move { rt.schedule_loop().await });
            let rt = self.clone();
            tokio::spawn(async move { rt.expire_approvals_loop().await });
        }
        let rt = self.clone();
        tokio::spawn(async move { rt.heartbeat_loop().await });
        // Servers tenants added over the API outlive restarts.
        let rt = self.clone();
        tokio::spawn(async move {
            match rt.load_mcp_servers().await {
                Ok(0) => {}
                Ok(n) => tracing::info!(servers = n, "connecting MCP servers tenants added"),
                Err(e) => tracing::warn!(error = %e, "loading tenants' MCP servers failed"),
            }
        });
        if let Some(changes) = self.store.changes() {
            let rt = self.clone();
            tokio::spawn(async move { rt.follow_changes(changes).await });
        }
        Ok(())
    }

    /// Reacts to appends made by any node: wakes the scheduler for new or
    /// finished runs, stops local runs cancelled elsewhere, and tells local
    /// SSE subscribers of remote runs to read the journal.
    async fn follow_changes(self: Arc<Self>, mut changes: tokio::sync::broadcast::Receiver<agentd_store::Change>) {
        let mut swept = std::time::Instant::now();
        loop {
            let c = tokio::select! {
                r = changes.recv() => r,
                _ = self.stopping.cancelled() => return,
            };
            match c {
                Ok(c) => {
                    let ty = agentd_core::EventType::parse(&c.type_name);
                    if ty.is_some_and(|t| {
                        t.is_terminal()
                            || matches!(
                                t,
                                agentd_core::EventType::RunCreated | agentd_core::EventType::ApprovalResolved
                            )
                    }) {
                        self.wake.notify_one();
                    }
                    if ty == Some(agentd_core::EventType::RunCancelled)
                        && let Some(a) = self.active().get(&c.run_id)
                    {
                        a.cancel.cancel();
                    }
                    self.hub.publish(&c.run_id, crate::Live::Changed(c.seq));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.wake.notify_one(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            if swept.elapsed() > Duration::from_secs(30) {
                self.hub.sweep();
                swept = std::time::Instant::now();
            }
        }
    }

    async fn schedule_loop(self: Arc<Self>) {
        let poll = Duration::from_millis(self.sched.poll_ms.max(10));
        loop {
            if self.stopping.is_cancelled() {
                return;
            }
            let free = (self.sched.max_concurrent_runs as usize).saturating_sub(self.active_runs());
            if free > 0 {
                let limits = ClaimLimits {
                    max: free as u32,
                    per_tenant: self.sched.per_tenant_concurrent_runs.max(1),
                    lease_ms: self.sched.lease_ms as i64,
                };
                match self.store.claim_runs(&self.node_id, &limits).await {
                    Ok(runs) => {
                        let full = runs.len() == free;
                        for (t, run) in runs {
                            self.spawn_run(t, run);
                        }
                        if full {
                            continue;
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "claiming runs failed"),
                }
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = self.stopping.cancelled() => return,
            }
        }
    }

    /// Renews the leases of running runs; stops the ones this node lost
    /// (taken over after an expiry, cancelled elsewhere, or deleted).
    async fn heartbeat_loop(self: Arc<Self>) {
        let every = Duration::from_millis((self.sched.lease_ms / 3).max(10));
        loop {
            tokio::time::sleep(every).await;
            let ids: Vec<String> = self.active().keys().cloned().collect();
            if ids.is_empty() {
                if self.stopping.is_cancelled() {
                    return;
                }
                continue;
            }
            match self.store.renew_leases(&self.node_id, &ids, self.sched.lease_ms as i64).await {
                Ok(lost) => {
                    for id in lost {
                        if let Some(a) = self.active().get(&id) {
                            tracing::info!(run_id = %id, "lease lost or run finished elsewhere; stopping it here");
                            a.cancel.cancel();
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "renewing leases failed"),
            }
        }
    }

    fn spawn_run(self: &Arc<Self>, t: Tenant, run: Run) {
        let token = CancellationToken::new();
        self.active().insert(run.id.clone(), Active { cancel: token.clone() });
        let rt = self.clone();
        self.tasks.spawn(async move {
            let run_id = run.id.clone();
            let _slot = OnDrop(Some(|| {
                rt.active().remove(&run_id);
                rt.hub.close(&run_id);
                rt.wake.notify_one();
            }));
            if let Err(e) = rt.drive(&t, run.clone(), &token).await {
                tracing::error!(run_id = %run.id, error = %e, "run stopped on a store error");
                let fail = agentd_core::EventKind::RunFailed {
                    error: agentd_core::RunError::new("internal_error", e.to_string()),
                };
                let _ = rt.journal(&t, &run.id, &[fail]).await;
            }
        });
    }
}
