//! API keys and console logins.

use async_trait::async_trait;

use crate::queries::*;
use crate::sql::{Backend, Exec, Row};
use crate::store::{SqlStore, work};
use crate::*;

/// API keys: stored as hashes, found by prefix.
#[async_trait]
pub trait KeyStore: Send + Sync + 'static {
    /// Stores a new key with the SHA-256 (hex) of its secret.
    async fn create_key(&self, key: &agentd_core::ApiKey, hash: &str) -> Result<()>;

    /// Keys whose lookup prefix is this, each with its stored hash.
    async fn keys_by_prefix(&self, prefix: &str) -> Result<Vec<(agentd_core::ApiKey, String)>>;

    async fn get_key(&self, id: &str) -> Result<Option<agentd_core::ApiKey>>;

    /// Keys of one organisation (`None`: every key), newest first.
    async fn list_keys(&self, org: Option<&str>) -> Result<Vec<agentd_core::ApiKey>>;

    /// Marks a key revoked; false if unknown or revoked already.
    async fn revoke_key(&self, id: &str, at: &str) -> Result<bool>;

    /// Records when the key was last used.
    async fn touch_key(&self, id: &str, at: &str) -> Result<()>;

    /// Whether any key that is not revoked exists.
    async fn any_active_key(&self) -> Result<bool>;

    /// Stores a console login (its token only as a hash).
    async fn create_login(&self, login: &Login) -> Result<()>;

    /// The login whose token hashes to this.
    async fn get_login(&self, hash: &str) -> Result<Option<Login>>;

    /// Ends a login; false if unknown or ended already.
    async fn revoke_login(&self, hash: &str, at: &str) -> Result<bool>;
}

#[async_trait]
impl<B: Backend> KeyStore for SqlStore<B> {
    async fn create_key(&self, key: &agentd_core::ApiKey, hash: &str) -> Result<()> {
        let (key, hash) = (key.clone(), hash.to_string());
        self.db.write(work(move |e| Box::pin(async move { create_key(e, &key, &hash).await }))).await
    }

    async fn keys_by_prefix(&self, prefix: &str) -> Result<Vec<(agentd_core::ApiKey, String)>> {
        let prefix = prefix.to_string();
        self.db.read(work(move |e| Box::pin(async move { keys_by_prefix(e, &prefix).await }))).await
    }

    async fn get_key(&self, id: &str) -> Result<Option<agentd_core::ApiKey>> {
        let id = id.to_string();
        self.db.read(work(move |e| Box::pin(async move { get_key(e, &id).await }))).await
    }

    async fn list_keys(&self, org: Option<&str>) -> Result<Vec<agentd_core::ApiKey>> {
        let org = org.map(str::to_string);
        self.db.read(work(move |e| Box::pin(async move { list_keys(e, org.as_deref()).await }))).await
    }

    async fn create_login(&self, login: &crate::Login) -> Result<()> {
        let l = login.clone();
        self.db.write(work(move |e| Box::pin(async move { create_login(e, &l).await }))).await
    }

    async fn get_login(&self, hash: &str) -> Result<Option<crate::Login>> {
        let hash = hash.to_string();
        self.db.read(work(move |e| Box::pin(async move { get_login(e, &hash).await }))).await
    }

    async fn revoke_login(&self, hash: &str, at: &str) -> Result<bool> {
        let (hash, at) = (hash.to_string(), at.to_string());
        self.db.write(work(move |e| Box::pin(async move { revoke_login(e, &hash, &at).await }))).await
    }

    async fn revoke_key(&self, id: &str, at: &str) -> Result<bool> {
        let (id, at) = (id.to_string(), at.to_string());
        self.db.write(work(move |e| Box::pin(async move { revoke_key(e, &id, &at).await }))).await
    }

    async fn touch_key(&self, id: &str, at: &str) -> Result<()> {
        let (id, at) = (id.to_string(), at.to_string());
        self.db.write(work(move |e| Box::pin(async move { touch_key(e, &id, &at).await }))).await
    }

    async fn any_active_key(&self) -> Result<bool> {
        self.db.read(work(|e| Box::pin(async move { any_active_key(e).await }))).await
    }
}

pub(crate) fn key_from_row(r: &Row) -> Result<agentd_core::ApiKey> {
    let role: String = r.get("role")?;
    Ok(agentd_core::ApiKey {
        id: r.get("id")?,
        name: r.get("name")?,
        role: agentd_core::KeyRole::parse(&role).ok_or_else(|| corrupt("role", &role))?,
        org: r.get("org")?,
        user: r.get("usr")?,
        project: r.get("project")?,
        prefix: r.get("prefix")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
        last_used_at: r.get("last_used_at")?,
        revoked_at: r.get("revoked_at")?,
    })
}

pub(crate) async fn create_key(e: &mut dyn Exec, k: &agentd_core::ApiKey, hash: &str) -> Result<()> {
    e.execute(
        "INSERT INTO api_keys (id, prefix, hash, name, role, org, usr, project, created_at, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        args![
            &k.id,
            &k.prefix,
            hash,
            &k.name,
            k.role.as_str(),
            &k.org,
            &k.user,
            &k.project,
            &k.created_at,
            &k.expires_at
        ],
    )
    .await?;
    Ok(())
}

pub(crate) async fn keys_by_prefix(e: &mut dyn Exec, prefix: &str) -> Result<Vec<(agentd_core::ApiKey, String)>> {
    let rows = e.query("SELECT * FROM api_keys WHERE prefix = $1", args![prefix]).await?;
    all(rows, |r| Ok((key_from_row(r)?, r.get("hash")?)))
}

pub(crate) async fn get_key(e: &mut dyn Exec, id: &str) -> Result<Option<agentd_core::ApiKey>> {
    one(e.query_opt("SELECT * FROM api_keys WHERE id = $1", args![id]).await?, key_from_row)
}

pub(crate) async fn list_keys(e: &mut dyn Exec, org: Option<&str>) -> Result<Vec<agentd_core::ApiKey>> {
    let rows = e.query("SELECT * FROM api_keys WHERE ($1 IS NULL OR org = $1) ORDER BY id DESC", args![org]).await?;
    all(rows, key_from_row)
}

pub(crate) async fn revoke_key(e: &mut dyn Exec, id: &str, at: &str) -> Result<bool> {
    let n =
        e.execute("UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL", args![id, at]).await?;
    Ok(n > 0)
}

pub(crate) async fn create_login(e: &mut dyn Exec, l: &crate::Login) -> Result<()> {
    e.execute(
        "INSERT INTO console_logins (hash, key_id, csrf, created_at, expires_at) VALUES ($1, $2, $3, $4, $5)",
        args![&l.hash, &l.key_id, &l.csrf, &l.created_at, &l.expires_at],
    )
    .await?;
    Ok(())
}

pub(crate) async fn get_login(e: &mut dyn Exec, hash: &str) -> Result<Option<crate::Login>> {
    one(e.query_opt("SELECT * FROM console_logins WHERE hash = $1", args![hash]).await?, |r| {
        Ok(crate::Login {
            hash: r.get("hash")?,
            key_id: r.get("key_id")?,
            csrf: r.get("csrf")?,
            created_at: r.get("created_at")?,
            expires_at: r.get("expires_at")?,
            revoked_at: r.get("revoked_at")?,
        })
    })
}

pub(crate) async fn revoke_login(e: &mut dyn Exec, hash: &str, at: &str) -> Result<bool> {
    let sql = "UPDATE console_logins SET revoked_at = $2 WHERE hash = $1 AND revoked_at IS NULL";
    Ok(e.execute(sql, args![hash, at]).await? > 0)
}

pub(crate) async fn touch_key(e: &mut dyn Exec, id: &str, at: &str) -> Result<()> {
    e.execute("UPDATE api_keys SET last_used_at = $2 WHERE id = $1", args![id, at]).await?;
    Ok(())
}

pub(crate) async fn any_active_key(e: &mut dyn Exec) -> Result<bool> {
    Ok(count(e, "SELECT count(*) AS n FROM api_keys WHERE revoked_at IS NULL", &[]).await? > 0)
}
