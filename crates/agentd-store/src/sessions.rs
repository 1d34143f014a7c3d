//! Sessions: creation, listing, their messages and deletion.

use agentd_core::*;
use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Backend, Exec};
use crate::store::{SqlStore, work};
use crate::*;

/// Sessions and their messages.
#[async_trait]
pub trait SessionStore: Send + Sync + 'static {
    async fn create_session(&self, t: &Tenant, title: Option<String>, metadata: serde_json::Value) -> Result<Session>;

    async fn get_session(&self, t: &Tenant, id: &str) -> Result<Option<Session>>;

    async fn list_sessions(&self, t: &Tenant, page: &Page) -> Result<Vec<Session>>;

    /// Deletes a session with its runs, events and messages. False if unknown.
    async fn delete_session(&self, t: &Tenant, id: &str) -> Result<bool>;

    async fn session_messages(&self, t: &Tenant, session_id: &str) -> Result<Vec<SessionMessage>>;
}

#[async_trait]
impl<B: Backend> SessionStore for SqlStore<B> {
    async fn create_session(&self, t: &Tenant, title: Option<String>, metadata: serde_json::Value) -> Result<Session> {
        let ts = now();
        let (title, metadata) = crate::masked_session(t, title, metadata);
        let s = Session { id: agentd_core::new_id("ses"), title, metadata, created_at: ts.clone(), updated_at: ts };
        let (t, row) = (t.clone(), s.clone());
        self.db.write(work(move |e| Box::pin(async move { create_session(e, &t, &row).await }))).await?;
        Ok(s)
    }

    async fn get_session(&self, t: &Tenant, id: &str) -> Result<Option<Session>> {
        let (t, id) = (t.clone(), id.to_string());
        self.db.read(work(move |e| Box::pin(async move { get_session(e, &t, &id).await }))).await
    }

    async fn list_sessions(&self, t: &Tenant, page: &Page) -> Result<Vec<Session>> {
        let (t, page) = (t.clone(), page.clone());
        self.db.read(work(move |e| Box::pin(async move { list_sessions(e, &t, &page).await }))).await
    }

    async fn delete_session(&self, t: &Tenant, id: &str) -> Result<bool> {
        let (t, id) = (t.clone(), id.to_string());
        self.db.write(work(move |e| Box::pin(async move { delete_session(e, &t, &id).await }))).await
    }

    async fn session_messages(&self, t: &Tenant, session_id: &str) -> Result<Vec<SessionMessage>> {
        let (t, id) = (t.clone(), session_id.to_string());
        self.db.read(work(move |e| Box::pin(async move { session_messages(e, &t, &id).await }))).await
    }
}

pub(crate) async fn create_session(e: &mut dyn Exec, t: &Tenant, s: &Session) -> Result<()> {
    e.execute(
        "INSERT INTO sessions (id, org, usr, project, title, metadata, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![&s.id, &t.org, &t.user, &t.project, &s.title, &to_json(&s.metadata)?, &s.created_at, &s.updated_at],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get_session(e: &mut dyn Exec, t: &Tenant, id: &str) -> Result<Option<Session>> {
    let sql = "SELECT * FROM sessions WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4";
    one(e.query_opt(sql, &scoped(id, t)).await?, session_from_row)
}

pub(crate) async fn list_sessions(e: &mut dyn Exec, t: &Tenant, page: &Page) -> Result<Vec<Session>> {
    let rows = e
        .query(
            "SELECT * FROM sessions WHERE org = $1 AND usr = $2 AND project = $3 AND ($4 IS NULL OR id < $4)
             ORDER BY id DESC LIMIT $5",
            args![&t.org, &t.user, &t.project, &page.after, limit(page.limit)],
        )
        .await?;
    all(rows, session_from_row)
}

pub(crate) async fn delete_session(e: &mut dyn Exec, t: &Tenant, id: &str) -> Result<bool> {
    let sql = "DELETE FROM sessions WHERE id = $1 AND org = $2 AND usr = $3 AND project = $4";
    if e.execute(sql, &scoped(id, t)).await? == 0 {
        return Ok(false);
    }
    for sql in [
        "DELETE FROM events WHERE run_id IN
           (SELECT id FROM runs WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4)",
        "DELETE FROM runs WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4",
        "DELETE FROM approvals WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4",
        "DELETE FROM messages WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4",
    ] {
        e.execute(sql, &scoped(id, t)).await?;
    }
    Ok(true)
}

pub(crate) async fn session_messages(e: &mut dyn Exec, t: &Tenant, session_id: &str) -> Result<Vec<SessionMessage>> {
    let sql = "SELECT * FROM messages WHERE session_id = $1 AND org = $2 AND usr = $3 AND project = $4 ORDER BY idx";
    all(e.query(sql, &scoped(session_id, t)).await?, |r| {
        Ok(SessionMessage {
            index: r.get("idx")?,
            run_id: r.get("run_id")?,
            seq: r.get("seq")?,
            message: r.json("message")?,
            created_at: r.get("created_at")?,
        })
    })
}
