//! Console logins: an API key exchanged for a session cookie. The cookie's
//! token is stored only as its SHA-256; the login acts as its key, so
//! revoking or expiring the key ends it at once, and it ends itself after
//! [`LOGIN_TTL`] or at logout. Each login has a CSRF token that the
//! console's state-changing requests echo.

use std::time::Duration;

use crate::access::{Principal, hash_of, random_token, unauthorized};
use crate::{Runtime, RuntimeError};

/// Prefix of a login token (the cookie's value).
pub const LOGIN_PREFIX: &str = "agc_";
/// How long a login lasts (never past its key's expiry).
pub const LOGIN_TTL: Duration = Duration::from_secs(12 * 3600);

/// A new login: the cookie's token and the CSRF token, both shown once.
#[derive(Debug, Clone)]
pub struct LoginMade {
    pub token: String,
    pub csrf: String,
    pub principal: Principal,
    pub expires_at: String,
}

/// How long a login page's form token is good for.
const FORM_TTL_SECS: u64 = 3600;

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Runtime {
    /// The key login form tokens are signed with: derived from the secret
    /// key (the same on every node), else random for this process.
    fn form_key(&self) -> ring::hmac::Key {
        static LOCAL: std::sync::OnceLock<[u8; 32]> = std::sync::OnceLock::new();
        let material: Vec<u8> = match &self.secret_key {
            Some(k) => {
                ring::hmac::sign(&ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &k.bytes()), b"agentd login form")
                    .as_ref()
                    .to_vec()
            }
            None => LOCAL
                .get_or_init(|| {
                    let mut b = [0u8; 32];
                    let _ = getrandom::fill(&mut b);
                    b
                })
                .to_vec(),
        };
        ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &material)
    }

    /// A login page's form token: issued by this server (signed), dated.
    pub fn login_form_token(&self) -> Result<String, RuntimeError> {
        let nonce = random_token("")?;
        let body = format!("{nonce}.{}", unix_now());
        let mac = ring::hmac::sign(&self.form_key(), body.as_bytes());
        let mac: String = mac.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect();
        Ok(format!("lf_{body}.{mac}"))
    }

    /// Whether a form token is one this server issued within the last hour.
    pub fn login_form_valid(&self, token: &str) -> bool {
        let Some(rest) = token.strip_prefix("lf_") else { return false };
        let Some((body, mac)) = rest.rsplit_once('.') else { return false };
        let Some((_, at)) = body.rsplit_once('.') else { return false };
        let fresh = at.parse::<u64>().is_ok_and(|t| unix_now().saturating_sub(t) <= FORM_TTL_SECS);
        let want = ring::hmac::sign(&self.form_key(), body.as_bytes());
        let want: String = want.as_ref().iter().take(16).map(|b| format!("{b:02x}")).collect();
        fresh && crate::access::same_text(&want, mac)
    }

    /// Checks an API key and makes a login for it.
    pub async fn login(&self, secret: &str) -> Result<LoginMade, RuntimeError> {
        let principal = self.authenticate(secret).await?;
        let key = self.store.get_key(&principal.key_id).await?.ok_or_else(|| unauthorized("unknown API key"))?;
        let (token, csrf) = (random_token(LOGIN_PREFIX)?, random_token("")?);
        let ttl_end = (chrono::Utc::now() + chrono::Duration::from_std(LOGIN_TTL).unwrap_or(chrono::Duration::zero()))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        // Never past the key's own expiry.
        let expires_at = match key.expires_at {
            Some(k) if k < ttl_end => k,
            _ => ttl_end,
        };
        let login = agentd_store::Login {
            hash: hash_of(&token),
            key_id: principal.key_id.clone(),
            csrf: csrf.clone(),
            created_at: agentd_store::now(),
            expires_at: expires_at.clone(),
            revoked_at: None,
        };
        self.store.create_login(&login).await?;
        Ok(LoginMade { token, csrf, principal, expires_at })
    }

    /// The principal a login token speaks for, and its CSRF token;
    /// `Unauthorized` if the login or its key ended.
    pub async fn authenticate_login(&self, token: &str) -> Result<(Principal, String), RuntimeError> {
        if !token.starts_with(LOGIN_PREFIX) || token.len() > 128 {
            return Err(unauthorized("not a console login"));
        }
        let now = agentd_store::now();
        let login = self.store.get_login(&hash_of(token)).await?.ok_or_else(|| unauthorized("unknown login"))?;
        if login.revoked_at.is_some() || login.expires_at <= now {
            return Err(unauthorized("this login has ended; log in again"));
        }
        let key = self.store.get_key(&login.key_id).await?.ok_or_else(|| unauthorized("unknown API key"))?;
        if key.revoked_at.is_some() || key.expires_at.as_deref().is_some_and(|t| t <= now.as_str()) {
            return Err(unauthorized("the API key of this login was revoked or has expired"));
        }
        let p = Principal { key_id: key.id, role: key.role, org: key.org, user: key.user, project: key.project };
        Ok((p, login.csrf))
    }

    /// Ends a login (unknown or ended ones are fine: the cookie is dropped anyway).
    pub async fn logout(&self, token: &str) -> Result<(), RuntimeError> {
        self.store.revoke_login(&hash_of(token), &agentd_store::now()).await?;
        Ok(())
    }
}
