//! Per-tenant secrets, sealed with ChaCha20-Poly1305 under the node's
//! master key before they reach the store. The tenant and the name are the
//! associated data, so a sealed value copied to another tenant or name does
//! not open. A value is opened only at the moment of use, and from then on
//! masked in every event, log line and error.

use agentd_core::{ErrorCode, Tenant};
use base64::Engine;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};

use crate::{Runtime, RuntimeError};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;
/// Largest secret value.
const MAX_VALUE: usize = 64 * 1024;
/// How often a node reads every tenant's secrets again for masking (secrets
/// put on other nodes, after a restart).
pub(crate) const MASK_REFRESH: std::time::Duration = std::time::Duration::from_secs(30);

/// The key secrets are sealed with (32 bytes), from `AGENTD_SECRET_KEY` or
/// the key file in the data dir.
#[derive(Clone)]
pub struct MasterKey([u8; 32]);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

impl MasterKey {
    /// A key from its base64 text (32 bytes).
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = B64
            .decode(text.trim())
            .or_else(|_| base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text.trim()))
            .map_err(|_| "the secret key must be base64".to_string())?;
        let arr: [u8; 32] = bytes.try_into().map_err(|_| "the secret key must be 32 bytes".to_string())?;
        Ok(Self(arr))
    }

    /// A new random key.
    pub fn generate() -> Result<Self, String> {
        let mut k = [0u8; 32];
        getrandom::fill(&mut k).map_err(|e| format!("no randomness: {e}"))?;
        Ok(Self(k))
    }

    /// The raw key (for deriving other keys from it).
    pub(crate) fn bytes(&self) -> [u8; 32] {
        self.0
    }

    /// The key as base64 text (for the key file).
    pub fn to_base64(&self) -> String {
        B64.encode(self.0)
    }

    fn aead(&self) -> Result<LessSafeKey, RuntimeError> {
        UnboundKey::new(&CHACHA20_POLY1305, &self.0)
            .map(LessSafeKey::new)
            .map_err(|_| RuntimeError::bad(ErrorCode::InternalError, "the secret key is unusable"))
    }
}

fn aad(t: &Tenant, name: &str) -> String {
    format!("{}\u{0}{}\u{0}{}\u{0}{}", t.org, t.user, t.project, name)
}

/// `base64(nonce ‖ ciphertext ‖ tag)`.
fn seal(key: &MasterKey, t: &Tenant, name: &str, value: &str) -> Result<String, RuntimeError> {
    let mut nonce = [0u8; NONCE_LEN];
    getrandom::fill(&mut nonce)
        .map_err(|e| RuntimeError::bad(ErrorCode::InternalError, format!("no randomness: {e}")))?;
    let mut buf = value.as_bytes().to_vec();
    key.aead()?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(t, name).as_bytes()), &mut buf)
        .map_err(|_| RuntimeError::bad(ErrorCode::InternalError, "sealing the secret failed"))?;
    let mut out = nonce.to_vec();
    out.extend(buf);
    Ok(B64.encode(out))
}

fn open(key: &MasterKey, t: &Tenant, name: &str, sealed: &str) -> Result<String, RuntimeError> {
    let broken =
        || RuntimeError::bad(ErrorCode::InternalError, format!("secret {name:?} does not open with this node's key"));
    let raw = B64.decode(sealed).map_err(|_| broken())?;
    if raw.len() < NONCE_LEN {
        return Err(broken());
    }
    let (nonce, rest) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| broken())?;
    let mut buf = rest.to_vec();
    let plain = key.aead()?.open_in_place(nonce, Aad::from(aad(t, name).as_bytes()), &mut buf).map_err(|_| broken())?;
    String::from_utf8(plain.to_vec()).map_err(|_| broken())
}

/// Whether a header or variable holds a credential, by its name or by its
/// value's shape: such values are sealed, never stored as given.
pub(crate) fn credential_like(name: &str, value: &str) -> bool {
    let n = name.to_ascii_lowercase();
    let by_name = [
        "auth",
        "token",
        "tok",
        "secret",
        "key",
        "pass",
        "pwd",
        "credential",
        "cred",
        "cookie",
        "sig",
        "access",
        "session",
        "private",
        "cert",
        "otp",
        "pin",
    ]
    .iter()
    .any(|w| n.contains(w));
    by_name || matches!(agentd_core::redact::redact(value), std::borrow::Cow::Owned(_))
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 128 && name.chars().all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
}

impl Runtime {
    fn master_key(&self) -> Result<&MasterKey, RuntimeError> {
        self.secret_key.as_ref().ok_or_else(|| {
            RuntimeError::bad(ErrorCode::InvalidRequest, "this node has no secret key (set AGENTD_SECRET_KEY)")
        })
    }

    /// Creates or replaces a tenant's secret; only its name and times come back.
    pub async fn put_secret(
        &self,
        t: &Tenant,
        name: &str,
        value: &str,
    ) -> Result<agentd_store::SecretMeta, RuntimeError> {
        if !valid_name(name) {
            return Err(RuntimeError::bad(
                ErrorCode::InvalidRequest,
                "a secret's name is 1-128 characters of [A-Za-z0-9_.-]",
            ));
        }
        if value.is_empty() || value.len() > MAX_VALUE {
            return Err(RuntimeError::bad(ErrorCode::InvalidRequest, "`value` must be 1 byte to 64 KiB"));
        }
        if let Some(why) = agentd_core::redact::unfit_secret(value) {
            return Err(RuntimeError::bad(ErrorCode::SecretUnfit, why));
        }
        let sealed = seal(self.master_key()?, t, name, value)?;
        self.store.put_secret(t, name, &sealed).await?;
        // From now on the value is masked wherever this tenant's data might show it.
        agentd_core::redact::add_tenant_secrets(t, [value.to_string()]);
        let all = self.store.list_secrets(t).await?;
        all.into_iter().find(|m| m.name == name).ok_or(RuntimeError::Store(agentd_store::StoreError::NotFound))
    }

    /// Seals a value given inline (every MCP server header and variable,
    /// every HTTP tool and provider header: which are credentials no name
    /// can tell) as a tenant secret named after `kind`, `owner` and `field`,
    /// so the stored definition holds a reference and never the value. Only
    /// values that look like credentials are masked in the tenant's data.
    pub(crate) async fn seal_inline(
        &self,
        t: &Tenant,
        (kind, owner, field): (&str, &str, &str),
        value: &str,
    ) -> Result<String, RuntimeError> {
        use sha2::Digest;
        let clean = |s: &str| -> String {
            s.chars().map(|c| if c.is_ascii_alphanumeric() || "_-".contains(c) { c } else { '_' }).take(40).collect()
        };
        // The hash keeps `a.b` + `c` and `a` + `b.c` apart.
        let h = sha2::Sha256::digest(format!("{kind}\0{owner}\0{field}").as_bytes());
        let tag: String = h.iter().take(4).map(|b| format!("{b:02x}")).collect();
        let name = format!("inline.{kind}.{}.{}.{tag}", clean(owner), clean(field));
        if value.len() > MAX_VALUE {
            return Err(RuntimeError::bad(ErrorCode::InlineCredential, "an inline credential is at most 64 KiB"));
        }
        let key = self.master_key().map_err(|_| {
            RuntimeError::bad(
                ErrorCode::InlineCredential,
                format!(
                    "{name}: a credential may not be stored inline and this node cannot seal it (no secret key); \
                     put it in a secret (PUT /v1/secrets/NAME) and give {{\"secret\": \"NAME\"}}"
                ),
            )
        })?;
        let sealed = seal(key, t, &name, value)?;
        self.store.put_secret(t, &name, &sealed).await?;
        if credential_like(field, value) && agentd_core::redact::unfit_secret(value).is_none() {
            agentd_core::redact::add_tenant_secrets(t, [value.to_string()]);
        }
        Ok(name)
    }

    /// The tenant's secrets: names and times, never values.
    pub async fn list_secrets(&self, t: &Tenant) -> Result<Vec<agentd_store::SecretMeta>, RuntimeError> {
        Ok(self.store.list_secrets(t).await?)
    }

    pub async fn delete_secret(&self, t: &Tenant, name: &str) -> Result<(), RuntimeError> {
        if self.store.delete_secret(t, name).await? {
            Ok(())
        } else {
            Err(RuntimeError::not_found(ErrorCode::SecretNotFound, format!("no secret named {name:?}")))
        }
    }

    /// Opens every stored secret and masks each in its tenant's data (at
    /// start and every [`MASK_REFRESH`]): a value need not be used on this
    /// node, or since a restart, to be masked.
    pub(crate) async fn load_secret_masks(&self) {
        let Ok(key) = self.master_key() else { return };
        let all = match self.store.all_sealed_secrets().await {
            Ok(all) => all,
            Err(e) => {
                tracing::warn!(error = %e, "could not read tenants' secrets to mask them");
                return;
            }
        };
        for s in all {
            // An inline value is masked only when its field says credential.
            let field = s.name.strip_prefix("inline.").and_then(|r| r.split('.').nth(2)).unwrap_or("key");
            match open(key, &s.tenant, &s.name, &s.sealed) {
                Ok(v) if agentd_core::redact::unfit_secret(&v).is_none() && credential_like(field, &v) => {
                    agentd_core::redact::add_tenant_secrets(&s.tenant, [v]);
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, secret = %s.name, "a stored secret does not open"),
            }
        }
    }

    /// Re-seals every tenant's secrets under `new` (this runtime holds the
    /// old key) in one transaction, and returns how many. A secret that does
    /// not open with the old key stops it before anything changes.
    pub async fn reseal_secrets(&self, new: &MasterKey) -> Result<usize, RuntimeError> {
        let old = self.master_key()?;
        let all = self.store.all_sealed_secrets().await?;
        let mut changes = Vec::with_capacity(all.len());
        for s in all {
            let value = open(old, &s.tenant, &s.name, &s.sealed)?;
            let sealed = seal(new, &s.tenant, &s.name, &value)?;
            changes.push((s, sealed));
        }
        self.store.reseal_secrets(&changes).await?;
        Ok(changes.len())
    }

    /// A secret a configuration field names, opened now; a secret the tenant
    /// lacks is the caller's mistake (`400`, naming the field).
    pub(crate) async fn secret_for(&self, t: &Tenant, field: &str, name: &str) -> Result<String, RuntimeError> {
        self.secret_value(t, name).await.map_err(|e| match e {
            RuntimeError::NotFound { message, .. } => {
                RuntimeError::bad(ErrorCode::InvalidRequest, format!("{field}: {message}"))
            }
            other => other,
        })
    }

    /// A secret's value, opened for use now (and masked from then on).
    pub async fn secret_value(&self, t: &Tenant, name: &str) -> Result<String, RuntimeError> {
        let sealed =
            self.store.get_secret(t, name).await?.ok_or_else(|| {
                RuntimeError::not_found(ErrorCode::SecretNotFound, format!("no secret named {name:?}"))
            })?;
        let value = open(self.master_key()?, t, name, &sealed)?;
        if agentd_core::redact::unfit_secret(&value).is_none() {
            agentd_core::redact::add_tenant_secrets(t, [value.clone()]);
        }
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sealed_values_open_only_for_their_tenant_name_and_key() {
        let key = MasterKey::generate().unwrap();
        let t = Tenant::default();
        let sealed = seal(&key, &t, "db", "hunter2-password").unwrap();
        assert!(!sealed.contains("hunter2"));
        assert_ne!(sealed, seal(&key, &t, "db", "hunter2-password").unwrap(), "a fresh nonce each time");
        assert_eq!(open(&key, &t, "db", &sealed).unwrap(), "hunter2-password");
        let other = Tenant { org: "other".into(), ..Tenant::default() };
        assert!(open(&key, &other, "db", &sealed).is_err(), "moved to another tenant");
        assert!(open(&key, &t, "db2", &sealed).is_err(), "renamed");
        assert!(open(&MasterKey::generate().unwrap(), &t, "db", &sealed).is_err(), "another key");
        let again = MasterKey::from_base64(&key.to_base64()).unwrap();
        assert_eq!(open(&again, &t, "db", &sealed).unwrap(), "hunter2-password");
        assert!(MasterKey::from_base64("c2hvcnQ=").is_err());
    }
}
