//! Tenants' sealed secrets.

use agentd_core::*;
use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Backend, Exec};
use crate::store::{SqlStore, work};
use crate::*;

/// Per-tenant secrets, stored sealed (the store never sees a value).
#[async_trait]
pub trait SecretStore: Send + Sync + 'static {
    /// Creates or replaces a sealed secret.
    async fn put_secret(&self, t: &Tenant, name: &str, sealed: &str) -> Result<()>;

    /// The sealed value, if the tenant has a secret by that name.
    async fn get_secret(&self, t: &Tenant, name: &str) -> Result<Option<String>>;

    async fn list_secrets(&self, t: &Tenant) -> Result<Vec<SecretMeta>>;

    /// False if the tenant has no secret by that name.
    async fn delete_secret(&self, t: &Tenant, name: &str) -> Result<bool>;

    /// Every tenant's sealed secrets (for re-sealing under a new master key).
    async fn all_sealed_secrets(&self) -> Result<Vec<SealedSecret>>;

    /// Replaces sealed values in one transaction, each only if it still
    /// holds `sealed`; an error (and nothing changed) if any was changed meanwhile.
    async fn reseal_secrets(&self, changes: &[(SealedSecret, String)]) -> Result<()>;
}

#[async_trait]
impl<B: Backend> SecretStore for SqlStore<B> {
    async fn put_secret(&self, t: &Tenant, name: &str, sealed: &str) -> Result<()> {
        let (t, name, sealed) = (t.clone(), name.to_string(), sealed.to_string());
        self.db.write(work(move |e| Box::pin(async move { put_secret(e, &t, &name, &sealed).await }))).await
    }

    async fn get_secret(&self, t: &Tenant, name: &str) -> Result<Option<String>> {
        let (t, name) = (t.clone(), name.to_string());
        self.db.read(work(move |e| Box::pin(async move { get_secret(e, &t, &name).await }))).await
    }

    async fn list_secrets(&self, t: &Tenant) -> Result<Vec<crate::SecretMeta>> {
        let t = t.clone();
        self.db.read(work(move |e| Box::pin(async move { list_secrets(e, &t).await }))).await
    }

    async fn delete_secret(&self, t: &Tenant, name: &str) -> Result<bool> {
        let (t, name) = (t.clone(), name.to_string());
        self.db.write(work(move |e| Box::pin(async move { delete_secret(e, &t, &name).await }))).await
    }

    async fn all_sealed_secrets(&self) -> Result<Vec<crate::SealedSecret>> {
        self.db.read(work(move |e| Box::pin(async move { all_sealed_secrets(e).await }))).await
    }

    async fn reseal_secrets(&self, changes: &[(crate::SealedSecret, String)]) -> Result<()> {
        let changes = changes.to_vec();
        self.db.write(work(move |e| Box::pin(async move { reseal_secrets(e, &changes).await }))).await
    }
}

pub(crate) async fn put_secret(e: &mut dyn Exec, t: &Tenant, name: &str, sealed: &str) -> Result<()> {
    e.execute(
        "INSERT INTO secrets (org, usr, project, name, sealed, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6)
         ON CONFLICT (org, usr, project, name) DO UPDATE SET sealed = excluded.sealed, updated_at = excluded.updated_at",
        args![&t.org, &t.user, &t.project, name, sealed, &now()],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get_secret(e: &mut dyn Exec, t: &Tenant, name: &str) -> Result<Option<String>> {
    let sql = "SELECT sealed FROM secrets WHERE name = $1 AND org = $2 AND usr = $3 AND project = $4";
    one(e.query_opt(sql, &scoped(name, t)).await?, |r| r.get("sealed"))
}

pub(crate) async fn list_secrets(e: &mut dyn Exec, t: &Tenant) -> Result<Vec<crate::SecretMeta>> {
    let rows = e
        .query(
            "SELECT name, created_at, updated_at FROM secrets WHERE org = $1 AND usr = $2 AND project = $3 ORDER BY name",
            args![&t.org, &t.user, &t.project],
        )
        .await?;
    all(rows, |r| {
        Ok(crate::SecretMeta {
            name: r.get("name")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
        })
    })
}

pub(crate) async fn delete_secret(e: &mut dyn Exec, t: &Tenant, name: &str) -> Result<bool> {
    let sql = "DELETE FROM secrets WHERE name = $1 AND org = $2 AND usr = $3 AND project = $4";
    Ok(e.execute(sql, &scoped(name, t)).await? > 0)
}

pub(crate) async fn all_sealed_secrets(e: &mut dyn Exec) -> Result<Vec<crate::SealedSecret>> {
    let rows = e
        .query("SELECT org, usr, project, name, sealed FROM secrets ORDER BY org, usr, project, name", args![])
        .await?;
    all(rows, |r| {
        Ok(crate::SealedSecret {
            tenant: Tenant { org: r.get("org")?, user: r.get("usr")?, project: r.get("project")? },
            name: r.get("name")?,
            sealed: r.get("sealed")?,
        })
    })
}

/// Run inside one transaction: any row changed since it was read rolls all back.
pub(crate) async fn reseal_secrets(e: &mut dyn Exec, changes: &[(crate::SealedSecret, String)]) -> Result<()> {
    for (old, new) in changes {
        let t = &old.tenant;
        let n = e
            .execute(
                "UPDATE secrets SET sealed = $1 WHERE org = $2 AND usr = $3 AND project = $4 AND name = $5 AND sealed = $6",
                args![new, &t.org, &t.user, &t.project, &old.name, &old.sealed],
            )
            .await?;
        if n != 1 {
            return Err(StoreError::Db(format!(
                "secret {} of {}/{} changed meanwhile; nothing was changed",
                old.name, t.org, t.user
            )));
        }
    }
    Ok(())
}
