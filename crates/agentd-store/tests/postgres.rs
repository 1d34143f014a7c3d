//! The store suite against a real PostgreSQL (started by scripts/test, which
//! sets AGENTD_TEST_PG to an admin URL); each test gets a fresh database.
#![cfg(feature = "postgres")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::sync::Arc;

use agentd_store::PgStore;
use agentd_store::prelude::*;

/// Creates an empty database and returns its URL.
pub async fn fresh_database() -> String {
    let admin = std::env::var("AGENTD_TEST_PG")
        .expect("AGENTD_TEST_PG is not set: run the suite with scripts/test (it starts PostgreSQL)");
    let name = format!("agentd_t_{}", agentd_core::new_id("db").trim_start_matches("db_"));
    let pool = sqlx::PgPool::connect(&admin).await.expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.expect("create database");
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

async fn fresh() -> Arc<dyn Store> {
    Arc::new(PgStore::connect(&fresh_database().await).await.expect("open PgStore"))
}

agentd_store::suite_tests!(((), fresh().await));

#[tokio::test(flavor = "multi_thread")]
async fn appends_are_announced_to_every_connection() {
    let url = fresh_database().await;
    let a = PgStore::connect(&url).await.unwrap();
    let b = PgStore::connect(&url).await.unwrap();
    let mut changes = b.changes().expect("PostgreSQL announces changes");
    let t = agentd_core::Tenant::default();
    let ses = a.create_session(&t, None, serde_json::json!({})).await.unwrap();
    let nr = agentd_store::NewRun::new(ses.id, "x", "m", 1);
    a.create_run(&t, &nr).await.unwrap();
    let c = tokio::time::timeout(std::time::Duration::from_secs(10), changes.recv()).await.unwrap().unwrap();
    assert_eq!((c.run_id.as_str(), c.seq, c.type_name.as_str()), (nr.id.as_str(), 1, "run.created"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_claiming_at_once_never_share_a_run() {
    let url = fresh_database().await;
    let a: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    let b: Arc<dyn Store> = Arc::new(PgStore::connect(&url).await.unwrap());
    let t = agentd_core::Tenant::default();
    for _ in 0..60 {
        let ses = a.create_session(&t, None, serde_json::json!({})).await.unwrap();
        let nr = agentd_store::NewRun::new(ses.id, "x", "m", 1);
        a.create_run(&t, &nr).await.unwrap();
    }
    let limits = agentd_store::ClaimLimits { max: 7, per_tenant: 1000, lease_ms: 60_000, ..Default::default() };
    let mut tasks = tokio::task::JoinSet::new();
    for (i, s) in [a.clone(), b.clone(), a.clone(), b.clone()].into_iter().enumerate() {
        let limits = limits.clone();
        tasks.spawn(async move {
            let mut got = vec![];
            loop {
                let batch = s.claim_runs(&format!("n{i}"), &limits).await.unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch.into_iter().map(|(_, r)| r.id));
            }
        });
    }
    let mut all = vec![];
    while let Some(r) = tasks.join_next().await {
        all.extend(r.unwrap());
    }
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!(all.len(), n, "a run was claimed twice");
    assert_eq!(n, 60);
}

/// A migration edited after it was applied is refused, not silently skipped.
#[tokio::test(flavor = "multi_thread")]
async fn a_changed_migration_is_refused() {
    let url = fresh_database().await;
    drop(PgStore::connect(&url).await.unwrap());
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let sums: i64 = sqlx::query_scalar("SELECT count(checksum) FROM schema_migrations").fetch_one(&pool).await.unwrap();
    assert!(sums > 0, "every applied migration records its checksum");
    sqlx::query("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1").execute(&pool).await.unwrap();
    pool.close().await;
    let err = PgStore::connect(&url).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("migration 1 was changed"), "{err}");
}

/// The per-org document cap holds exactly under concurrent creates from
/// several nodes: the count and the insert take turns under one lock.
#[tokio::test(flavor = "multi_thread")]
async fn the_document_cap_holds_under_concurrent_creates_across_nodes() {
    let url = fresh_database().await;
    let nodes: Vec<Arc<dyn Store>> = vec![
        Arc::new(PgStore::connect(&url).await.expect("node a")),
        Arc::new(PgStore::connect(&url).await.expect("node b")),
    ];
    let kind = agentd_store::DocKind::new("note");
    // Rounds over fresh orgs: a race that slips past the count shows in one of them.
    for round in 0..4 {
        let org = format!("capped{round}");
        let mut tasks = vec![];
        for i in 0..60 {
            let (s, org) = (nodes[i % 2].clone(), org.clone());
            tasks.push(tokio::spawn(async move {
                let t = agentd_core::Tenant::from_parts(Some(&org), Some(&format!("u{}", i % 4)), None).unwrap();
                s.create_doc_capped(&t, kind, &format!("n{i}"), &serde_json::json!({"i": i}), 5).await
            }));
        }
        let mut created = 0;
        for t in tasks {
            match t.await.unwrap() {
                Ok(()) => created += 1,
                Err(agentd_store::StoreError::Full(5)) => {}
                Err(e) => panic!("{e}"),
            }
        }
        assert_eq!(created, 5, "round {round}: exactly the cap, never past it");
    }
}
