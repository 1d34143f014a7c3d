//! Who is calling: API keys (made, listed, revoked, checked) and the
//! principal a key speaks for. The access service keeps a short cache of
//! checked keys so a request costs a hash and a map lookup.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use agentd_core::{ApiKey, ErrorCode, KeyRole};
use base64::Engine;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::{Runtime, RuntimeError};

/// What every key starts with.
pub const KEY_PREFIX: &str = "agk_";
/// Characters of a key used to find it (`agk_` and 8 more).
const LOOKUP_LEN: usize = KEY_PREFIX.len() + 8;
/// How long a checked key is trusted without asking the database again
/// (a revocation on another node takes effect within this).
const CACHE_TTL: Duration = Duration::from_secs(1);
/// `last_used_at` is written at most this often per key.
const TOUCH_EVERY: Duration = Duration::from_secs(60);

/// Who a request speaks for: a key's role and scope.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub key_id: String,
    pub role: KeyRole,
    /// `None` for an operator (it names the org with `x-org-id`).
    pub org: Option<String>,
    pub user: Option<String>,
    pub project: Option<String>,
}

/// What a new key is for.
#[derive(Debug, Clone)]
pub struct NewKey {
    pub name: String,
    pub role: KeyRole,
    pub org: Option<String>,
    pub user: Option<String>,
    pub project: Option<String>,
    /// RFC 3339 time after which the key is refused.
    pub expires_at: Option<String>,
}

/// The access service's own state.
pub(crate) struct Access {
    /// Checked keys by the hash of their secret: the key and when it was read.
    cache: Mutex<HashMap<String, (ApiKey, Instant)>>,
    /// When each key's `last_used_at` was last written.
    touched: Mutex<HashMap<String, Instant>>,
    limits: crate::config::LimitsConfig,
    /// Quotas operators set over the API, by org, and when they were read.
    overrides: Mutex<HashMap<String, (Option<OrgLimits>, Instant)>>,
    /// GCRA per key: the theoretical arrival time of its next request.
    rate: Mutex<HashMap<String, Instant>>,
    /// Each organisation's `concurrent_runs` from the API, and when they were read.
    caps: Mutex<Option<(ApiCaps, Instant)>>,
    /// Each organisation's workspace download slots on this node.
    downloads: Mutex<HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>,
}

/// `concurrent_runs` as operators set it over the API, by org.
type ApiCaps = HashMap<String, Option<u32>>;

use crate::config::OrgLimits;

impl Access {
    pub(crate) fn new(limits: crate::config::LimitsConfig) -> Self {
        Self {
            cache: Default::default(),
            touched: Default::default(),
            limits,
            overrides: Default::default(),
            rate: Default::default(),
            caps: Default::default(),
            downloads: Default::default(),
        }
    }
}

/// GCRA: `per_minute` requests spread evenly, with a burst of up to
/// `per_minute` at once. Returns how long to wait when over.
fn gcra(tat: &mut Instant, now: Instant, per_minute: u32) -> Result<(), Duration> {
    let interval = Duration::from_secs(60) / per_minute.max(1);
    let tolerance = Duration::from_secs(60).saturating_sub(interval);
    let start = (*tat).max(now);
    let ahead = start - now;
    if ahead > tolerance {
        return Err(ahead - tolerance);
    }
    *tat = start + interval;
    Ok(())
}

pub(crate) fn hash_of(secret: &str) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let d = Sha256::digest(secret.as_bytes());
    let mut out = String::with_capacity(64);
    for b in d {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

/// Equal, in time that does not depend on where they differ.
pub fn same_text(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

pub(crate) fn unauthorized(why: &str) -> RuntimeError {
    RuntimeError::Unauthorized(why.to_string())
}

fn forbidden(why: impl Into<String>) -> RuntimeError {
    RuntimeError::Forbidden(why.into())
}

/// A new secret: `agk_` + 32 random bytes, base64url without padding.
fn new_secret() -> Result<String, RuntimeError> {
    random_token(KEY_PREFIX)
}

/// `prefix` + 32 random bytes, base64url without padding (keys, logins, CSRF tokens).
pub fn random_token(prefix: &str) -> Result<String, RuntimeError> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)
        .map_err(|e| RuntimeError::bad(ErrorCode::InternalError, format!("no randomness: {e}")))?;
    Ok(format!("{prefix}{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)))
}

/// Whether `by` may see or manage `key`; a key it may not see does not exist
/// for it. A caller bound to a user or project manages only keys bound the same way.
fn may_manage(by: Option<&Principal>, key: &ApiKey) -> bool {
    match by {
        None => true,
        Some(p) if p.role == KeyRole::Operator => true,
        Some(p) => {
            let within = |mine: &Option<String>, theirs: &Option<String>| mine.is_none() || mine == theirs;
            p.role.at_least(KeyRole::Admin)
                && p.org.is_some()
                && p.org == key.org
                && within(&p.user, &key.user)
                && within(&p.project, &key.project)
        }
    }
}

/// The scope part of a key made by a caller bound to `mine`: the caller's
/// own when none is asked for; anything else is wider and refused.
fn narrower(part: &str, mine: &Option<String>, asked: Option<String>) -> Result<Option<String>, RuntimeError> {
    match (mine, asked) {
        (None, asked) => Ok(asked),
        (Some(m), None) => Ok(Some(m.clone())),
        (Some(m), Some(a)) if *m == a => Ok(Some(a)),
        (Some(_), Some(_)) => Err(forbidden(format!("a key bound to a {part} makes keys bound to the same {part}"))),
    }
}

impl Runtime {
    /// Makes a key; returns it and its secret (shown this once). `by` is
    /// the caller's key (`None`: someone at the database, with full power).
    pub async fn create_key(
        &self,
        by: Option<&Principal>,
        acting_org: Option<&str>,
        req: NewKey,
    ) -> Result<(ApiKey, String), RuntimeError> {
        let name_ok = req.name.len() <= 128 && !req.name.chars().any(char::is_control);
        if !name_ok {
            return Err(RuntimeError::bad(
                ErrorCode::InvalidRequest,
                "`name` must be at most 128 printable characters",
            ));
        }
        agentd_core::Tenant::from_parts(req.org.as_deref(), req.user.as_deref(), req.project.as_deref())
            .map_err(|e| RuntimeError::bad(ErrorCode::InvalidRequest, format!("`{:?}` {e}", e.part).to_lowercase()))?;
        let mut req = req;
        // A key without `org` goes to the caller's own org (an admin's) or
        // the org it acts in (an operator's, or a caller at the database).
        if req.org.is_none() && req.role != KeyRole::Operator {
            req.org = by.and_then(|p| p.org.clone()).or_else(|| acting_org.map(str::to_string));
        }
        match (req.role, &req.org) {
            (KeyRole::Operator, Some(_)) => {
                return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "an operator key has no `org`"));
            }
            (KeyRole::Operator, None) => {}
            (_, None) => return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "give the key's `org`")),
            _ => {}
        }
        if let Some(p) = by
            && p.role != KeyRole::Operator
        {
            if !p.role.at_least(KeyRole::Admin) {
                return Err(forbidden("only an admin or an operator makes keys"));
            }
            if req.role == KeyRole::Operator || req.org != p.org {
                return Err(forbidden("an admin makes keys of its own organisation, at most admin"));
            }
            // Never wider than the caller: a key bound to a user or a
            // project makes keys bound to the same one.
            req.user = narrower("user", &p.user, req.user)?;
            req.project = narrower("project", &p.project, req.project)?;
        }
        if let Some(at) = &req.expires_at
            && chrono::DateTime::parse_from_rfc3339(at).is_err()
        {
            return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "`expires_at` must be an RFC 3339 time"));
        }
        let secret = new_secret()?;
        let key = ApiKey {
            id: agentd_core::new_id("key"),
            name: req.name,
            role: req.role,
            org: req.org,
            user: req.user,
            project: req.project,
            prefix: secret[..LOOKUP_LEN].to_string(),
            created_at: agentd_store::now(),
            expires_at: req.expires_at.map(|t| normalise_time(&t)),
            last_used_at: None,
            revoked_at: None,
        };
        self.store.create_key(&key, &hash_of(&secret)).await?;
        Ok((key, secret))
    }

    /// The principal a secret speaks for; `Unauthorized` if it is unknown,
    /// revoked or expired.
    pub async fn authenticate(&self, secret: &str) -> Result<Principal, RuntimeError> {
        if !secret.starts_with(KEY_PREFIX) || secret.len() < LOOKUP_LEN || secret.len() > 256 {
            return Err(unauthorized("not an agentd API key"));
        }
        let hash = hash_of(secret);
        let cached = {
            let cache = self.access.cache.lock().unwrap_or_else(|e| e.into_inner());
            cache.get(&hash).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(k, _)| k.clone())
        };
        let key = match cached {
            Some(k) => k,
            None => {
                let found = self.store.keys_by_prefix(&secret[..LOOKUP_LEN]).await?;
                let key = found
                    .into_iter()
                    .find(|(_, stored)| bool::from(stored.as_bytes().ct_eq(hash.as_bytes())))
                    .map(|(k, _)| k)
                    .ok_or_else(|| unauthorized("unknown API key"))?;
                let mut cache = self.access.cache.lock().unwrap_or_else(|e| e.into_inner());
                if cache.len() > 10_000 {
                    cache.retain(|_, (_, at)| at.elapsed() < CACHE_TTL);
                }
                cache.insert(hash, (key.clone(), Instant::now()));
                key
            }
        };
        if key.revoked_at.is_some() {
            return Err(unauthorized("this API key was revoked"));
        }
        if key.expires_at.as_deref().is_some_and(|t| t <= agentd_store::now().as_str()) {
            return Err(unauthorized("this API key has expired"));
        }
        self.touch(&key.id);
        Ok(Principal { key_id: key.id, role: key.role, org: key.org, user: key.user, project: key.project })
    }

    /// An organisation's quotas: what an operator set over the API (read at
    /// most once a second), else the config's.
    pub(crate) async fn org_limits(&self, org: &str) -> Result<OrgLimits, agentd_store::StoreError> {
        let cached = {
            let o = self.access.overrides.lock().unwrap_or_else(|e| e.into_inner());
            o.get(org).filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(l, _)| l.clone())
        };
        let set = match cached {
            Some(l) => l,
            None => {
                let read = self.store.get_org_limits(org).await?.and_then(|v| serde_json::from_value(v).ok());
                let mut o = self.access.overrides.lock().unwrap_or_else(|e| e.into_inner());
                if o.len() > 10_000 {
                    o.clear();
                }
                o.insert(org.to_string(), (read.clone(), Instant::now()));
                read
            }
        };
        Ok(set.unwrap_or_else(|| self.access.limits.of(org).clone()))
    }

    /// The scheduler's caps of executing runs: the default for every
    /// organisation (`[limits.default] concurrent_runs`, else `fallback`),
    /// and each organisation whose own limits (the API's, else the config's)
    /// say otherwise. Read from the database at most once a second.
    pub(crate) async fn claim_caps(&self, fallback: u32) -> (u32, HashMap<String, u32>) {
        let cached = {
            let c = self.access.caps.lock().unwrap_or_else(|e| e.into_inner());
            c.as_ref().filter(|(_, at)| at.elapsed() < CACHE_TTL).map(|(m, _)| m.clone())
        };
        let api = match cached {
            Some(m) => m,
            None => {
                let read: HashMap<String, Option<u32>> = match self.store.list_org_limits().await {
                    Ok(rows) => rows
                        .into_iter()
                        .filter_map(|(org, v)| {
                            serde_json::from_value::<OrgLimits>(v).ok().map(|l| (org, l.concurrent_runs))
                        })
                        .collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read organisations' limits; using the config's");
                        HashMap::new()
                    }
                };
                *self.access.caps.lock().unwrap_or_else(|e| e.into_inner()) = Some((read.clone(), Instant::now()));
                read
            }
        };
        let limits = &self.access.limits;
        let default = limits.default.concurrent_runs.unwrap_or(fallback).max(1);
        let mut per_org = HashMap::new();
        let own = limits.orgs.iter().map(|(o, l)| (o, l.concurrent_runs)).chain(api.iter().map(|(o, c)| (o, *c)));
        for (org, cap) in own {
            // An org's own limits replace the default whole: unset there means the scheduler's.
            per_org.insert(org.clone(), cap.unwrap_or(fallback).max(1));
        }
        per_org.retain(|_, c| *c != default);
        (default, per_org)
    }

    /// Sets an organisation's quotas (operators only); they replace the config's for it.
    pub async fn set_org_limits(
        &self,
        by: Option<&Principal>,
        org: &str,
        limits: OrgLimits,
    ) -> Result<OrgLimits, RuntimeError> {
        if by.is_some_and(|p| p.role != KeyRole::Operator) {
            if by.and_then(|p| p.org.as_deref()) == Some(org) {
                return Err(forbidden("only an operator sets an organisation's limits"));
            }
            return Err(RuntimeError::not_found(ErrorCode::NotFound, format!("organisation {org} not found")));
        }
        agentd_core::Tenant::from_parts(Some(org), None, None)
            .map_err(|e| RuntimeError::bad(ErrorCode::InvalidRequest, format!("`org` {e}")))?;
        let doc =
            serde_json::to_value(&limits).map_err(|e| RuntimeError::bad(ErrorCode::InvalidRequest, e.to_string()))?;
        self.store.put_org_limits(org, &doc).await?;
        self.access.overrides.lock().unwrap_or_else(|e| e.into_inner()).remove(org);
        *self.access.caps.lock().unwrap_or_else(|e| e.into_inner()) = None;
        Ok(limits)
    }

    /// An organisation's quotas as they apply now: an operator any org's, an admin its own.
    pub async fn get_org_limits(&self, by: Option<&Principal>, org: &str) -> Result<OrgLimits, RuntimeError> {
        let visible = match by {
            None => true,
            Some(p) => p.role == KeyRole::Operator || p.org.as_deref() == Some(org),
        };
        if !visible {
            return Err(RuntimeError::not_found(ErrorCode::NotFound, format!("organisation {org} not found")));
        }
        Ok(self.org_limits(org).await?)
    }

    /// Counts a request of this key against its organisation's
    /// `requests_per_minute`; `RateLimited` with the wait when over.
    pub async fn admit(&self, p: &Principal) -> Result<(), RuntimeError> {
        let org = p.org.as_deref().unwrap_or("");
        let Some(per_minute) = self.org_limits(org).await?.requests_per_minute else { return Ok(()) };
        let now = Instant::now();
        let mut rate = self.access.rate.lock().unwrap_or_else(|e| e.into_inner());
        if rate.len() > 100_000 {
            rate.retain(|_, tat| *tat > now);
        }
        let tat = rate.entry(p.key_id.clone()).or_insert(now);
        gcra(tat, now, per_minute).map_err(|retry_after| RuntimeError::RateLimited { per_minute, retry_after })
    }

    /// Writes `last_used_at` in the background, at most once a minute per key.
    fn touch(&self, id: &str) {
        {
            let mut t = self.access.touched.lock().unwrap_or_else(|e| e.into_inner());
            if t.get(id).is_some_and(|at| at.elapsed() < TOUCH_EVERY) {
                return;
            }
            t.insert(id.to_string(), Instant::now());
        }
        let (store, id) = (self.store.clone(), id.to_string());
        tokio::spawn(async move {
            if let Err(e) = store.touch_key(&id, &agentd_store::now()).await {
                tracing::debug!(error = %e, "could not record a key's last use");
            }
        });
    }

    /// Keys the caller may manage: an operator (or the database) every key,
    /// an admin its organisation's.
    pub async fn list_keys(&self, by: Option<&Principal>) -> Result<Vec<ApiKey>, RuntimeError> {
        let org = match by {
            Some(p) if p.role != KeyRole::Operator => {
                if !p.role.at_least(KeyRole::Admin) {
                    return Err(forbidden("only an admin or an operator lists keys"));
                }
                p.org.clone()
            }
            _ => None,
        };
        let mut keys = self.store.list_keys(org.as_deref()).await?;
        keys.retain(|k| may_manage(by, k));
        Ok(keys)
    }

    pub async fn get_key(&self, by: Option<&Principal>, id: &str) -> Result<ApiKey, RuntimeError> {
        match self.store.get_key(id).await? {
            Some(k) if may_manage(by, &k) => Ok(k),
            _ => Err(RuntimeError::not_found(ErrorCode::KeyNotFound, format!("API key {id} not found"))),
        }
    }

    /// Revokes a key: refused from this moment on this node, within a second on others.
    pub async fn revoke_key(&self, by: Option<&Principal>, id: &str) -> Result<ApiKey, RuntimeError> {
        self.get_key(by, id).await?;
        self.store.revoke_key(id, &agentd_store::now()).await?;
        self.access.cache.lock().unwrap_or_else(|e| e.into_inner()).retain(|_, (k, _)| k.id != id);
        self.get_key(by, id).await
    }

    /// Records a change made through the API (the server calls this after each one).
    pub async fn record_audit(&self, entry: &agentd_core::AuditEntry) -> Result<(), RuntimeError> {
        Ok(self.store.record_audit(entry).await?)
    }

    /// The audit log, oldest first: an admin sees its org's, an operator
    /// every org's (or `org`'s), a caller without a key its scope's org.
    pub async fn list_audit(
        &self,
        by: Option<&Principal>,
        scope_org: &str,
        org: Option<&str>,
        page: &agentd_store::Page,
    ) -> Result<Vec<agentd_core::AuditEntry>, RuntimeError> {
        let org = match by {
            None => Some(scope_org),
            Some(p) if p.role == KeyRole::Operator => org,
            Some(p) if p.role.at_least(KeyRole::Admin) => p.org.as_deref(),
            Some(_) => return Err(forbidden("only an admin or an operator reads the audit log")),
        };
        Ok(self.store.list_audit(org, page).await?)
    }

    /// The operator's `[limits]`: quotas and the caps no tenant can raise.
    pub(crate) fn server_limits(&self) -> &crate::config::LimitsConfig {
        &self.access.limits
    }

    /// An agent's delegation limits under the operator's caps.
    pub(crate) fn capped(&self, l: agentd_core::AgentLimits) -> agentd_core::AgentLimits {
        let c = &self.access.limits;
        agentd_core::AgentLimits {
            max_depth: l.max_depth.min(c.max_depth),
            max_children: l.max_children.min(c.max_children),
            max_concurrent_children: l.max_concurrent_children.min(c.max_concurrent_children).max(1),
            ..l
        }
    }

    /// One of the org's download slots (`[limits] downloads_per_org`), or
    /// `Busy` when all are taken.
    pub(crate) fn download_slot(&self, org: &str) -> Result<tokio::sync::OwnedSemaphorePermit, RuntimeError> {
        let cap = self.access.limits.downloads_per_org.max(1) as usize;
        let sem = {
            let mut all = self.access.downloads.lock().unwrap_or_else(|e| e.into_inner());
            all.entry(org.to_string()).or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(cap))).clone()
        };
        sem.try_acquire_owned().map_err(|_| {
            RuntimeError::Busy(format!(
                "the organisation has {cap} workspace downloads in flight (the server's downloads_per_org); retry when one ends"
            ))
        })
    }

    /// The caps a child's creation checks in its transaction.
    pub(crate) fn tree_caps(&self) -> agentd_store::TreeCaps {
        let c = &self.access.limits;
        agentd_store::TreeCaps { max_tree_runs: c.max_tree_runs, max_org_open_runs: c.max_org_open_runs }
    }

    /// Whether any key that is not revoked exists (auth defaults to on then).
    pub async fn keys_exist(&self) -> Result<bool, RuntimeError> {
        Ok(self.store.any_active_key().await?)
    }
}

/// An RFC 3339 time in the stored format (UTC, milliseconds), so times compare as text.
fn normalise_time(t: &str) -> String {
    chrono::DateTime::parse_from_rfc3339(t)
        .map(|d| d.with_timezone(&chrono::Utc).to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_else(|_| t.to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn secrets_are_long_random_and_hashed() {
        let (a, b) = (new_secret().unwrap(), new_secret().unwrap());
        assert_ne!(a, b);
        assert!(a.starts_with("agk_") && a.len() == 4 + 43, "{a}");
        assert!(a[4..].chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_eq!(hash_of(&a).len(), 64);
        assert_ne!(hash_of(&a), hash_of(&b));
    }

    #[test]
    fn gcra_allows_a_burst_then_spreads_requests() {
        let start = Instant::now();
        let mut tat = start;
        for _ in 0..60 {
            assert!(gcra(&mut tat, start, 60).is_ok());
        }
        let wait = gcra(&mut tat, start, 60).unwrap_err();
        assert!(wait > Duration::from_millis(900) && wait <= Duration::from_secs(1), "{wait:?}");
        assert!(gcra(&mut tat, start + wait, 60).is_ok(), "one more after the wait");
        assert!(gcra(&mut tat, start + wait, 60).is_err());
    }

    #[test]
    fn admins_manage_their_own_org_only() {
        let key = |org: Option<&str>| ApiKey {
            id: "key_1".into(),
            name: String::new(),
            role: KeyRole::Member,
            org: org.map(str::to_string),
            user: None,
            project: None,
            prefix: String::new(),
            created_at: String::new(),
            expires_at: None,
            last_used_at: None,
            revoked_at: None,
        };
        let p = |role, org: Option<&str>| Principal {
            key_id: "k".into(),
            role,
            org: org.map(str::to_string),
            user: None,
            project: None,
        };
        assert!(may_manage(Some(&p(KeyRole::Admin, Some("a"))), &key(Some("a"))));
        assert!(!may_manage(Some(&p(KeyRole::Admin, Some("a"))), &key(Some("b"))));
        assert!(!may_manage(Some(&p(KeyRole::Member, Some("a"))), &key(Some("a"))));
        assert!(may_manage(Some(&p(KeyRole::Operator, None)), &key(Some("b"))));
        assert!(may_manage(None, &key(None)));
        assert_eq!(normalise_time("2030-01-01T01:00:00+01:00"), "2030-01-01T00:00:00.000Z");
    }
}
