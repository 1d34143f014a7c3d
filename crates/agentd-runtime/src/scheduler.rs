//! Claiming queued and orphaned runs under leases, heartbeats, and the
//! per-run task that executes a claimed run.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use agentd_core::{Run, Tenant};
use agentd_store::ClaimLimits;
use serde::Deserialize;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Runtime;

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
    /// Whether this node executes runs (default: when its config has a
    /// provider; true lets a node run only tenants' own providers).
    pub execute_runs: Option<bool>,
}

impl Default for SchedulerSettings {
    fn default() -> Self {
        Self {
            max_concurrent_runs: 256,
            per_tenant_concurrent_runs: 64,
            lease_ms: 30_000,
            poll_ms: 1_000,
            shutdown_grace_ms: 10_000,
            execute_runs: None,
        }
    }
}

/// A run executing in this process.
struct Active {
    cancel: CancellationToken,
    /// Which task: a run woken again (children done) may be claimed before
    /// its previous task has finished returning.
    task: u64,
}

static TASKS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Runs a closure when dropped (used to free a run's slot however its task ends).
struct OnDrop<F: FnOnce()>(Option<F>);

impl<F: FnOnce()> Drop for OnDrop<F> {
    fn drop(&mut self) {
        if let Some(f) = self.0.take() {
            f();
        }
    }
}

/// The runs service's own state: this node's name and limits, the runs it
/// executes, and the signals that wake or stop its loops. Nothing outside
/// this module touches these fields.
pub(crate) struct Scheduling {
    node_id: String,
    settings: SchedulerSettings,
    active: Mutex<HashMap<String, Active>>,
    tasks: TaskTracker,
    /// Wakes the scheduler: a run was created or a slot freed.
    wake: Notify,
    /// Stops the scheduler and heartbeat.
    stopping: CancellationToken,
    /// Runs stop at their next step boundary.
    draining: AtomicBool,
}

impl Scheduling {
    pub(crate) fn new(node_id: String, settings: SchedulerSettings) -> Self {
        Self {
            node_id,
            settings,
            active: Mutex::new(HashMap::new()),
            tasks: TaskTracker::new(),
            wake: Notify::new(),
            stopping: CancellationToken::new(),
            draining: AtomicBool::new(false),
        }
    }

    /// This node's name in leases and run events.
    pub(crate) fn node_id(&self) -> &str {
        &self.node_id
    }

    pub(crate) fn settings(&self) -> &SchedulerSettings {
        &self.settings
    }

    /// Asks the scheduler to look for claimable runs now.
    pub(crate) fn wake(&self) {
        self.wake.notify_one();
    }

    /// Cancelled when the node stops.
    pub(crate) fn stopping(&self) -> &CancellationToken {
        &self.stopping
    }

    pub(crate) fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    fn active(&self) -> MutexGuard<'_, HashMap<String, Active>> {
        self.active.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn active_count(&self) -> usize {
        self.active().len()
    }

    /// Stops the run's task if it executes here.
    pub(crate) fn cancel_local(&self, run_id: &str) {
        if let Some(a) = self.active().get(run_id) {
            a.cancel.cancel();
        }
    }

    /// Stops claiming and lets running tasks reach a step boundary within
    /// `grace`; the rest are stopped mid-step.
    pub(crate) async fn drain(&self, grace: Duration) {
        self.draining.store(true, Ordering::Relaxed);
        self.stopping.cancel();
        self.tasks.close();
        if tokio::time::timeout(grace, self.tasks.wait()).await.is_err() {
            tracing::warn!(runs = self.active_count(), "grace period over; stopping runs mid-step");
            for a in self.active().values() {
                a.cancel.cancel();
            }
            self.tasks.wait().await;
        }
    }
}

impl Runtime {
    /// Starts the scheduler and heartbeat. Leases this node id held before
    /// (a previous process) are released first so its runs resume at once.
    pub async fn start(self: &Arc<Self>) -> Result<(), agentd_store::StoreError> {
        // Every tenant's secrets mask its data from the first write on, and
        // secrets put on other nodes join within the refresh interval.
        self.load_secret_masks().await;
        let rt = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(crate::secrets::MASK_REFRESH).await;
                rt.load_secret_masks().await;
            }
        });
        let released = self.store.release_leases(&self.sched.node_id, None).await?;
        if released > 0 {
            tracing::info!(runs = released, node = %self.sched.node_id, "resuming runs this node held before it stopped");
        }
        // A node without a provider of its own serves the API only (it would
        // fail the runs it claimed), unless told it runs tenants' own providers.
        if self.sched.settings.execute_runs.unwrap_or(!self.models.is_empty()) {
            let rt = self.clone();
            tokio::spawn(async move { rt.schedule_loop().await });
            let rt = self.clone();
            tokio::spawn(async move { rt.expire_approvals_loop().await });
        } else {
            tracing::warn!(
                "no provider configured: this node serves the API but executes no runs \
                 (set [scheduler] execute_runs = true if tenants bring their own providers)"
            );
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
                _ = self.sched.stopping.cancelled() => return,
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
                        self.sched.wake();
                    }
                    if ty == Some(agentd_core::EventType::RunCancelled)
                        && let Some(a) = self.sched.active().get(&c.run_id)
                    {
                        a.cancel.cancel();
                    }
                    if ty.is_some_and(|t| t.is_lifecycle()) {
                        self.hub.bump_feed();
                    }
                    self.hub.publish(&c.run_id, crate::Live::Changed(c.seq));
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => self.sched.wake(),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
            if swept.elapsed() > Duration::from_secs(30) {
                self.hub.sweep();
                swept = std::time::Instant::now();
            }
        }
    }

    async fn schedule_loop(self: Arc<Self>) {
        let poll = Duration::from_millis(self.sched.settings.poll_ms.max(10));
        loop {
            if self.sched.stopping.is_cancelled() {
                return;
            }
            let free = (self.sched.settings.max_concurrent_runs as usize).saturating_sub(self.sched.active_count());
            if free > 0 {
                let (per_tenant, per_org) = self.claim_caps(self.sched.settings.per_tenant_concurrent_runs).await;
                let limits = ClaimLimits {
                    max: free as u32,
                    per_tenant,
                    lease_ms: self.sched.settings.lease_ms as i64,
                    per_org,
                };
                match self.store.claim_runs(&self.sched.node_id, &limits).await {
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
                _ = self.sched.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = self.sched.stopping.cancelled() => return,
            }
        }
    }

    /// Renews the leases of running runs; stops the ones this node lost
    /// (taken over after an expiry, cancelled elsewhere, or deleted).
    async fn heartbeat_loop(self: Arc<Self>) {
        let every = Duration::from_millis((self.sched.settings.lease_ms / 3).max(10));
        loop {
            tokio::time::sleep(every).await;
            let ids: Vec<String> = self.sched.active().keys().cloned().collect();
            if ids.is_empty() {
                if self.sched.stopping.is_cancelled() {
                    return;
                }
                continue;
            }
            match self.store.renew_leases(&self.sched.node_id, &ids, self.sched.settings.lease_ms as i64).await {
                Ok(lost) => {
                    for id in lost {
                        if let Some(a) = self.sched.active().get(&id) {
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
        let task = TASKS.fetch_add(1, Ordering::Relaxed);
        self.sched.active().insert(run.id.clone(), Active { cancel: token.clone(), task });
        let rt = self.clone();
        self.sched.tasks.spawn(async move {
            let run_id = run.id.clone();
            let _slot = OnDrop(Some(|| {
                let mut active = rt.sched.active();
                // A newer task of the same run keeps its slot and its live channel.
                if active.get(&run_id).is_some_and(|a| a.task == task) {
                    active.remove(&run_id);
                    drop(active);
                    rt.hub.close(&run_id);
                }
                rt.sched.wake();
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
