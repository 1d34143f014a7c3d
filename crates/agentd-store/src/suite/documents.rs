//! The suite's part on tenant documents: scope, caps, pages, versions and
//! masking on every write.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test suite: a failed step is a failed test

use std::sync::Arc;

use agentd_core::Tenant;

use super::tenant;
use crate::{Store, StoreError};

/// HTTP tools belong to their tenant; names are unique per tenant.
pub async fn http_tools_are_tenant_scoped(s: Arc<dyn Store>) {
    let a = tenant("a");
    let b = tenant("b");
    let def = agentd_core::HttpToolDef {
        name: "lookup".into(),
        description: "d".into(),
        input_schema: serde_json::json!({"type": "object"}),
        url: "http://127.0.0.1:9/x".into(),
        headers: Default::default(),
        secret_headers: [("Authorization".to_string(), "AGENTD_SECRET_X".to_string())].into(),
        timeout_ms: 1000,
        created_at: crate::now(),
    };
    s.create_http_tool(&a, &def).await.unwrap();
    assert!(matches!(s.create_http_tool(&a, &def).await, Err(StoreError::AlreadyExists)));
    s.create_http_tool(&b, &def).await.unwrap();
    assert_eq!(s.list_http_tools(&a).await.unwrap(), vec![def.clone()]);
    assert!(s.delete_http_tool(&b, "lookup").await.unwrap());
    assert!(s.list_http_tools(&b).await.unwrap().is_empty());
    assert_eq!(s.list_http_tools(&a).await.unwrap().len(), 1, "deleting b's left a's alone");
    assert!(!s.delete_http_tool(&tenant("c"), "lookup").await.unwrap());
}

/// Documents of a simple kind: capped per org (all its users together, in
/// the insert itself), one read by name, pages by name.
pub async fn documents_are_capped_paged_and_read_by_name(s: Arc<dyn Store>) {
    let kind = crate::DocKind::new("note");
    let alice = Tenant::from_parts(Some("capped"), Some("alice"), None).unwrap();
    let bob = Tenant::from_parts(Some("capped"), Some("bob"), None).unwrap();
    let doc = |n: &str| serde_json::json!({"name": n, "text": n});
    s.create_doc_capped(&alice, kind, "a", &doc("a"), 2).await.unwrap();
    s.create_doc_capped(&bob, kind, "b", &doc("b"), 2).await.unwrap();
    let full = s.create_doc_capped(&bob, kind, "c", &doc("c"), 2).await;
    assert!(matches!(full, Err(StoreError::Full(2))), "another user of the org counts too: {full:?}");
    let taken = s.create_doc_capped(&alice, kind, "a", &doc("a"), 10).await;
    assert!(matches!(taken, Err(StoreError::AlreadyExists)), "{taken:?}");
    // Another org has its own room.
    s.create_doc_capped(&tenant("other"), kind, "c", &doc("c"), 2).await.unwrap();
    assert_eq!(s.get_doc(&alice, kind, "a").await.unwrap(), Some(doc("a")));
    assert_eq!(s.get_doc(&bob, kind, "a").await.unwrap(), None, "by name within the tenant only");
    for n in ["d", "e"] {
        s.create_doc_capped(&alice, kind, n, &doc(n), 10).await.unwrap();
    }
    let first = s.list_docs_page(&alice, kind, None, 2).await.unwrap();
    assert_eq!(first, vec![doc("a"), doc("d")]);
    let next = s.list_docs_page(&alice, kind, Some("d"), 2).await.unwrap();
    assert_eq!(next, vec![doc("e")]);
}

/// An agent keeps its newest versions only (and any an unfinished run reads).
pub async fn agent_versions_are_bounded(s: Arc<dyn Store>) {
    let t = tenant("versions");
    let kind = crate::DocKind::AGENT;
    s.create_doc(&t, kind, "a", &serde_json::json!({"name": "a", "v": 0})).await.unwrap();
    let n = crate::MAX_AGENT_VERSIONS + 5;
    for v in 1..n {
        assert!(s.replace_doc(&t, kind, "a", &serde_json::json!({"name": "a", "v": v})).await.unwrap());
    }
    let versions = s.doc_versions(&t, kind, "a").await.unwrap();
    assert_eq!(versions.len() as u32, crate::MAX_AGENT_VERSIONS, "oldest pruned");
    assert_eq!(versions.last().map(|v| v.version), Some(i64::from(n)));
    assert_eq!(versions.first().map(|v| v.version), Some(i64::from(n - crate::MAX_AGENT_VERSIONS + 1)));
}

/// Hardening finding 11: secrets are masked on every write path, not only in the journal.
pub async fn secrets_are_masked_on_every_write(s: Arc<dyn Store>) {
    let secret = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
    let t = tenant("a");
    let ses = s.create_session(&t, Some(format!("title {secret}")), serde_json::json!({"k": [secret]})).await.unwrap();
    let back = s.get_session(&t, &ses.id).await.unwrap().unwrap();
    assert!(!format!("{back:?}").contains(secret), "{back:?}");
    for kind in [crate::DocKind::AGENT, crate::DocKind::PROMPT_TEMPLATE, crate::DocKind::SKILL] {
        s.create_doc(&t, kind, "x", &serde_json::json!({"content": format!("use {secret}")})).await.unwrap();
        s.replace_doc(&t, kind, "x", &serde_json::json!({"content": format!("now {secret}")})).await.unwrap();
        let docs = s.list_docs(&t, kind).await.unwrap();
        assert!(!serde_json::to_string(&docs).unwrap().contains(secret), "{kind:?}: {docs:?}");
    }
}
