//! Durable execution against the real binary: crash-resume under SIGKILL,
//! per-session lanes, steering, graceful shutdown, cancellation in tools.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use crate::common;

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use crate::common::{Opts, Server, types};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::{Value, json};

/// A tiny deterministic generator (seed printed so a failure can be replayed).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self.0.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (self.0 >> 33) % below.max(1)
    }
}

fn opts<'a>(mock: &'a str, data_dir: &'a Path, effects: &Path) -> Opts<'a> {
    Opts {
        mock: Some(mock),
        data_dir: Some(data_dir),
        args: vec!["--enable-test-tools".into(), effects.display().to_string()],
        ..Default::default()
    }
}

/// Lines the test tool wrote, counted per "<run> <call>".
fn effects(path: &Path) -> HashMap<String, usize> {
    let mut m = HashMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let key: Vec<&str> = line.split_whitespace().take(2).collect();
        *m.entry(key.join(" ")).or_insert(0) += 1;
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_moments_never_loses_or_repeats_work() {
    // Every run makes 10 calls to a non-idempotent tool that appends a line.
    let mock = MockOpenAi::start_full(vec![], 10, ("test_append", json!({"delay_ms": 15})), Duration::from_millis(3))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("effects.log");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("crash test seed {seed}");
    let mut rng = Lcg(seed);
    let mut runs: Vec<String> = vec![];
    let mut kills = 0;
    while kills < 50 {
        let s = Server::start_with(opts(&mock.base_url, &data, &file));
        // Keep a few runs in flight so kills land in every phase of a run.
        let (_, list) = s.get("/v1/runs?status=running&limit=100").await;
        let (_, queued) = s.get("/v1/runs?status=queued&limit=100").await;
        let open = list["data"].as_array().unwrap().len() + queued["data"].as_array().unwrap().len();
        for _ in open..4 {
            let (c, r) = s.post("/v1/runs", json!({"input": "work", "max_steps": 30})).await;
            assert_eq!(c, 202, "{r}");
            runs.push(r["id"].as_str().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(rng.next(120))).await;
        drop(s); // SIGKILL
        kills += 1;
    }
    let s = Server::start_with(opts(&mock.base_url, &data, &file));
    let mut interrupted = 0;
    for id in &runs {
        let run = s.wait_run(id).await;
        assert_eq!(run["status"], "completed", "run {id}: {run}");
    }
    let effects_seen = effects(&file);
    for id in &runs {
        let evs = s.events(id).await;
        let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
        assert_eq!(seqs, (1..=evs.len() as i64).collect::<Vec<_>>(), "run {id}: seq must be gap-free and unique");
        let mut results: HashMap<String, Vec<String>> = HashMap::new();
        for e in evs.iter().filter(|e| e["type"] == "tool.result") {
            let call = e["data"]["call_id"].as_str().unwrap().to_string();
            results.entry(call).or_default().push(e["data"]["status"].as_str().unwrap().to_string());
        }
        assert_eq!(results.len(), 10, "run {id}: ten tool calls, each with a result");
        for (call, statuses) in &results {
            assert_eq!(statuses.len(), 1, "run {id} call {call}: one result, never two ({statuses:?})");
            let written = effects_seen.get(&format!("{id} {call}")).copied().unwrap_or(0);
            assert!(written <= 1, "run {id} call {call}: side effect happened {written} times");
            match statuses[0].as_str() {
                "ok" => assert_eq!(written, 1, "run {id} call {call}: ok but no side effect"),
                "interrupted" => interrupted += 1,
                other => panic!("run {id} call {call}: unexpected status {other}"),
            }
        }
    }
    // After this test the effects file has no lines of unknown calls either.
    let known: usize = effects(&file).values().sum();
    assert!(known <= runs.len() * 10);
    eprintln!("{} runs, {kills} kills, {interrupted} interrupted tool calls", runs.len());
    assert!(interrupted > 0, "50 kills during 15 ms tool calls should interrupt at least one");
}

#[tokio::test(flavor = "multi_thread")]
async fn session_lanes_enqueue_reject_interrupt() {
    let mock = MockOpenAi::start(
        vec![Turn::Slow(Duration::from_millis(400), "first answer".into()), Turn::text("second answer")],
        0,
    )
    .await
    .unwrap();
    let s = Server::start(&mock.base_url);
    let (_, ses) = s.post("/v1/sessions", json!({})).await;
    let sid = ses["id"].as_str().unwrap();
    // Two messages at once: FIFO, one after the other.
    let (c1, a) = s.post("/v1/runs", json!({"input": "one", "session_id": sid})).await;
    let (c2, b) = s.post("/v1/runs", json!({"input": "two", "session_id": sid})).await;
    assert_eq!((c1, c2), (202, 202));
    let (a, b) = (a["id"].as_str().unwrap().to_string(), b["id"].as_str().unwrap().to_string());
    // While the first runs, `reject` answers 409 naming it.
    let (c, v) = s.post("/v1/runs", json!({"input": "three", "session_id": sid, "if_busy": "reject"})).await;
    assert_eq!(c, 409, "{v}");
    assert_eq!(v["error"]["code"], "session_busy");
    assert_eq!(v["error"]["active_run_id"], a.as_str());
    let ra = s.wait_run(&a).await;
    let rb = s.wait_run(&b).await;
    assert_eq!((ra["output"].as_str(), rb["output"].as_str()), (Some("first answer"), Some("second answer")));
    let a_done = s.events(&a).await.last().unwrap()["created_at"].as_str().unwrap().to_string();
    let b_evs = s.events(&b).await;
    let b_start =
        b_evs.iter().find(|e| e["type"] == "run.started").unwrap()["created_at"].as_str().unwrap().to_string();
    assert!(b_start >= a_done, "the second run started ({b_start}) after the first finished ({a_done})");
    // The second run saw the first exchange.
    let second_req = &mock.requests()[1];
    let contents: Vec<&str> =
        second_req["messages"].as_array().unwrap().iter().filter_map(|m| m["content"].as_str()).collect();
    assert_eq!(&contents[1..], ["one", "first answer", "two"]);

    // `interrupt` cancels the active run, then starts.
    mock.push([Turn::Slow(Duration::from_secs(30), "never".into()), Turn::text("after interrupt")]);
    let (_, slow) = s.post("/v1/runs", json!({"input": "slow", "session_id": sid})).await;
    let slow = slow["id"].as_str().unwrap().to_string();
    s.wait_event(&slow, "step.started").await;
    let (c, fresh) = s.post("/v1/runs", json!({"input": "now", "session_id": sid, "if_busy": "interrupt"})).await;
    assert_eq!(c, 202, "{fresh}");
    let r = s.wait_run(&slow).await;
    assert_eq!(r["status"], "cancelled");
    let f = s.wait_run(fresh["id"].as_str().unwrap()).await;
    assert_eq!(f["output"], "after interrupt");
    let (c, v) = s.post("/v1/runs", json!({"input": "x", "session_id": sid, "if_busy": "sideways"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_request")));
}

#[tokio::test(flavor = "multi_thread")]
async fn steer_hands_a_message_to_the_active_run() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("effects.log");
    let mock = MockOpenAi::start(vec![Turn::tool("test_sleep", json!({"ms": 400})), Turn::text("answered both")], 0)
        .await
        .unwrap();
    let s = Server::start_with(Opts {
        mock: Some(&mock.base_url),
        args: vec!["--enable-test-tools".into(), file.display().to_string()],
        ..Default::default()
    });
    let (_, ses) = s.post("/v1/sessions", json!({})).await;
    let sid = ses["id"].as_str().unwrap();
    let (_, run) = s.post("/v1/runs", json!({"input": "first", "session_id": sid})).await;
    let id = run["id"].as_str().unwrap().to_string();
    s.wait_event(&id, "tool.started").await;
    let (c, steered) =
        s.post("/v1/runs", json!({"input": "and also this", "session_id": sid, "if_busy": "steer"})).await;
    assert_eq!(c, 202, "{steered}");
    assert_eq!(steered["id"], id.as_str(), "the message went to the active run");
    assert_eq!(steered["steered"], true);
    let done = s.wait_run(&id).await;
    assert_eq!(done["output"], "answered both");
    let evs = s.events(&id).await;
    let t = types(&evs);
    let q = t.iter().position(|x| x == "input.queued").unwrap();
    let st = t.iter().position(|x| x == "run.steered").unwrap();
    let result = t.iter().position(|x| x == "tool.result").unwrap();
    assert!(q < st && result < st, "taken in at the next step boundary: {t:?}");
    assert_eq!(evs[st]["data"]["queued_seq"], evs[q]["seq"]);
    // The model saw it, after the tool result.
    let req = &mock.requests()[1];
    let last = req["messages"].as_array().unwrap().last().unwrap();
    assert_eq!((last["role"].as_str(), last["content"].as_str()), (Some("user"), Some("and also this")));
    // With no active run, steer simply starts one.
    mock.push([Turn::text("fresh")]);
    let (c, r) = s.post("/v1/runs", json!({"input": "new", "session_id": sid, "if_busy": "steer"})).await;
    assert_eq!(c, 202);
    assert_ne!(r["id"], id.as_str());
    assert!(r.get("steered").is_none());
    assert_eq!(s.wait_run(r["id"].as_str().unwrap()).await["output"], "fresh");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_reaches_a_running_tool_and_queued_runs_never_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("effects.log");
    let mock = MockOpenAi::start(vec![Turn::tool("test_sleep", json!({"ms": 30000}))], 0).await.unwrap();
    let s = Server::start_with(Opts {
        mock: Some(&mock.base_url),
        args: vec!["--enable-test-tools".into(), file.display().to_string()],
        ..Default::default()
    });
    let (_, ses) = s.post("/v1/sessions", json!({})).await;
    let sid = ses["id"].as_str().unwrap();
    let (_, run) = s.post("/v1/runs", json!({"input": "sleep", "session_id": sid})).await;
    let id = run["id"].as_str().unwrap().to_string();
    let (_, queued) = s.post("/v1/runs", json!({"input": "later", "session_id": sid})).await;
    let queued = queued["id"].as_str().unwrap().to_string();
    s.wait_event(&id, "tool.started").await;
    let (c, q) = s.post(&format!("/v1/runs/{queued}/cancel"), json!({})).await;
    assert_eq!((c, q["status"].as_str()), (200, Some("cancelled")));
    let (c, _) = s.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
    assert_eq!(c, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let evs = s.events(&id).await;
    assert_eq!(evs.last().unwrap()["type"], "run.cancelled");
    assert!(!types(&evs).contains(&"tool.result".to_string()), "a tool finishing after cancel cannot revive the run");
    assert_eq!(types(&s.events(&queued).await), ["run.created", "run.cancelled"], "the queued run never started");
    assert_eq!(mock.calls(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_at_a_step_boundary_and_the_run_resumes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("effects.log");
    let mock = MockOpenAi::start(
        vec![Turn::tool("test_append", json!({"delay_ms": 300})), Turn::text("finished after restart")],
        0,
    )
    .await
    .unwrap();
    let s = Server::start_with(opts(&mock.base_url, &data, &file));
    let (_, run) = s.post("/v1/runs", json!({"input": "go"})).await;
    let id = run["id"].as_str().unwrap().to_string();
    s.wait_event(&id, "tool.started").await;
    s.terminate();
    let status = s.wait_exit();
    assert!(status.success(), "{status:?}");
    // The tool finished (its step reached a boundary) and nothing was failed.
    assert_eq!(effects(&file).len(), 1);
    let s = Server::start_with(opts(&mock.base_url, &data, &file));
    let done = s.wait_run(&id).await;
    assert_eq!(done["output"], "finished after restart", "{done}");
    let evs = s.events(&id).await;
    let t = types(&evs);
    assert!(t.contains(&"run.resumed".to_string()));
    assert!(!t.contains(&"run.failed".to_string()));
    let result = evs.iter().find(|e| e["type"] == "tool.result").unwrap();
    assert_eq!(result["data"]["status"], "ok");
    assert_eq!(effects(&file).values().sum::<usize>(), 1, "the tool ran once");
    let _ = Value::Null;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_interrupted_call_can_ask_a_person_before_running_again() {
    let dir = tempfile::tempdir().unwrap();
    let (data, file, cfg) = (dir.path().join("data"), dir.path().join("effects.log"), dir.path().join("agentd.toml"));
    std::fs::write(&cfg, "[agents.default]\non_interrupted = \"ask\"\n").unwrap();
    let mock = MockOpenAi::start(
        vec![Turn::tool("test_append", json!({"line": "once", "delay_ms": 5000})), Turn::text("done")],
        0,
    )
    .await
    .unwrap();
    let o = || Opts { config: Some(&cfg), ..opts(&mock.base_url, &data, &file) };
    let s = Server::start_with(o());
    let (_, run) = s.post("/v1/runs", json!({"input": "append"})).await;
    let id = run["id"].as_str().unwrap().to_string();
    s.wait_event(&id, "tool.started").await;
    drop(s); // SIGKILL while the call sleeps, before it wrote anything
    let s = Server::start_with(o());
    let mut approval = Value::Null;
    for _ in 0..500 {
        let (_, v) = s.get(&format!("/v1/approvals?run_id={id}&status=pending")).await;
        if let Some(a) = v["data"].as_array().and_then(|d| d.first()) {
            approval = a.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(approval["rule"], "interrupted", "{approval}");
    assert!(approval["reasons"][0].as_str().unwrap().contains("outcome is unknown"), "{approval}");
    assert_eq!(s.get(&format!("/v1/runs/{id}")).await.1["status"], "waiting_approval");
    let (c, _) =
        s.post(&format!("/v1/approvals/{}", approval["id"].as_str().unwrap()), json!({"decision": "approve"})).await;
    assert_eq!(c, 200);
    let done = s.wait_run(&id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let lines = effects(&file);
    assert_eq!(lines.values().sum::<usize>(), 1, "run again once, after the person said so: {lines:?}");
    let results: Vec<Value> = s.events(&id).await.into_iter().filter(|e| e["type"] == "tool.result").collect();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["data"]["status"], "ok");
}

/// Approves every pending approval until told to stop (the person in the loop).
async fn approve_all(url: &str) -> usize {
    let http = reqwest::Client::new();
    let Ok(r) = http.get(format!("{url}/v1/approvals?status=pending&limit=100")).send().await else { return 0 };
    let Ok(v) = r.json::<Value>().await else { return 0 };
    let mut n = 0;
    for a in v["data"].as_array().into_iter().flatten() {
        let id = a["id"].as_str().unwrap_or_default();
        let _ = http.post(format!("{url}/v1/approvals/{id}")).json(&json!({"decision": "approve"})).send().await;
        n += 1;
    }
    n
}

/// Finding 2 of the hardening issue: an approved, non-idempotent call that a
/// crash cut off must never run again (it was, up to four times).
async fn sigkill_loop_with_approvals(database: Option<String>) {
    let mock = MockOpenAi::start_full(vec![], 4, ("test_append", json!({"delay_ms": 40})), Duration::from_millis(2))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (data, file, cfg) = (dir.path().join("data"), dir.path().join("effects.log"), dir.path().join("agentd.toml"));
    std::fs::write(&cfg, "[agents.default.policy]\nask = [\"test_append\"]\n").unwrap();
    let mut args = vec!["--enable-test-tools".to_string(), file.display().to_string()];
    if let Some(db) = &database {
        args.extend(["--database".into(), db.clone(), "--node-id".into(), "kill-node".into()]);
    }
    let o = || Opts {
        mock: Some(&mock.base_url),
        data_dir: Some(&data),
        config: Some(&cfg),
        args: args.clone(),
        ..Default::default()
    };
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("approval crash test seed {seed}");
    let mut rng = Lcg(seed);
    let mut runs: Vec<String> = vec![];
    for _ in 0..30 {
        let s = Server::start_with(o());
        let (_, open) = s.get("/v1/runs?status=running&limit=100").await;
        let (_, waiting) = s.get("/v1/runs?status=waiting_approval&limit=100").await;
        let n = open["data"].as_array().unwrap().len() + waiting["data"].as_array().unwrap().len();
        for _ in n..3 {
            let (c, r) = s.post("/v1/runs", json!({"input": "work", "max_steps": 20})).await;
            assert_eq!(c, 202, "{r}");
            runs.push(r["id"].as_str().unwrap().to_string());
        }
        // Approve as fast as a script can, so kills land right after approvals.
        let until = tokio::time::Instant::now() + Duration::from_millis(20 + rng.next(150));
        while tokio::time::Instant::now() < until {
            approve_all(&s.url).await;
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        drop(s); // SIGKILL
    }
    let s = Server::start_with(o());
    for id in &runs {
        let mut run = Value::Null;
        for _ in 0..3000 {
            approve_all(&s.url).await;
            run = s.get(&format!("/v1/runs/{id}")).await.1;
            if ["completed", "failed", "cancelled"].contains(&run["status"].as_str().unwrap_or_default()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(run["status"], "completed", "run {id}: {run}");
    }
    let seen = effects(&file);
    let (mut interrupted, mut approved) = (0, 0);
    for id in &runs {
        let evs = s.events(id).await;
        approved += evs.iter().filter(|e| e["type"] == "approval.resolved").count();
        for e in evs.iter().filter(|e| e["type"] == "tool.result") {
            let call = e["data"]["call_id"].as_str().unwrap();
            let written = seen.get(&format!("{id} {call}")).copied().unwrap_or(0);
            assert!(written <= 1, "run {id} call {call}: an approved effect happened {written} times");
            match e["data"]["status"].as_str().unwrap() {
                "ok" => assert_eq!(written, 1, "run {id} call {call}: ok but no effect"),
                "interrupted" => interrupted += 1,
                other => panic!("run {id} call {call}: unexpected status {other}"),
            }
        }
        let starts: Vec<&str> =
            evs.iter().filter(|e| e["type"] == "tool.started").filter_map(|e| e["data"]["call_id"].as_str()).collect();
        let unique: std::collections::HashSet<&&str> = starts.iter().collect();
        assert_eq!(starts.len(), unique.len(), "run {id}: a call started twice: {starts:?}");
    }
    eprintln!("{} runs, {approved} approvals, {interrupted} interrupted calls", runs.len());
    assert!(approved > 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_approvals_never_repeats_an_approved_call_sqlite() {
    sigkill_loop_with_approvals(None).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_after_approvals_never_repeats_an_approved_call_postgres() {
    sigkill_loop_with_approvals(Some(common::fresh_pg_database().await)).await;
}

/// Every run of a tree, root first.
async fn tree_of(s: &Server, root: &str) -> Vec<Value> {
    let (mut out, mut todo) = (vec![], vec![root.to_string()]);
    while let Some(id) = todo.pop() {
        let (_, run) = s.get(&format!("/v1/runs/{id}")).await;
        out.push(run);
        let (c, kids) = s.get(&format!("/v1/runs/{id}/children")).await;
        assert_eq!(c, 200, "{kids}");
        for k in kids["data"].as_array().unwrap() {
            todo.push(k["id"].as_str().unwrap().to_string());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_anywhere_in_a_delegation_finishes_every_run_once() {
    // A parent spawns two children, collects them, then delegates to a
    // third; every child makes two calls to a non-idempotent tool.
    let mock = MockOpenAi::start_with_latency(vec![], 0, Duration::from_millis(8)).await.unwrap();
    let append = || Turn::tool("test_append", json!({"delay_ms": 10}));
    mock.rule(
        "TREE-P",
        vec![
            Turn::ToolCalls(vec![
                ("spawn".into(), json!({"task": "TREE-C a"})),
                ("spawn".into(), json!({"task": "TREE-C b"})),
            ]),
            Turn::tool("wait_children", json!({})),
            Turn::tool("delegate", json!({"task": "TREE-C c"})),
            Turn::text("parent done"),
        ],
    );
    mock.rule("TREE-C", vec![append(), append(), Turn::text("child done")]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let file = dir.path().join("effects.log");
    let seed = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64;
    eprintln!("delegation crash test seed {seed}");
    let mut rng = Lcg(seed);
    let mut roots: Vec<String> = vec![];
    let mut kills = 0;
    while kills < 30 {
        let s = Server::start_with(opts(&mock.base_url, &data, &file));
        if roots.len() < 12 && kills % 3 == 0 {
            let (c, r) = s.post("/v1/runs", json!({"input": "TREE-P go", "max_steps": 10})).await;
            assert_eq!(c, 202, "{r}");
            roots.push(r["id"].as_str().unwrap().to_string());
        }
        tokio::time::sleep(Duration::from_millis(20 + rng.next(150))).await;
        drop(s); // SIGKILL
        kills += 1;
    }
    let s = Server::start_with(opts(&mock.base_url, &data, &file));
    for root in &roots {
        s.wait_run(root).await;
    }
    // Every tree is done (a root ends after its children): the effects are all written.
    let seen = effects(&file);
    let (mut children, mut interrupted) = (0, 0);
    for root in &roots {
        let run = s.wait_run(root).await;
        assert_eq!(run["status"], "completed", "root {root}: {run}");
        let evs = s.events(root).await;
        let brief: Vec<String> = evs.iter().map(|e| format!("{} {}", e["type"], e["data"]["step"])).collect();
        assert_eq!(run["output"], "parent done", "root {root}: {brief:#?}");
        let tree = tree_of(&s, root).await;
        // Exactly three children, each created once (a second creation would be a fourth).
        assert_eq!(tree.len(), 4, "root {root}: {tree:?}");
        let count = |t: &str| evs.iter().filter(|e| e["type"] == t).count();
        assert_eq!(count("child.spawned"), 3, "root {root}");
        // Woken once per wait: every `children.waiting` has one `children.done`.
        assert_eq!(count("children.done"), 2, "root {root}: {:?}", types(&evs));
        let mut waits = 0;
        for e in &evs {
            match e["type"].as_str().unwrap() {
                "children.waiting" => waits += 1,
                "children.done" => {
                    assert!(waits > 0, "woken without waiting");
                    waits = 0;
                }
                _ => {}
            }
        }
        for kid in &tree[1..] {
            children += 1;
            let id = kid["id"].as_str().unwrap();
            assert_eq!(kid["status"], "completed", "child {id}: {kid}");
            for e in s.events(id).await.iter().filter(|e| e["type"] == "tool.result") {
                let call = e["data"]["call_id"].as_str().unwrap();
                let written = seen.get(&format!("{id} {call}")).copied().unwrap_or(0);
                assert!(written <= 1, "child {id} call {call}: side effect happened {written} times");
                match e["data"]["status"].as_str().unwrap() {
                    "ok" => assert_eq!(written, 1, "child {id} call {call}: ok without its effect"),
                    "interrupted" => interrupted += 1,
                    other => panic!("child {id} call {call}: {other}"),
                }
            }
        }
    }
    eprintln!("{} trees, {children} children, {kills} kills, {interrupted} interrupted calls", roots.len());
}
