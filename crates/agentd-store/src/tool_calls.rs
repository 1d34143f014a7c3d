//! The journal of tool calls made without a model.

use agentd_core::*;
use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Backend, Exec};
use crate::store::{SqlStore, work};
use crate::*;

/// The journal of direct tool calls.
#[async_trait]
pub trait ToolCallStore: Send + Sync + 'static {
    /// Journals a tool call made without a model.
    async fn record_tool_call(&self, t: &Tenant, call: &DirectCall) -> Result<()>;

    /// Direct tool calls, newest first (optionally of one session).
    async fn list_tool_calls(&self, t: &Tenant, session_id: Option<&str>, page: &Page) -> Result<Vec<DirectCall>>;
}

#[async_trait]
impl<B: Backend> ToolCallStore for SqlStore<B> {
    async fn record_tool_call(&self, t: &Tenant, call: &DirectCall) -> Result<()> {
        let (t, call) = (t.clone(), call.clone());
        self.db.write(work(move |e| Box::pin(async move { record_tool_call(e, &t, &call).await }))).await
    }

    async fn list_tool_calls(&self, t: &Tenant, session_id: Option<&str>, page: &Page) -> Result<Vec<DirectCall>> {
        let (t, sid, page) = (t.clone(), session_id.map(str::to_string), page.clone());
        self.db.read(work(move |e| Box::pin(async move { list_tool_calls(e, &t, sid.as_deref(), &page).await }))).await
    }
}

pub(crate) async fn record_tool_call(e: &mut dyn Exec, t: &Tenant, call: &DirectCall) -> Result<()> {
    e.execute(
        "INSERT INTO tool_calls (id, org, usr, project, session_id, record, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        args![&call.id, &t.org, &t.user, &t.project, &call.session_id, &to_json(call)?, &call.created_at],
    )
    .await?;
    Ok(())
}

pub(crate) async fn list_tool_calls(
    e: &mut dyn Exec,
    t: &Tenant,
    session_id: Option<&str>,
    page: &Page,
) -> Result<Vec<DirectCall>> {
    let rows = e
        .query(
            "SELECT record FROM tool_calls WHERE org = $1 AND usr = $2 AND project = $3
               AND ($4 IS NULL OR session_id = $4) AND ($5 IS NULL OR id < $5) ORDER BY id DESC LIMIT $6",
            args![&t.org, &t.user, &t.project, session_id, &page.after, limit(page.limit)],
        )
        .await?;
    all(rows, |r| r.json("record"))
}
