//! The store traits, implemented once for every backend: each method moves
//! its arguments into a unit of work and runs it where the backend runs reads
//! or transactions.

use agentd_core::{Approval, EventKind, Resolution, Run, Session, StoredEvent, Tenant};
use async_trait::async_trait;
use futures::future::BoxFuture;

use crate::prelude::*;
use crate::queries as q;
use crate::sql::{Backend, Exec, Work};
use crate::{
    AppendGuard, ApprovalFilter, Change, ClaimLimits, DirectCall, DocKind, EventQuery, NewRun, Page, PruneScope,
    PruneStats, Result, RunFilter, SessionMessage, StoreError, now,
};

/// A store over one database backend (see [`crate::SqliteStore`], [`crate::PgStore`]).
pub struct SqlStore<B> {
    pub(crate) db: B,
}

/// Boxes a closure as a unit of work (and gives the compiler its signature).
fn work<T, F>(f: F) -> Work<T>
where
    F: for<'c> FnOnce(&'c mut dyn Exec) -> BoxFuture<'c, Result<T>> + Send + 'static,
{
    Box::new(f)
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(e.to_string()))
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
        self.db.write(work(move |e| Box::pin(async move { q::create_run(e, &t, &new).await }))).await
    }

    async fn get_run(&self, t: &Tenant, id: &str) -> Result<Option<Run>> {
        let (t, id) = (t.clone(), id.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::get_run(e, &t, &id).await }))).await
    }

    async fn list_runs(&self, t: &Tenant, f: &RunFilter, page: &Page) -> Result<Vec<Run>> {
        let (t, f, page) = (t.clone(), f.clone(), page.clone());
        self.db.read(work(move |e| Box::pin(async move { q::list_runs(e, &t, &f, &page).await }))).await
    }

    async fn append_guarded(
        &self,
        t: &Tenant,
        run_id: &str,
        guard: &AppendGuard,
        events: &[EventKind],
    ) -> Result<Vec<StoredEvent>> {
        let (t, id, guard, events) = (t.clone(), run_id.to_string(), guard.clone(), events.to_vec());
        self.db.write(work(move |e| Box::pin(async move { q::append(e, &t, &id, &guard, &events).await }))).await
    }

    async fn events(&self, t: &Tenant, run_id: &str, query: &EventQuery) -> Result<Vec<StoredEvent>> {
        let (t, id, query) = (t.clone(), run_id.to_string(), query.clone());
        self.db.read(work(move |e| Box::pin(async move { q::events(e, &t, &id, &query).await }))).await
    }

    async fn tenant_feed(
        &self,
        t: &Tenant,
        types: &[String],
        since: &str,
        limit: u32,
    ) -> Result<Vec<crate::FeedEvent>> {
        let (t, types, since) = (t.clone(), types.to_vec(), since.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::tenant_feed(e, &t, &types, &since, limit).await }))).await
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
            .write(work(move |e| Box::pin(async move { q::create_child_run(e, &t, &pid, &guard, &new, &ev).await })))
            .await
    }

    async fn list_children(&self, t: &Tenant, run_id: &str) -> Result<Vec<Run>> {
        let (t, id) = (t.clone(), run_id.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::list_children(e, &t, &id).await }))).await
    }

    async fn descendants(&self, t: &Tenant, run_id: &str) -> Result<Vec<(String, agentd_core::RunStatus)>> {
        let (t, id) = (t.clone(), run_id.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::descendants(e, &t, &id).await }))).await
    }

    async fn unfinished_runs(&self) -> Result<Vec<(Tenant, Run)>> {
        self.db.read(work(|e| Box::pin(async move { q::unfinished_runs(e).await }))).await
    }

    async fn active_run(&self, t: &Tenant, session_id: &str) -> Result<Option<Run>> {
        let (t, sid) = (t.clone(), session_id.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::active_run(e, &t, &sid).await }))).await
    }

    fn changes(&self) -> Option<tokio::sync::broadcast::Receiver<Change>> {
        self.db.changes()
    }

    async fn prune(&self, cutoff: &str, scope: &PruneScope) -> Result<PruneStats> {
        let (cutoff, scope) = (cutoff.to_string(), scope.clone());
        self.db.write(work(move |e| Box::pin(async move { q::prune(e, &cutoff, &scope).await }))).await
    }
}

#[async_trait]
impl<B: Backend> SessionStore for SqlStore<B> {
    async fn create_session(&self, t: &Tenant, title: Option<String>, metadata: serde_json::Value) -> Result<Session> {
        let ts = now();
        let (title, metadata) = crate::masked_session(t, title, metadata);
        let s = Session { id: agentd_core::new_id("ses"), title, metadata, created_at: ts.clone(), updated_at: ts };
        let (t, row) = (t.clone(), s.clone());
        self.db.write(work(move |e| Box::pin(async move { q::create_session(e, &t, &row).await }))).await?;
        Ok(s)
    }

    async fn get_session(&self, t: &Tenant, id: &str) -> Result<Option<Session>> {
        let (t, id) = (t.clone(), id.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::get_session(e, &t, &id).await }))).await
    }

    async fn list_sessions(&self, t: &Tenant, page: &Page) -> Result<Vec<Session>> {
        let (t, page) = (t.clone(), page.clone());
        self.db.read(work(move |e| Box::pin(async move { q::list_sessions(e, &t, &page).await }))).await
    }

    async fn delete_session(&self, t: &Tenant, id: &str) -> Result<bool> {
        let (t, id) = (t.clone(), id.to_string());
        self.db.write(work(move |e| Box::pin(async move { q::delete_session(e, &t, &id).await }))).await
    }

    async fn session_messages(&self, t: &Tenant, session_id: &str) -> Result<Vec<SessionMessage>> {
        let (t, id) = (t.clone(), session_id.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::session_messages(e, &t, &id).await }))).await
    }
}

#[async_trait]
impl<B: Backend> LeaseStore for SqlStore<B> {
    async fn claim_runs(&self, node: &str, limits: &ClaimLimits) -> Result<Vec<(Tenant, Run)>> {
        let (node, limits) = (node.to_string(), limits.clone());
        self.db.write(work(move |e| Box::pin(async move { q::claim_runs(e, &node, &limits).await }))).await
    }

    async fn renew_leases(&self, node: &str, run_ids: &[String], lease_ms: i64) -> Result<Vec<String>> {
        let (node, ids) = (node.to_string(), run_ids.to_vec());
        self.db.write(work(move |e| Box::pin(async move { q::renew_leases(e, &node, &ids, lease_ms).await }))).await
    }

    async fn release_leases(&self, node: &str, run_ids: Option<&[String]>) -> Result<u64> {
        let (node, ids) = (node.to_string(), run_ids.map(<[String]>::to_vec));
        self.db.write(work(move |e| Box::pin(async move { q::release_leases(e, &node, ids.as_deref()).await }))).await
    }
}

#[async_trait]
impl<B: Backend> DocStore for SqlStore<B> {
    async fn create_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<()> {
        let (t, name, doc) = (t.clone(), name.to_string(), to_json(&crate::masked_doc(t, kind, doc))?);
        self.db.write(work(move |e| Box::pin(async move { q::create_doc(e, &t, kind, &name, &doc).await }))).await
    }

    async fn list_docs(&self, t: &Tenant, kind: DocKind) -> Result<Vec<serde_json::Value>> {
        let t = t.clone();
        self.db.read(work(move |e| Box::pin(async move { q::list_docs(e, &t, kind).await }))).await
    }

    async fn list_docs_all(&self, kind: DocKind) -> Result<Vec<(Tenant, serde_json::Value)>> {
        self.db.read(work(move |e| Box::pin(async move { q::list_docs_all(e, kind).await }))).await
    }

    async fn replace_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<bool> {
        let (t, name, doc) = (t.clone(), name.to_string(), to_json(&crate::masked_doc(t, kind, doc))?);
        self.db.write(work(move |e| Box::pin(async move { q::replace_doc(e, &t, kind, &name, &doc).await }))).await
    }

    async fn doc_versions(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<Vec<crate::DocVersion>> {
        let (t, name) = (t.clone(), name.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::doc_versions(e, &t, kind, &name, None).await }))).await
    }

    async fn doc_version(
        &self,
        t: &Tenant,
        kind: DocKind,
        name: &str,
        version: i64,
    ) -> Result<Option<crate::DocVersion>> {
        let (t, name) = (t.clone(), name.to_string());
        let w = work(move |e| Box::pin(async move { q::doc_versions(e, &t, kind, &name, Some(version)).await }));
        Ok(self.db.read(w).await?.pop())
    }

    async fn post_blackboard(&self, t: &Tenant, entry: &crate::BlackboardEntry) -> Result<bool> {
        let (t, mut b) = (t.clone(), entry.clone());
        if let std::borrow::Cow::Owned(m) = agentd_core::redact::redact_for(&t, &b.content) {
            b.content = m;
        }
        self.db.write(work(move |e| Box::pin(async move { q::post_blackboard(e, &t, &b).await }))).await
    }

    async fn blackboard(&self, t: &Tenant, team: &str) -> Result<Vec<crate::BlackboardEntry>> {
        let (t, team) = (t.clone(), team.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::blackboard(e, &t, &team).await }))).await
    }

    async fn delete_doc(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<bool> {
        let (t, name) = (t.clone(), name.to_string());
        self.db.write(work(move |e| Box::pin(async move { q::delete_doc(e, &t, kind, &name).await }))).await
    }
}

#[async_trait]
impl<B: Backend> ToolCallStore for SqlStore<B> {
    async fn record_tool_call(&self, t: &Tenant, call: &DirectCall) -> Result<()> {
        let (t, call) = (t.clone(), call.clone());
        self.db.write(work(move |e| Box::pin(async move { q::record_tool_call(e, &t, &call).await }))).await
    }

    async fn list_tool_calls(&self, t: &Tenant, session_id: Option<&str>, page: &Page) -> Result<Vec<DirectCall>> {
        let (t, sid, page) = (t.clone(), session_id.map(str::to_string), page.clone());
        self.db
            .read(work(move |e| Box::pin(async move { q::list_tool_calls(e, &t, sid.as_deref(), &page).await })))
            .await
    }
}

#[async_trait]
impl<B: Backend> ApprovalStore for SqlStore<B> {
    async fn list_approvals(&self, t: &Tenant, f: &ApprovalFilter, page: &Page) -> Result<Vec<Approval>> {
        let (t, f, page) = (t.clone(), f.clone(), page.clone());
        self.db.read(work(move |e| Box::pin(async move { q::list_approvals(e, &t, &f, &page).await }))).await
    }

    async fn get_approval(&self, t: &Tenant, id: &str) -> Result<Option<Approval>> {
        let (t, id) = (t.clone(), id.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::get_approval(e, &t, &id).await }))).await
    }

    async fn resolve_approval(&self, t: &Tenant, id: &str, r: &Resolution) -> Result<(Approval, Vec<StoredEvent>)> {
        let (t, id, r) = (t.clone(), id.to_string(), r.clone());
        self.db.write(work(move |e| Box::pin(async move { q::resolve_approval(e, &t, &id, &r).await }))).await
    }

    async fn session_grant(&self, t: &Tenant, session_id: &str, approval_key: &str) -> Result<bool> {
        let (t, sid, key) = (t.clone(), session_id.to_string(), approval_key.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::session_grant(e, &t, &sid, &key).await }))).await
    }

    async fn expired_approvals(&self, now: &str, max: u32) -> Result<Vec<(Tenant, String)>> {
        let now = now.to_string();
        self.db.read(work(move |e| Box::pin(async move { q::expired_approvals(e, &now, max).await }))).await
    }
}

#[async_trait]
impl<B: Backend> KeyStore for SqlStore<B> {
    async fn create_key(&self, key: &agentd_core::ApiKey, hash: &str) -> Result<()> {
        let (key, hash) = (key.clone(), hash.to_string());
        self.db.write(work(move |e| Box::pin(async move { q::create_key(e, &key, &hash).await }))).await
    }

    async fn keys_by_prefix(&self, prefix: &str) -> Result<Vec<(agentd_core::ApiKey, String)>> {
        let prefix = prefix.to_string();
        self.db.read(work(move |e| Box::pin(async move { q::keys_by_prefix(e, &prefix).await }))).await
    }

    async fn get_key(&self, id: &str) -> Result<Option<agentd_core::ApiKey>> {
        let id = id.to_string();
        self.db.read(work(move |e| Box::pin(async move { q::get_key(e, &id).await }))).await
    }

    async fn list_keys(&self, org: Option<&str>) -> Result<Vec<agentd_core::ApiKey>> {
        let org = org.map(str::to_string);
        self.db.read(work(move |e| Box::pin(async move { q::list_keys(e, org.as_deref()).await }))).await
    }

    async fn create_login(&self, login: &crate::Login) -> Result<()> {
        let l = login.clone();
        self.db.write(work(move |e| Box::pin(async move { q::create_login(e, &l).await }))).await
    }

    async fn get_login(&self, hash: &str) -> Result<Option<crate::Login>> {
        let hash = hash.to_string();
        self.db.read(work(move |e| Box::pin(async move { q::get_login(e, &hash).await }))).await
    }

    async fn revoke_login(&self, hash: &str, at: &str) -> Result<bool> {
        let (hash, at) = (hash.to_string(), at.to_string());
        self.db.write(work(move |e| Box::pin(async move { q::revoke_login(e, &hash, &at).await }))).await
    }

    async fn revoke_key(&self, id: &str, at: &str) -> Result<bool> {
        let (id, at) = (id.to_string(), at.to_string());
        self.db.write(work(move |e| Box::pin(async move { q::revoke_key(e, &id, &at).await }))).await
    }

    async fn touch_key(&self, id: &str, at: &str) -> Result<()> {
        let (id, at) = (id.to_string(), at.to_string());
        self.db.write(work(move |e| Box::pin(async move { q::touch_key(e, &id, &at).await }))).await
    }

    async fn any_active_key(&self) -> Result<bool> {
        self.db.read(work(|e| Box::pin(async move { q::any_active_key(e).await }))).await
    }
}

#[async_trait]
impl<B: Backend> AuditStore for SqlStore<B> {
    async fn record_audit(&self, entry: &agentd_core::AuditEntry) -> Result<()> {
        let entry = entry.clone();
        self.db.write(work(move |e| Box::pin(async move { q::record_audit(e, &entry).await }))).await
    }

    async fn list_audit(&self, org: Option<&str>, page: &Page) -> Result<Vec<agentd_core::AuditEntry>> {
        let (org, page) = (org.map(str::to_string), page.clone());
        self.db.read(work(move |e| Box::pin(async move { q::list_audit(e, org.as_deref(), &page).await }))).await
    }
}

#[async_trait]
impl<B: Backend> SecretStore for SqlStore<B> {
    async fn put_secret(&self, t: &Tenant, name: &str, sealed: &str) -> Result<()> {
        let (t, name, sealed) = (t.clone(), name.to_string(), sealed.to_string());
        self.db.write(work(move |e| Box::pin(async move { q::put_secret(e, &t, &name, &sealed).await }))).await
    }

    async fn get_secret(&self, t: &Tenant, name: &str) -> Result<Option<String>> {
        let (t, name) = (t.clone(), name.to_string());
        self.db.read(work(move |e| Box::pin(async move { q::get_secret(e, &t, &name).await }))).await
    }

    async fn list_secrets(&self, t: &Tenant) -> Result<Vec<crate::SecretMeta>> {
        let t = t.clone();
        self.db.read(work(move |e| Box::pin(async move { q::list_secrets(e, &t).await }))).await
    }

    async fn delete_secret(&self, t: &Tenant, name: &str) -> Result<bool> {
        let (t, name) = (t.clone(), name.to_string());
        self.db.write(work(move |e| Box::pin(async move { q::delete_secret(e, &t, &name).await }))).await
    }

    async fn all_sealed_secrets(&self) -> Result<Vec<crate::SealedSecret>> {
        self.db.read(work(move |e| Box::pin(async move { q::all_sealed_secrets(e).await }))).await
    }

    async fn reseal_secrets(&self, changes: &[(crate::SealedSecret, String)]) -> Result<()> {
        let changes = changes.to_vec();
        self.db.write(work(move |e| Box::pin(async move { q::reseal_secrets(e, &changes).await }))).await
    }
}

#[async_trait]
impl<B: Backend> UsageStore for SqlStore<B> {
    async fn run_usage(
        &self,
        org: &str,
        user: Option<&str>,
        project: Option<&str>,
        from: &str,
        to: &str,
        max: u32,
        tool_calls: bool,
    ) -> Result<Vec<crate::RunUsage>> {
        let (org, user, from, to) = (org.to_string(), user.map(str::to_string), from.to_string(), to.to_string());
        let project = project.map(str::to_string);
        self.db
            .read(work(move |e| {
                Box::pin(async move {
                    q::run_usage(e, &org, user.as_deref(), project.as_deref(), &from, &to, max, tool_calls).await
                })
            }))
            .await
    }
}

#[async_trait]
impl<B: Backend> LimitStore for SqlStore<B> {
    async fn put_org_limits(&self, org: &str, limits: &serde_json::Value) -> Result<()> {
        let (org, limits) = (org.to_string(), limits.clone());
        self.db.write(work(move |e| Box::pin(async move { q::put_org_limits(e, &org, &limits).await }))).await
    }

    async fn get_org_limits(&self, org: &str) -> Result<Option<serde_json::Value>> {
        let org = org.to_string();
        self.db.read(work(move |e| Box::pin(async move { q::get_org_limits(e, &org).await }))).await
    }

    async fn list_org_limits(&self) -> Result<Vec<(String, serde_json::Value)>> {
        self.db.read(work(move |e| Box::pin(async move { q::list_org_limits(e).await }))).await
    }
}
