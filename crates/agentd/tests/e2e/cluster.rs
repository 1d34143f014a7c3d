//! Several nodes on one PostgreSQL: shared queue, lease takeover after a
//! node dies, and SSE on one node for a run executing on another.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{Opts, Server};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::json;

fn node<'a>(mock: &'a str, db: &str, id: &str, cfg: &'a Path, effects: &Path) -> Opts<'a> {
    Opts {
        mock: Some(mock),
        config: Some(cfg),
        args: vec![
            "--database".into(),
            db.into(),
            "--node-id".into(),
            id.into(),
            "--enable-test-tools".into(),
            effects.display().to_string(),
        ],
        ..Default::default()
    }
}

fn short_leases(dir: &Path) -> std::path::PathBuf {
    let cfg = dir.join("agentd.toml");
    std::fs::write(
        &cfg,
        "[scheduler]\nlease_ms = 3000\npoll_ms = 200\nshutdown_grace_ms = 1000\nmax_concurrent_runs = 8\n",
    )
    .unwrap();
    cfg
}

#[tokio::test(flavor = "multi_thread")]
async fn two_nodes_share_the_queue_and_survive_losing_one() {
    let db = common::fresh_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = short_leases(dir.path());
    let effects = dir.path().join("effects.log");
    let mock = MockOpenAi::start_full(vec![], 3, ("test_append", json!({"delay_ms": 10})), Duration::from_millis(5))
        .await
        .unwrap();
    let a = Server::start_with(node(&mock.base_url, &db, "node-a", &cfg, &effects));
    let b = Server::start_with(node(&mock.base_url, &db, "node-b", &cfg, &effects));
    let mut runs = vec![];
    for i in 0..200 {
        let s = if i % 2 == 0 { &a } else { &b };
        let (c, r) = s.post("/v1/runs", json!({"input": format!("job {i}")})).await;
        assert_eq!(c, 202, "{r}");
        runs.push(r["id"].as_str().unwrap().to_string());
    }
    // Let part of the work happen, then kill node A outright.
    loop {
        let (_, done) = b.get("/v1/runs?status=completed&limit=100").await;
        if done["data"].as_array().unwrap().len() >= 40 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(a);
    let killed_at = agentd_store::now();
    let started = Instant::now();
    for id in &runs {
        let r = b.wait_run(id).await;
        assert_eq!(r["status"], "completed", "{r}");
    }
    eprintln!("all 200 runs completed {:?} after node A was killed", started.elapsed());

    let lines = std::fs::read_to_string(&effects).unwrap();
    let mut written: HashMap<String, usize> = HashMap::new();
    for l in lines.lines() {
        *written.entry(l.split_whitespace().take(2).collect::<Vec<_>>().join(" ")).or_default() += 1;
    }
    let (mut on_a, mut on_b, mut taken_over) = (0, 0, 0);
    for id in &runs {
        let evs = b.events(id).await;
        let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=evs.len() as i64).collect::<Vec<_>>(), "run {id}: gap-free");
        let mut results: HashMap<&str, Vec<&str>> = HashMap::new();
        for e in evs.iter().filter(|e| e["type"] == "tool.result") {
            results
                .entry(e["data"]["call_id"].as_str().unwrap())
                .or_default()
                .push(e["data"]["status"].as_str().unwrap());
        }
        assert_eq!(results.len(), 3, "run {id}");
        for (call, st) in &results {
            assert_eq!(st.len(), 1, "run {id} call {call}: executed twice");
            let n = written.get(&format!("{id} {call}")).copied().unwrap_or(0);
            assert!(n <= 1, "run {id} call {call}: side effect {n} times");
            if st[0] == "ok" {
                assert_eq!(n, 1, "run {id} call {call}");
            }
        }
        // Which node ran it; a takeover by B only ever follows A's death.
        let started_by = evs.iter().find(|e| e["type"] == "run.started").unwrap()["data"]["node"].as_str().unwrap();
        match started_by {
            "node-a" => on_a += 1,
            "node-b" => on_b += 1,
            other => panic!("unknown node {other}"),
        }
        for r in evs.iter().filter(|e| e["type"] == "run.resumed") {
            assert_eq!(r["data"]["node"], "node-b");
            assert!(r["created_at"].as_str().unwrap() >= killed_at.as_str(), "B resumed {id} while A was alive");
            taken_over += 1;
        }
    }
    eprintln!("started on A: {on_a}, on B: {on_b}, taken over by B: {taken_over}");
    assert!(on_a > 0 && on_b > 0, "both nodes claimed work");
    assert!(taken_over > 0, "some of A's runs were in flight when it died");
}

#[tokio::test(flavor = "multi_thread")]
async fn sse_on_one_node_follows_a_run_on_another() {
    let db = common::fresh_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = short_leases(dir.path());
    let effects = dir.path().join("effects.log");
    let mock = MockOpenAi::start(
        vec![Turn::tool("echo", json!({"x": 1})), Turn::Slow(Duration::from_millis(500), "from A".into())],
        0,
    )
    .await
    .unwrap();
    let a = Server::start_with(node(&mock.base_url, &db, "node-a", &cfg, &effects));
    // B starts with no provider, so it can serve the API but never runs anything itself.
    let b = Server::start_with(Opts {
        config: Some(&cfg),
        args: vec!["--database".into(), db.clone(), "--node-id".into(), "node-b".into()],
        ..Default::default()
    });
    let (_, run) = a.post("/v1/runs", json!({"input": "hello"})).await;
    let id = run["id"].as_str().unwrap().to_string();
    let resp = b
        .req(reqwest::Method::GET, &format!("/v1/runs/{id}/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let frames = common::frames(resp).await;
    let ids: Vec<i64> = frames.iter().map(|f| f.id.parse().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>(), "every stored event, in order");
    assert_eq!(frames.last().unwrap().event, "run.completed");
    assert_eq!(frames.last().unwrap().data["data"]["output"], "from A");
    let started = frames.iter().find(|f| f.event == "run.started").unwrap();
    assert_eq!(started.data["data"]["node"], "node-a");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_approval_answered_on_one_node_resumes_the_run_on_another() {
    let db = common::fresh_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    // A long poll: only the database notification can wake node A quickly.
    std::fs::write(&cfg, "[scheduler]\npoll_ms = 30000\n[agents.default.policy]\nmode = \"ask\"\n").unwrap();
    let effects = dir.path().join("effects.log");
    let mock =
        MockOpenAi::start(vec![Turn::tool("echo", json!({"x": 1})), Turn::text("approved on B")], 0).await.unwrap();
    let a = Server::start_with(node(&mock.base_url, &db, "node-a", &cfg, &effects));
    let b = Server::start_with(Opts {
        config: Some(&cfg),
        args: vec!["--database".into(), db.clone(), "--node-id".into(), "node-b".into()],
        ..Default::default()
    });
    let (_, run) = a.post("/v1/runs", json!({"input": "hello"})).await;
    let id = run["id"].as_str().unwrap().to_string();
    let approval = loop {
        let (_, v) = b.get(&format!("/v1/approvals?run_id={id}&status=pending")).await;
        if let Some(a) = v["data"].as_array().and_then(|d| d.first()) {
            break a.clone();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let answered = Instant::now();
    let (c, _) =
        b.post(&format!("/v1/approvals/{}", approval["id"].as_str().unwrap()), json!({"decision": "approve"})).await;
    assert_eq!(c, 200);
    let done = b.wait_run(&id).await;
    assert_eq!((done["status"].as_str(), done["output"].as_str()), (Some("completed"), Some("approved on B")));
    assert!(answered.elapsed() < Duration::from_secs(20), "woken by NOTIFY, not the 30 s poll");
    let evs = b.events(&id).await;
    let resumed = evs.iter().find(|e| e["type"] == "run.resumed").unwrap();
    assert_eq!(resumed["data"]["node"], "node-a");
}

/// Run trees on PostgreSQL: children spread over two nodes, one node killed
/// mid-tree; every run finishes, each child exists once, each wait wakes once.
#[tokio::test(flavor = "multi_thread")]
async fn delegation_trees_survive_losing_a_node_on_postgres() {
    let db = common::fresh_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = short_leases(dir.path());
    let effects = dir.path().join("effects.log");
    let mock = MockOpenAi::start_with_latency(vec![], 0, Duration::from_millis(5)).await.unwrap();
    let calls: Vec<(String, serde_json::Value)> =
        (0..6).map(|i| ("delegate".to_string(), json!({"task": format!("PG-CHILD {i}")}))).collect();
    mock.rule("PG-PARENT", vec![Turn::ToolCalls(calls), Turn::text("parent: {tool}")]);
    mock.rule(
        "PG-CHILD",
        vec![Turn::tool("test_append", json!({"delay_ms": 150})), Turn::tool("echo", json!({})), Turn::text("ok")],
    );
    let a = Server::start_with(node(&mock.base_url, &db, "node-a", &cfg, &effects));
    let b = Server::start_with(node(&mock.base_url, &db, "node-b", &cfg, &effects));
    let mut parents = vec![];
    for i in 0..6 {
        let s = if i % 2 == 0 { &a } else { &b };
        let (c, r) = s.post("/v1/runs", json!({"input": format!("PG-PARENT {i}")})).await;
        assert_eq!(c, 202, "{r}");
        parents.push(r["id"].as_str().unwrap().to_string());
    }
    // Once children run, node A dies.
    let t0 = Instant::now();
    loop {
        let (_, running) = b.get("/v1/runs?status=running&limit=100").await;
        let children = running["data"].as_array().unwrap().iter().filter(|r| !r["parent_run_id"].is_null()).count();
        if children >= 4 || t0.elapsed() > Duration::from_secs(20) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    drop(a);
    for p in &parents {
        let run = b.wait_run(p).await;
        assert_eq!(run["status"], "completed", "{run}");
        let (_, kids) = b.get(&format!("/v1/runs/{p}/children")).await;
        let kids = kids["data"].as_array().unwrap();
        assert_eq!(kids.len(), 6, "each child created once");
        assert!(kids.iter().all(|k| k["status"] == "completed"), "{kids:?}");
        let evs = b.events(p).await;
        let count = |t: &str| evs.iter().filter(|e| e["type"] == t).count();
        assert_eq!((count("children.waiting") >= 1, count("children.done")), (true, 1), "woken once: {p}");
        assert_eq!(
            run["tree_usage"]["total_tokens"].as_u64().unwrap(),
            kids.iter().map(|k| k["tree_usage"]["total_tokens"].as_u64().unwrap()).sum::<u64>()
                + run["usage"]["total_tokens"].as_u64().unwrap()
        );
    }
}

/// Cancelling a parent while its children end at the same moment: on
/// PostgreSQL the two orders of row locks must not deadlock (a child would
/// fail `internal_error`); every run ends cancelled or completed.
#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_tree_while_children_end_never_deadlocks_on_postgres() {
    let db = common::fresh_pg_database().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default.limits]\nmax_concurrent_children = 8\n").unwrap();
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let calls: Vec<(String, serde_json::Value)> =
        (0..8).map(|i| ("delegate".to_string(), json!({"task": format!("RACE-CHILD {i}")}))).collect();
    mock.rule("RACE-PARENT", vec![Turn::ToolCalls(calls), Turn::text("parent done")]);
    mock.rule("RACE-CHILD", vec![Turn::Slow(Duration::from_millis(120), "child done".into())]);
    let s = Server::start_with(Opts {
        mock: Some(&mock.base_url),
        config: Some(&cfg),
        args: vec!["--database".into(), db],
        ..Default::default()
    });
    for round in 0..6u64 {
        let (_, r) = s.post("/v1/runs", json!({"input": "RACE-PARENT"})).await;
        let id = r["id"].as_str().unwrap().to_string();
        s.wait_event(&id, "children.waiting").await;
        // Land the cancel around the moment the children answer.
        tokio::time::sleep(Duration::from_millis(90 + round * 10)).await;
        let (c, v) = s.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
        assert!(c == 200 || c == 409, "{v}");
        let (_, kids) = s.get(&format!("/v1/runs/{id}/children")).await;
        for k in kids["data"].as_array().unwrap() {
            let run = s.wait_run(k["id"].as_str().unwrap()).await;
            assert!(["cancelled", "completed"].contains(&run["status"].as_str().unwrap()), "round {round}: {run}");
        }
        let parent = s.wait_run(&id).await;
        assert!(["cancelled", "completed"].contains(&parent["status"].as_str().unwrap()), "{parent}");
    }
}
