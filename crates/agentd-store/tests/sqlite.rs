//! The store suite against SQLite files, plus what only a file can show.
#![cfg(feature = "sqlite")]
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::sync::Arc;

use agentd_core::{EventKind, Tenant, Usage};
use agentd_store::prelude::*;
use agentd_store::{EventQuery, NewRun, SqliteStore};

async fn fresh() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let s = SqliteStore::open(&dir.path().join("agentd.db")).await.unwrap();
    (dir, Arc::new(s))
}

agentd_store::suite_tests!(fresh().await);

#[tokio::test]
async fn reopening_keeps_everything_and_migrations_run_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.db");
    let t = Tenant::default();
    let (run_id, sid) = {
        let s = SqliteStore::open(&path).await.unwrap();
        let ses = s.create_session(&t, None, serde_json::json!({"k": 1})).await.unwrap();
        let nr = NewRun::new(ses.id.clone(), "x", "m", 2);
        s.create_run(&t, &nr).await.unwrap();
        s.append(&t, &nr.id, &[EventKind::RunCompleted { output: "kept".into(), usage: Usage::default() }])
            .await
            .unwrap();
        (nr.id, ses.id)
    };
    let s = SqliteStore::open(&path).await.unwrap();
    let run = s.get_run(&t, &run_id).await.unwrap().unwrap();
    assert_eq!(run.output.as_deref(), Some("kept"));
    assert_eq!(s.get_session(&t, &sid).await.unwrap().unwrap().metadata, serde_json::json!({"k": 1}));
    assert_eq!(s.events(&t, &run_id, &EventQuery { after: 0, limit: 10, types: None }).await.unwrap().len(), 2);
}

#[tokio::test]
async fn unreadable_path_is_an_error_not_a_panic() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"x").unwrap();
    assert!(SqliteStore::open(&file.join("agentd.db")).await.is_err());
}

/// Hardening finding 8: tool work that fills tokio's blocking pool (a FIFO
/// read, a slow disk) must not starve the store: reads have threads of their own.
#[test]
fn reads_answer_while_the_blocking_pool_is_full() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (release, held) = std::sync::mpsc::channel::<()>();
    let held = Arc::new(std::sync::Mutex::new(held));
    rt.block_on(async {
        let (_dir, s) = fresh().await;
        let t = Tenant::default();
        let ses = s.create_session(&t, None, serde_json::json!({})).await.unwrap();
        // Every blocking thread is taken until the test lets go.
        for _ in 0..2 {
            let held = held.clone();
            tokio::task::spawn_blocking(move || {
                let _ = held.lock().map(|rx| rx.recv());
            });
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        // Generous: on the old design this waited for the blockers forever.
        let got = tokio::time::timeout(std::time::Duration::from_secs(30), s.get_session(&t, &ses.id)).await;
        for _ in 0..2 {
            let _ = release.send(());
        }
        assert!(got.expect("a read waited for the blocking pool").unwrap().is_some());
        assert!(tokio::time::timeout(std::time::Duration::from_secs(30), s.ping()).await.is_ok());
    });
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
}

/// A migration edited after it was applied is refused, not silently skipped.
#[tokio::test]
async fn a_changed_migration_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.db");
    drop(SqliteStore::open(&path).await.unwrap());
    let conn = rusqlite::Connection::open(&path).unwrap();
    let sums: i64 = conn.query_row("SELECT count(checksum) FROM schema_migrations", [], |r| r.get(0)).unwrap();
    assert!(sums > 0, "every applied migration records its checksum");
    conn.execute("UPDATE schema_migrations SET checksum = 'edited' WHERE version = 1", []).unwrap();
    drop(conn);
    let err = SqliteStore::open(&path).await.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("migration 1 was changed"), "{err}");
}

/// A database whose common migrations carry the numbers they had before
/// versions came from file names (10..19 on SQLite) is renumbered once and
/// runs none of them again.
#[tokio::test]
async fn old_migration_numbers_are_renumbered_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.db");
    {
        let s = SqliteStore::open(&path).await.unwrap();
        s.create_session(&Tenant::default(), None, serde_json::json!({})).await.unwrap();
    }
    let versions = |c: &rusqlite::Connection| -> Vec<i64> {
        let mut st = c.prepare("SELECT version FROM schema_migrations ORDER BY version").unwrap();
        st.query_map([], |r| r.get(0)).unwrap().map(|v| v.unwrap()).collect()
    };
    let fresh = {
        let c = rusqlite::Connection::open(&path).unwrap();
        let fresh = versions(&c);
        assert_eq!(fresh.iter().filter(|v| **v >= 1001).count(), 10, "{fresh:?}");
        c.execute("UPDATE schema_migrations SET version = version - 1001 + 10 WHERE version >= 1001", []).unwrap();
        assert!(versions(&c).iter().all(|v| *v < 1001));
        fresh
    };
    let s = SqliteStore::open(&path).await.unwrap();
    assert_eq!(
        s.list_sessions(&Tenant::default(), &agentd_store::Page { after: None, limit: 10 }).await.unwrap().len(),
        1
    );
    drop(s);
    let c = rusqlite::Connection::open(&path).unwrap();
    assert_eq!(versions(&c), fresh, "renumbered, nothing applied twice");
}
