//! The suite's part on access: API keys stored as hashes, secrets scoped to
//! their tenant.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a failed step is a failed test

use std::sync::Arc;

use super::tenant;
use crate::Store;

/// API keys: found by prefix with their hash, listed per organisation,
/// revoked once; `any_active_key` ignores revoked keys.
pub async fn api_keys_are_stored_as_hashes(s: Arc<dyn Store>) {
    let key = |id: &str, org: Option<&str>, prefix: &str| agentd_core::ApiKey {
        id: id.into(),
        name: "k".into(),
        role: agentd_core::KeyRole::Member,
        org: org.map(str::to_string),
        user: None,
        project: None,
        prefix: prefix.into(),
        created_at: crate::now(),
        expires_at: None,
        last_used_at: None,
        revoked_at: None,
    };
    assert!(!s.any_active_key().await.unwrap());
    s.create_key(&key("key_1", Some("a"), "agk_aaaa"), "h1").await.unwrap();
    s.create_key(&key("key_2", Some("b"), "agk_bbbb"), "h2").await.unwrap();
    s.create_key(&key("key_3", None, "agk_aaaa"), "h3").await.unwrap();
    assert!(s.any_active_key().await.unwrap());
    let mut found = s.keys_by_prefix("agk_aaaa").await.unwrap();
    found.sort_by(|x, y| x.0.id.cmp(&y.0.id));
    assert_eq!(
        found.iter().map(|(k, h)| (k.id.as_str(), h.as_str())).collect::<Vec<_>>(),
        [("key_1", "h1"), ("key_3", "h3")]
    );
    assert_eq!(s.list_keys(Some("a")).await.unwrap().len(), 1);
    assert_eq!(s.list_keys(None).await.unwrap().len(), 3);
    s.touch_key("key_1", "2030-01-01T00:00:00.000Z").await.unwrap();
    assert_eq!(s.get_key("key_1").await.unwrap().unwrap().last_used_at.as_deref(), Some("2030-01-01T00:00:00.000Z"));
    assert!(s.revoke_key("key_1", &crate::now()).await.unwrap());
    assert!(!s.revoke_key("key_1", &crate::now()).await.unwrap(), "revoked once");
    assert!(s.get_key("key_1").await.unwrap().unwrap().revoked_at.is_some());
    for id in ["key_2", "key_3"] {
        s.revoke_key(id, &crate::now()).await.unwrap();
    }
    assert!(!s.any_active_key().await.unwrap());
    assert!(s.get_key("nope").await.unwrap().is_none());
}

/// Secrets: stored as given (sealed by the runtime), replaced in place,
/// listed without values, scoped to their tenant.
pub async fn secrets_are_tenant_scoped(s: Arc<dyn Store>) {
    let (a, b) = (tenant("a"), tenant("b"));
    s.put_secret(&a, "db", "sealed-1").await.unwrap();
    s.put_secret(&a, "db", "sealed-2").await.unwrap();
    s.put_secret(&b, "db", "sealed-b").await.unwrap();
    assert_eq!(s.get_secret(&a, "db").await.unwrap().as_deref(), Some("sealed-2"));
    assert_eq!(s.get_secret(&b, "db").await.unwrap().as_deref(), Some("sealed-b"));
    let listed = s.list_secrets(&a).await.unwrap();
    assert_eq!(listed.iter().map(|m| m.name.as_str()).collect::<Vec<_>>(), ["db"]);
    assert!(s.delete_secret(&a, "db").await.unwrap());
    assert!(!s.delete_secret(&a, "db").await.unwrap());
    assert_eq!(s.get_secret(&a, "db").await.unwrap(), None);
    assert!(s.get_secret(&b, "db").await.unwrap().is_some(), "the other tenant's is untouched");
}
