//! Answering approvals: a person's decision (or the expiry) is journaled in
//! the run, which is queued again once nothing of it is pending.

use agentd_core::ErrorCode;
use std::time::Duration;

use agentd_core::{Approval, ApprovalStatus, Decision, Resolution, Tenant};
use agentd_store::{ApprovalFilter, Page, StoreError};

use crate::{Runtime, RuntimeError};

impl Runtime {
    pub async fn list_approvals(
        &self,
        t: &Tenant,
        f: &ApprovalFilter,
        page: &Page,
    ) -> Result<Vec<Approval>, RuntimeError> {
        Ok(self.store.list_approvals(t, f, page).await?)
    }

    pub async fn get_approval(&self, t: &Tenant, id: &str) -> Result<Approval, RuntimeError> {
        self.store.get_approval(t, id).await?.ok_or_else(|| not_found(id))
    }

    /// Answers a pending approval. Edited `arguments` (with `approve`) are
    /// checked against the tool's schema; the journal keeps both versions.
    pub async fn answer_approval(
        &self,
        t: &Tenant,
        id: &str,
        decision: &str,
        reason: Option<String>,
        arguments: Option<serde_json::Value>,
        resolved_by: Option<String>,
    ) -> Result<Approval, RuntimeError> {
        let Some(decision) = Decision::parse(decision).filter(|d| Decision::BY_PERSON.contains(d)) else {
            let known: Vec<&str> = Decision::BY_PERSON.iter().map(|d| d.as_str()).collect();
            return Err(RuntimeError::bad(
                ErrorCode::InvalidDecision,
                format!("`decision` must be one of {}, got {decision:?}", known.join(", ")),
            ));
        };
        let a = self.get_approval(t, id).await?;
        if a.status != ApprovalStatus::Pending {
            return Err(StoreError::NotPending(a.status.to_string()).into());
        }
        if let Some(args) = &arguments {
            if decision == Decision::Deny {
                return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "`arguments` can only come with an approval"));
            }
            // A session grant is keyed by the request as asked; edited arguments
            // would grant the unedited (perhaps dangerous) request for the session.
            if decision == Decision::ApproveForSession {
                return Err(RuntimeError::bad(
                    ErrorCode::InvalidRequest,
                    "edited `arguments` can only come with `approve`, not `approve_for_session`",
                ));
            }
            if !args.is_object() {
                return Err(RuntimeError::bad(ErrorCode::InvalidArguments, "`arguments` must be a JSON object"));
            }
            let run = self.get_run(t, &a.run_id).await?;
            let set = self.toolset_for_agent(t, &run.agent).await?;
            match self.lookup(&set, &a.tool, args) {
                Some((_, Err(e))) => return Err(RuntimeError::InvalidArguments(e)),
                Some((_, Ok(()))) => {}
                None => {
                    return Err(RuntimeError::ToolUnavailable { tool: a.tool.clone() });
                }
            }
        }
        let r = Resolution { decision, reason, arguments, resolved_by };
        self.resolve(t, id, &r).await
    }

    async fn resolve(&self, t: &Tenant, id: &str, r: &Resolution) -> Result<Approval, RuntimeError> {
        let (a, stored) = self.store.resolve_approval(t, id, r).await.map_err(|e| match e {
            StoreError::NotFound => not_found(id),
            other => other.into(),
        })?;
        self.publish(&a.run_id, &stored);
        // The run may be queued again.
        self.sched.wake();
        Ok(a)
    }

    /// Resolves approvals whose time ran out as denied; runs on every node
    /// (a second node's attempt finds them answered and does nothing).
    pub(crate) async fn expire_approvals_loop(self: std::sync::Arc<Self>) {
        let every = Duration::from_millis(self.sched.settings().poll_ms.clamp(10, 1_000));
        loop {
            tokio::select! {
                _ = tokio::time::sleep(every) => {}
                _ = self.sched.stopping().cancelled() => return,
            }
            let due = match self.store.expired_approvals(&agentd_store::now(), 100).await {
                Ok(d) => d,
                Err(e) => {
                    tracing::warn!(error = %e, "listing expired approvals failed");
                    continue;
                }
            };
            for (t, id) in due {
                let r = Resolution {
                    decision: Decision::Expired,
                    reason: Some("the approval expired before anyone answered".into()),
                    arguments: None,
                    resolved_by: None,
                };
                match self.resolve(&t, &id, &r).await {
                    // Answered in the meantime (here or on another node).
                    Ok(_) | Err(RuntimeError::ApprovalNotPending { .. }) => {}
                    Err(e) => tracing::warn!(approval_id = %id, error = %e, "expiring an approval failed"),
                }
            }
        }
    }
}

fn not_found(id: &str) -> RuntimeError {
    RuntimeError::ApprovalNotFound(id.to_string())
}
