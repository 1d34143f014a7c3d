//! Tenant documents of every kind (one table), agent versions and team
//! blackboards.

use agentd_core::*;
use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Backend, Exec, Row};
use crate::store::{SqlStore, work};
use crate::*;

/// Tenant documents: agents, skills, templates, HTTP tools, MCP servers.
#[async_trait]
pub trait DocStore: Send + Sync + 'static {
    /// Stores a named document of a kind (`http_tool`, `skill`) for the
    /// tenant; `AlreadyExists` if the name is taken.
    async fn create_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<()>;

    /// The tenant's documents of a kind, by name.
    async fn list_docs(&self, t: &Tenant, kind: DocKind) -> Result<Vec<serde_json::Value>>;

    /// One document of the tenant by name.
    async fn get_doc(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<Option<serde_json::Value>>;

    /// A page of the tenant's documents of a kind, by name, after `after`.
    async fn list_docs_page(
        &self,
        t: &Tenant,
        kind: DocKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>>;

    /// Like [`DocStore::create_doc`], refused with [`StoreError::Full`] when
    /// the org keeps `max_per_org` of the kind already (counted in the same
    /// statement as the insert).
    async fn create_doc_capped(
        &self,
        t: &Tenant,
        kind: DocKind,
        name: &str,
        doc: &serde_json::Value,
        max_per_org: u32,
    ) -> Result<()>;

    /// Every tenant's documents of a kind (for what a node sets up at start).
    async fn list_docs_all(&self, kind: DocKind) -> Result<Vec<(Tenant, serde_json::Value)>>;

    /// Replaces one's content; false if the tenant has none by that name.
    async fn replace_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<bool>;

    /// Removes one; false if the tenant has none by that name.
    async fn delete_doc(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<bool>;

    /// Every version of an agent (each create or replace adds one), oldest first.
    async fn doc_versions(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<Vec<DocVersion>>;

    /// One version of an agent.
    async fn doc_version(&self, t: &Tenant, kind: DocKind, name: &str, version: i64) -> Result<Option<DocVersion>>;

    /// Adds an entry to a team's blackboard; false if its id exists (a retried write).
    async fn post_blackboard(&self, t: &Tenant, entry: &BlackboardEntry) -> Result<bool>;

    /// A team's blackboard, oldest first.
    async fn blackboard(&self, t: &Tenant, team: &str) -> Result<Vec<BlackboardEntry>>;

    /// Registers an HTTP tool for the tenant.
    async fn create_http_tool(&self, t: &Tenant, def: &HttpToolDef) -> Result<()> {
        let doc = serde_json::to_value(def).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.create_doc(t, DocKind::HTTP_TOOL, &def.name, &doc).await
    }

    async fn list_http_tools(&self, t: &Tenant) -> Result<Vec<HttpToolDef>> {
        let docs = self.list_docs(t, DocKind::HTTP_TOOL).await?;
        docs.into_iter().map(|d| serde_json::from_value(d).map_err(|e| StoreError::Corrupt(e.to_string()))).collect()
    }

    async fn delete_http_tool(&self, t: &Tenant, name: &str) -> Result<bool> {
        self.delete_doc(t, DocKind::HTTP_TOOL, name).await
    }
}

#[async_trait]
impl<B: Backend> DocStore for SqlStore<B> {
    async fn create_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<()> {
        let (t, name, doc) = (t.clone(), name.to_string(), to_json(&crate::masked_doc(t, kind, doc))?);
        self.db.write(work(move |e| Box::pin(async move { create_doc(e, &t, kind, &name, &doc).await }))).await
    }

    async fn list_docs(&self, t: &Tenant, kind: DocKind) -> Result<Vec<serde_json::Value>> {
        let t = t.clone();
        self.db.read(work(move |e| Box::pin(async move { list_docs(e, &t, kind).await }))).await
    }

    async fn get_doc(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<Option<serde_json::Value>> {
        let (t, name) = (t.clone(), name.to_string());
        self.db.read(work(move |e| Box::pin(async move { get_doc(e, &t, kind, &name).await }))).await
    }

    async fn list_docs_page(
        &self,
        t: &Tenant,
        kind: DocKind,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<serde_json::Value>> {
        let (t, after) = (t.clone(), after.map(str::to_string));
        self.db
            .read(work(move |e| Box::pin(async move { list_docs_page(e, &t, kind, after.as_deref(), limit).await })))
            .await
    }

    async fn create_doc_capped(
        &self,
        t: &Tenant,
        kind: DocKind,
        name: &str,
        doc: &serde_json::Value,
        max_per_org: u32,
    ) -> Result<()> {
        let (t, name, doc) = (t.clone(), name.to_string(), to_json(&crate::masked_doc(t, kind, doc))?);
        self.db
            .write(work(move |e| {
                Box::pin(async move { create_doc_capped(e, &t, kind, &name, &doc, max_per_org).await })
            }))
            .await
    }

    async fn list_docs_all(&self, kind: DocKind) -> Result<Vec<(Tenant, serde_json::Value)>> {
        self.db.read(work(move |e| Box::pin(async move { list_docs_all(e, kind).await }))).await
    }

    async fn replace_doc(&self, t: &Tenant, kind: DocKind, name: &str, doc: &serde_json::Value) -> Result<bool> {
        let (t, name, doc) = (t.clone(), name.to_string(), to_json(&crate::masked_doc(t, kind, doc))?);
        self.db.write(work(move |e| Box::pin(async move { replace_doc(e, &t, kind, &name, &doc).await }))).await
    }

    async fn doc_versions(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<Vec<crate::DocVersion>> {
        let (t, name) = (t.clone(), name.to_string());
        self.db.read(work(move |e| Box::pin(async move { doc_versions(e, &t, kind, &name, None).await }))).await
    }

    async fn doc_version(
        &self,
        t: &Tenant,
        kind: DocKind,
        name: &str,
        version: i64,
    ) -> Result<Option<crate::DocVersion>> {
        let (t, name) = (t.clone(), name.to_string());
        let w = work(move |e| Box::pin(async move { doc_versions(e, &t, kind, &name, Some(version)).await }));
        Ok(self.db.read(w).await?.pop())
    }

    async fn post_blackboard(&self, t: &Tenant, entry: &crate::BlackboardEntry) -> Result<bool> {
        let (t, mut b) = (t.clone(), entry.clone());
        if let std::borrow::Cow::Owned(m) = agentd_core::redact::redact_for(&t, &b.content) {
            b.content = m;
        }
        self.db.write(work(move |e| Box::pin(async move { post_blackboard(e, &t, &b).await }))).await
    }

    async fn blackboard(&self, t: &Tenant, team: &str) -> Result<Vec<crate::BlackboardEntry>> {
        let (t, team) = (t.clone(), team.to_string());
        self.db.read(work(move |e| Box::pin(async move { blackboard(e, &t, &team).await }))).await
    }

    async fn delete_doc(&self, t: &Tenant, kind: DocKind, name: &str) -> Result<bool> {
        let (t, name) = (t.clone(), name.to_string());
        self.db.write(work(move |e| Box::pin(async move { delete_doc(e, &t, kind, &name).await }))).await
    }
}

pub(crate) async fn create_doc(e: &mut dyn Exec, t: &Tenant, kind: DocKind, name: &str, doc: &str) -> Result<()> {
    let n = e
        .execute(
            "INSERT INTO tenant_docs (kind, org, usr, project, name, doc, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)
             ON CONFLICT DO NOTHING",
            args![kind.as_str(), &t.org, &t.user, &t.project, name, doc, &now()],
        )
        .await?;
    if n == 0 {
        return Err(StoreError::AlreadyExists);
    }
    add_version(e, t, kind, name, doc).await
}

/// Agents keep every version: a run reads the one it started with.
pub(crate) async fn add_version(e: &mut dyn Exec, t: &Tenant, kind: DocKind, name: &str, doc: &str) -> Result<()> {
    if kind != DocKind::AGENT {
        return Ok(());
    }
    let last = count(
        e,
        "SELECT COALESCE(max(version), 0) AS n FROM doc_versions WHERE kind = $1 AND org = $2 AND usr = $3
           AND project = $4 AND name = $5",
        args![kind.as_str(), &t.org, &t.user, &t.project, name],
    )
    .await?;
    e.execute(
        "INSERT INTO doc_versions (kind, org, usr, project, name, version, doc, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        args![kind.as_str(), &t.org, &t.user, &t.project, name, last + 1, doc, &now()],
    )
    .await?;
    // The newest versions are kept, and any an unfinished run still reads.
    e.execute(
        "DELETE FROM doc_versions
          WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 AND name = $5 AND version <= $6
            AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.org = $2 AND r.usr = $3 AND r.project = $4
                              AND r.agent = $5 AND r.agent_version = doc_versions.version
                              AND r.status NOT IN ('completed', 'failed', 'cancelled'))",
        args![kind.as_str(), &t.org, &t.user, &t.project, name, last + 1 - i64::from(crate::MAX_AGENT_VERSIONS)],
    )
    .await?;
    Ok(())
}

pub(crate) fn version_from_row(r: &Row) -> Result<crate::DocVersion> {
    Ok(crate::DocVersion { version: r.get("version")?, doc: r.json("doc")?, created_at: r.get("created_at")? })
}

pub(crate) async fn doc_versions(
    e: &mut dyn Exec,
    t: &Tenant,
    kind: DocKind,
    name: &str,
    version: Option<i64>,
) -> Result<Vec<crate::DocVersion>> {
    let rows = e
        .query(
            "SELECT version, doc, created_at FROM doc_versions WHERE kind = $1 AND org = $2 AND usr = $3
               AND project = $4 AND name = $5 AND ($6 IS NULL OR version = $6) ORDER BY version",
            args![kind.as_str(), &t.org, &t.user, &t.project, name, version],
        )
        .await?;
    all(rows, version_from_row)
}

pub(crate) async fn post_blackboard(e: &mut dyn Exec, t: &Tenant, b: &crate::BlackboardEntry) -> Result<bool> {
    let n = e
        .execute(
            "INSERT INTO blackboard (id, org, usr, project, team, author, kind, content, run_id, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT DO NOTHING",
            args![
                &b.id,
                &t.org,
                &t.user,
                &t.project,
                &b.team,
                &b.author,
                &b.kind,
                &b.content,
                &b.run_id,
                &b.created_at
            ],
        )
        .await?;
    Ok(n > 0)
}

pub(crate) async fn blackboard(e: &mut dyn Exec, t: &Tenant, team: &str) -> Result<Vec<crate::BlackboardEntry>> {
    let sql = "SELECT * FROM blackboard WHERE team = $1 AND org = $2 AND usr = $3 AND project = $4
               ORDER BY created_at, id";
    all(e.query(sql, &scoped(team, t)).await?, |r| {
        Ok(crate::BlackboardEntry {
            id: r.get("id")?,
            team: r.get("team")?,
            author: r.get("author")?,
            kind: r.get("kind")?,
            content: r.get("content")?,
            run_id: r.get("run_id")?,
            created_at: r.get("created_at")?,
        })
    })
}

pub(crate) async fn list_docs(e: &mut dyn Exec, t: &Tenant, kind: DocKind) -> Result<Vec<serde_json::Value>> {
    let sql = "SELECT doc FROM tenant_docs WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 ORDER BY name";
    all(e.query(sql, &scoped(kind.as_str(), t)).await?, |r| r.json("doc"))
}

pub(crate) async fn get_doc(
    e: &mut dyn Exec,
    t: &Tenant,
    kind: DocKind,
    name: &str,
) -> Result<Option<serde_json::Value>> {
    let sql = "SELECT doc FROM tenant_docs WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 AND name = $5";
    let rows = e.query(sql, args![kind.as_str(), &t.org, &t.user, &t.project, name]).await?;
    rows.first().map(|r| r.json("doc")).transpose()
}

pub(crate) async fn list_docs_page(
    e: &mut dyn Exec,
    t: &Tenant,
    kind: DocKind,
    after: Option<&str>,
    max: u32,
) -> Result<Vec<serde_json::Value>> {
    let sql = "SELECT doc FROM tenant_docs WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 AND name > $5
               ORDER BY name LIMIT $6";
    let rows = e.query(sql, args![kind.as_str(), &t.org, &t.user, &t.project, after.unwrap_or(""), limit(max)]).await?;
    all(rows, |r| r.json("doc"))
}

pub(crate) async fn create_doc_capped(
    e: &mut dyn Exec,
    t: &Tenant,
    kind: DocKind,
    name: &str,
    doc: &str,
    max_per_org: u32,
) -> Result<()> {
    // Concurrent creates of one org's kind take turns (PostgreSQL; SQLite has one writer).
    e.lock(&format!("doc-cap/{}/{}", kind.as_str(), t.org)).await?;
    let n = e
        .execute(
            "INSERT INTO tenant_docs (kind, org, usr, project, name, doc, created_at)
             SELECT $1, $2, $3, $4, $5, $6, $7
             WHERE (SELECT count(*) FROM tenant_docs WHERE kind = $1 AND org = $2) < $8
             ON CONFLICT DO NOTHING",
            args![kind.as_str(), &t.org, &t.user, &t.project, name, doc, &now(), i64::from(max_per_org)],
        )
        .await?;
    if n == 0 {
        return Err(match get_doc(e, t, kind, name).await? {
            Some(_) => StoreError::AlreadyExists,
            None => StoreError::Full(max_per_org),
        });
    }
    add_version(e, t, kind, name, doc).await
}

pub(crate) async fn list_docs_all(e: &mut dyn Exec, kind: DocKind) -> Result<Vec<(Tenant, serde_json::Value)>> {
    let sql = "SELECT org, usr, project, doc FROM tenant_docs WHERE kind = $1 ORDER BY org, usr, project, name";
    all(e.query(sql, args![kind.as_str()]).await?, |r| Ok((tenant_from_row(r)?, r.json("doc")?)))
}

pub(crate) async fn replace_doc(e: &mut dyn Exec, t: &Tenant, kind: DocKind, name: &str, doc: &str) -> Result<bool> {
    let n = e
        .execute(
            "UPDATE tenant_docs SET doc = $6 WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 AND name = $5",
            args![kind.as_str(), &t.org, &t.user, &t.project, name, doc],
        )
        .await?;
    if n > 0 {
        add_version(e, t, kind, name, doc).await?;
    }
    Ok(n > 0)
}

pub(crate) async fn delete_doc(e: &mut dyn Exec, t: &Tenant, kind: DocKind, name: &str) -> Result<bool> {
    let n = e
        .execute(
            "DELETE FROM tenant_docs WHERE kind = $1 AND org = $2 AND usr = $3 AND project = $4 AND name = $5",
            args![kind.as_str(), &t.org, &t.user, &t.project, name],
        )
        .await?;
    Ok(n > 0)
}
