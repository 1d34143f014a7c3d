//! Child runs end to end: delegate / spawn / wait_children with the mock
//! model, limits and ceilings, cancellation of a tree, the SSE tree.

use std::time::Duration;

use crate::common::{Opts, Server, types};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::{Value, json};

fn delegate(task: &str) -> Turn {
    Turn::tool("delegate", json!({"task": task}))
}

async fn children(s: &Server, id: &str) -> Vec<Value> {
    let (c, body) = s.get(&format!("/v1/runs/{id}/children")).await;
    assert_eq!(c, 200, "{body}");
    body["data"].as_array().cloned().unwrap_or_default()
}

#[tokio::test]
async fn a_delegated_answer_becomes_the_parents_tool_result() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("PARENT-A", vec![delegate("CHILD-A find the number"), Turn::text("parent got: {tool}")]);
    mock.rule("CHILD-A", vec![Turn::text("the number is 42")]);
    let s = Server::start(&mock.base_url);
    let (c, r) = s.post("/v1/runs", json!({"input": "PARENT-A go"})).await;
    assert_eq!(c, 202, "{r}");
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["output"], "parent got: the number is 42");
    assert_eq!(run["depth"], 0);
    assert_eq!(run["root_run_id"], id);
    assert!(run["parent_run_id"].is_null());

    let kids = children(&s, id).await;
    assert_eq!(kids.len(), 1, "{kids:?}");
    let child = &kids[0];
    assert_eq!(child["parent_run_id"], id);
    assert_eq!(child["root_run_id"], id);
    assert_eq!(child["depth"], 1);
    assert_eq!(child["status"], "completed");
    assert_ne!(child["session_id"], run["session_id"], "a child converses in its own session");
    // The parent's usage rolls up its child's.
    let own = run["usage"]["total_tokens"].as_u64().unwrap();
    let tree = run["tree_usage"]["total_tokens"].as_u64().unwrap();
    assert_eq!(tree, own + child["usage"]["total_tokens"].as_u64().unwrap(), "{run}");

    let evs = s.events(id).await;
    let ts = types(&evs);
    let pos = |t: &str| ts.iter().position(|x| x == t).unwrap_or_else(|| panic!("no {t} in {ts:?}"));
    assert!(pos("child.spawned") < pos("children.waiting"));
    assert!(pos("children.waiting") < pos("children.done"));
    assert!(pos("children.done") < pos("run.resumed"));
    assert_eq!(ts.iter().filter(|t| *t == "children.done").count(), 1, "woken once: {ts:?}");
    let result = evs.iter().find(|e| e["type"] == "tool.result").unwrap();
    assert_eq!(result["data"]["children"], json!([child["id"]]));
    assert_eq!(result["data"]["is_error"], false);
}

#[tokio::test]
async fn a_failed_child_is_a_tool_error_for_the_parents_model() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("PARENT-F", vec![delegate("CHILD-F break"), Turn::text("parent saw: {tool}")]);
    mock.rule("CHILD-F", vec![Turn::Status(400, "bad request from the provider".into())]);
    let s = Server::start(&mock.base_url);
    let (_, r) = s.post("/v1/runs", json!({"input": "PARENT-F go"})).await;
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed", "a child's failure is not the parent's: {run}");
    let out = run["output"].as_str().unwrap();
    assert!(out.starts_with("parent saw: the child run") && out.contains("failed"), "{out}");
    let evs = s.events(id).await;
    let result = evs.iter().find(|e| e["type"] == "tool.result").unwrap();
    assert_eq!(result["data"]["is_error"], true, "{result}");
    let kids = children(&s, id).await;
    assert_eq!(kids[0]["status"], "failed");
}

#[tokio::test]
async fn nested_delegation_reaches_depth_three_and_is_refused_at_depth_four() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("LEVEL-0", vec![delegate("LEVEL-1"), Turn::text("0<{tool}>")]);
    mock.rule("LEVEL-1", vec![delegate("LEVEL-2"), Turn::text("1<{tool}>")]);
    mock.rule("LEVEL-2", vec![delegate("LEVEL-3"), Turn::text("2<{tool}>")]);
    mock.rule("LEVEL-3", vec![delegate("LEVEL-4"), Turn::text("3<{tool}>")]);
    mock.rule("LEVEL-4", vec![Turn::text("never")]);
    let s = Server::start(&mock.base_url);
    let (_, r) = s.post("/v1/runs", json!({"input": "LEVEL-0"})).await;
    let id = r["id"].as_str().unwrap().to_string();
    let run = s.wait_run(&id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let out = run["output"].as_str().unwrap();
    assert!(out.starts_with("0<1<2<3<refused: this run is at depth 3"), "{out}");
    // The chain: one child per level, depths 1..=3, one root.
    let mut at = id.clone();
    for depth in 1..=3 {
        let kids = children(&s, &at).await;
        assert_eq!(kids.len(), 1, "depth {depth}: {kids:?}");
        assert_eq!(kids[0]["depth"], depth);
        assert_eq!(kids[0]["root_run_id"], id.as_str());
        assert_eq!(kids[0]["status"], "completed");
        at = kids[0]["id"].as_str().unwrap().to_string();
    }
    assert!(children(&s, &at).await.is_empty(), "depth 4 was never created");
    let refused = s.events(&at).await.into_iter().find(|e| e["type"] == "tool.result").unwrap();
    assert_eq!(refused["data"]["status"], "denied");
}

#[tokio::test]
async fn spawned_children_are_collected_in_one_message() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule(
        "PARENT-S",
        vec![
            Turn::ToolCalls(vec![
                ("spawn".into(), json!({"task": "CHILD-S1 one"})),
                ("spawn".into(), json!({"task": "CHILD-S2 two"})),
            ]),
            Turn::tool("wait_children", json!({})),
            Turn::text("all: {tool}"),
        ],
    );
    mock.rule("CHILD-S1", vec![Turn::text("first answer")]);
    mock.rule("CHILD-S2", vec![Turn::text("second answer")]);
    let s = Server::start(&mock.base_url);
    let (_, r) = s.post("/v1/runs", json!({"input": "PARENT-S go"})).await;
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let out = run["output"].as_str().unwrap();
    assert!(out.contains("Answers of 2 child runs") && out.contains("first answer") && out.contains("second answer"));
    let evs = s.events(id).await;
    let spawn_results: Vec<&Value> =
        evs.iter().filter(|e| e["type"] == "tool.result" && e["data"]["name"] == "spawn").collect();
    assert_eq!(spawn_results.len(), 2);
    let wait = evs.iter().find(|e| e["type"] == "tool.result" && e["data"]["name"] == "wait_children").unwrap();
    assert_eq!(wait["data"]["children"].as_array().unwrap().len(), 2);
    assert!(types(&evs).iter().filter(|t| *t == "children.done").count() <= 1);
}

#[tokio::test]
async fn ceilings_refuse_a_tool_the_parent_lacks_and_the_parents_deny_rule_binds_the_child() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(
        &cfg,
        r#"
[agents.lead]
tools = ["delegate", "echo", "current_time"]
[agents.lead.policy]
deny = ["current_time"]
"#,
    )
    .unwrap();
    // Asks for a tool it does not have: refused before any child exists.
    mock.rule(
        "PARENT-C1",
        vec![Turn::tool("delegate", json!({"task": "CHILD-C1", "tools": ["shell"]})), Turn::text("{tool}")],
    );
    // A child of a parent that denies current_time cannot call it either.
    mock.rule("PARENT-C2", vec![Turn::tool("delegate", json!({"task": "CHILD-C2"})), Turn::text("{tool}")]);
    mock.rule("CHILD-C2", vec![Turn::tool("current_time", json!({})), Turn::text("child saw: {tool}")]);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, r) = s.post("/v1/runs", json!({"input": "PARENT-C1", "agent": "lead"})).await;
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    assert!(run["output"].as_str().unwrap().contains("\"shell\" is not available to this run"), "{run}");
    assert!(children(&s, id).await.is_empty());

    let (_, r) = s.post("/v1/runs", json!({"input": "PARENT-C2", "agent": "lead"})).await;
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let kid = &children(&s, id).await[0];
    let evs = s.events(kid["id"].as_str().unwrap()).await;
    let policy = evs.iter().find(|e| e["type"] == "tool.policy").unwrap();
    assert_eq!(policy["data"]["decision"], "deny", "{policy}");
    let created = evs.iter().find(|e| e["type"] == "run.created").unwrap();
    let tools: Vec<&str> =
        created["data"]["ceiling"]["tools"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(tools.contains(&"echo") && !tools.contains(&"shell"), "{tools:?}");
    // The child's request offered only the ceiling's tools.
    let child_req = mock.requests().into_iter().find(|b| b["messages"].to_string().contains("CHILD-C2")).unwrap();
    let offered: Vec<String> =
        child_req["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap().into()).collect();
    assert!(!offered.contains(&"shell".to_string()), "{offered:?}");
}

#[tokio::test]
async fn the_concurrency_cap_holds_excess_children_back() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default.limits]\nmax_concurrent_children = 2\n").unwrap();
    let calls: Vec<(String, Value)> =
        (0..5).map(|i| ("delegate".to_string(), json!({"task": format!("CHILD-Q{i} slow")}))).collect();
    mock.rule("PARENT-Q", vec![Turn::ToolCalls(calls), Turn::text("{tool}")]);
    for i in 0..5 {
        mock.rule(&format!("CHILD-Q{i}"), vec![Turn::Slow(Duration::from_millis(300), format!("q{i}"))]);
    }
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, r) = s.post("/v1/runs", json!({"input": "PARENT-Q go"})).await;
    let id = r["id"].as_str().unwrap();
    let mut most = 0;
    loop {
        let kids = children(&s, id).await;
        let running = kids.iter().filter(|k| k["status"] == "running").count();
        most = most.max(running);
        assert!(running <= 2, "{running} children ran at once");
        let (_, run) = s.get(&format!("/v1/runs/{id}")).await;
        if run["status"] == "completed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(most, 2, "the cap was reached");
    let kids = children(&s, id).await;
    assert_eq!(kids.len(), 5);
    assert!(kids.iter().all(|k| k["status"] == "completed"));
    let evs = s.events(id).await;
    let held = evs.iter().filter(|e| e["type"] == "child.spawned" && e["data"]["held"] == true).count();
    assert_eq!(held, 3, "three of five were held back");
}

#[tokio::test]
async fn a_spawn_over_the_cap_says_its_child_is_held() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default.limits]\nmax_concurrent_children = 1\n").unwrap();
    let spawns = (0..2).map(|i| ("spawn".to_string(), json!({"task": format!("CHILD-H{i}")}))).collect();
    mock.rule("PARENT-H", vec![Turn::ToolCalls(spawns), Turn::tool("wait_children", json!({})), Turn::text("ok")]);
    mock.rule("CHILD-H", vec![Turn::Slow(Duration::from_millis(200), "h".into())]);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, r) = s.post("/v1/runs", json!({"input": "PARENT-H"})).await;
    let id = r["id"].as_str().unwrap();
    assert_eq!(s.wait_run(id).await["status"], "completed");
    let statuses: Vec<String> = s
        .events(id)
        .await
        .iter()
        .filter(|e| e["type"] == "tool.result" && e["data"]["name"] == "spawn")
        .map(|e| {
            serde_json::from_str::<Value>(e["data"]["content"][0]["text"].as_str().unwrap()).unwrap()["status"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(statuses, ["started", "held until a sibling ends"]);
}

#[tokio::test]
async fn a_child_over_its_wall_time_fails_timed_out_and_the_parent_goes_on() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default.limits]\nchild_max_wall_secs = 1\n").unwrap();
    mock.rule("PARENT-T", vec![delegate("CHILD-T sleepy"), Turn::text("parent: {tool}")]);
    mock.rule("CHILD-T", vec![Turn::Slow(Duration::from_secs(5), "too late".into())]);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, r) = s.post("/v1/runs", json!({"input": "PARENT-T go"})).await;
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed", "{run}");
    assert!(run["output"].as_str().unwrap().contains("timed_out"), "{run}");
    let kid = &children(&s, id).await[0];
    assert_eq!(kid["status"], "failed");
    assert_eq!(kid["error"]["code"], "timed_out");
    assert!(!run["output"].as_str().unwrap().contains("too late"), "the late answer is ignored");
}

#[tokio::test]
async fn cancelling_a_parent_cancels_its_whole_subtree() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("ROOT-X", vec![delegate("MID-X"), Turn::text("{tool}")]);
    mock.rule("MID-X", vec![delegate("LEAF-X"), Turn::text("{tool}")]);
    mock.rule("LEAF-X", vec![Turn::Slow(Duration::from_secs(30), "never".into())]);
    let s = Server::start(&mock.base_url);
    let (_, r) = s.post("/v1/runs", json!({"input": "ROOT-X"})).await;
    let id = r["id"].as_str().unwrap();
    let leaf = loop {
        let mid = children(&s, id).await;
        if let Some(m) = mid.first() {
            let leaves = children(&s, m["id"].as_str().unwrap()).await;
            if let Some(l) = leaves.first().filter(|l| l["status"] == "running") {
                break (m["id"].as_str().unwrap().to_string(), l["id"].as_str().unwrap().to_string());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let (c, run) = s.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
    assert_eq!(c, 200, "{run}");
    for rid in [id, leaf.0.as_str(), leaf.1.as_str()] {
        let run = s.wait_run(rid).await;
        assert_eq!(run["status"], "cancelled", "{run}");
    }
}

#[tokio::test]
async fn a_message_injected_into_a_waiting_parent_is_taken_at_its_next_step() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("PARENT-I", vec![delegate("CHILD-I slow"), Turn::text("parent answered")]);
    mock.rule("CHILD-I", vec![Turn::Slow(Duration::from_millis(800), "child done".into())]);
    let s = Server::start(&mock.base_url);
    let (_, r) = s.post("/v1/runs", json!({"input": "PARENT-I go"})).await;
    let id = r["id"].as_str().unwrap();
    loop {
        let (_, run) = s.get(&format!("/v1/runs/{id}")).await;
        if run["status"] == "waiting_children" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let (c, body) = s.post(&format!("/v1/runs/{id}/messages"), json!({"input": "also mention the weather"})).await;
    assert_eq!(c, 202, "{body}");
    assert!(body["queued_seq"].as_i64().unwrap() > 0);
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed");
    let ts = types(&s.events(id).await);
    let queued = ts.iter().position(|t| t == "input.queued").unwrap();
    let steered = ts.iter().position(|t| t == "run.steered").unwrap();
    assert!(queued < steered && ts.iter().position(|t| t == "children.done").unwrap() < steered, "{ts:?}");
    // Finished runs and bad bodies are refused with a machine-readable error.
    let (c, body) = s.post(&format!("/v1/runs/{id}/messages"), json!({"input": "late"})).await;
    assert_eq!((c, body["error"]["code"].as_str()), (409, Some("run_already_finished")), "{body}");
    let (c, body) = s.post(&format!("/v1/runs/{id}/messages"), json!({"input": " "})).await;
    assert_eq!(c, 400, "{body}");
    let (c, _) = s.post("/v1/runs/run_nope/messages", json!({"input": "x"})).await;
    assert_eq!(c, 404);
}

#[tokio::test]
async fn the_parents_stream_carries_its_whole_tree_as_nested_frames() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("ROOT-S", vec![delegate("MID-S"), Turn::text("root: {tool}")]);
    mock.rule("MID-S", vec![delegate("LEAF-S"), Turn::text("mid: {tool}")]);
    mock.rule("LEAF-S", vec![Turn::tool("echo", json!({"x": 1})), Turn::text("leaf")]);
    let s = Server::start(&mock.base_url);
    let resp = s
        .req(reqwest::Method::POST, "/v1/runs")
        .json(&json!({"input": "ROOT-S", "stream": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let frames = crate::common::frames(resp).await;
    let own: Vec<&str> = frames.iter().filter(|f| !f.id.is_empty()).map(|f| f.event.as_str()).collect();
    assert_eq!(own.last(), Some(&"run.completed"), "{own:?}");
    let nested: Vec<&crate::common::Frame> = frames.iter().filter(|f| f.event == "child.event").collect();
    assert!(nested.iter().all(|f| f.id.is_empty()), "nested frames carry no id: the cursor is the parent's");
    let root = frames[0].data["run_id"].as_str().unwrap().to_string();
    let mid = nested.iter().find(|f| f.data["parent_run_id"] == root.as_str()).unwrap().data["child_run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let of = |run: &str| -> Vec<String> {
        nested
            .iter()
            .filter(|f| f.data["child_run_id"] == run)
            .map(|f| f.data["event"]["type"].as_str().unwrap().to_string())
            .collect()
    };
    let mid_types = of(&mid);
    assert_eq!(mid_types.first().map(String::as_str), Some("run.created"), "{mid_types:?}");
    assert_eq!(mid_types.last().map(String::as_str), Some("run.completed"), "{mid_types:?}");
    // The grandchild's events come through the child, tagged with their parent.
    let leaf = nested.iter().find(|f| f.data["parent_run_id"] == mid.as_str()).unwrap();
    let leaf_types = of(leaf.data["child_run_id"].as_str().unwrap());
    assert!(leaf_types.contains(&"tool.result".to_string()) && leaf_types.last().unwrap() == "run.completed");
    // Seqs of each nested run arrive in order, without gaps.
    let seqs: Vec<i64> = nested
        .iter()
        .filter(|f| f.data["child_run_id"] == mid.as_str())
        .map(|f| f.data["event"]["seq"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, (1..=seqs.len() as i64).collect::<Vec<_>>());
}

#[tokio::test]
async fn a_token_budget_covers_the_whole_tree() {
    // Every model answer of the mock costs 15 tokens.
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default.limits]\nmax_tokens = 40\n[agents.default.policy]\nask = [\"shell\"]\n")
        .unwrap();
    mock.rule("PARENT-B", vec![delegate("CHILD-B"), Turn::text("parent: {tool}")]);
    mock.rule(
        "CHILD-B",
        vec![Turn::tool("echo", json!({"a": 1})), Turn::tool("echo", json!({"a": 2})), Turn::text("x")],
    );
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, r) = s.post("/v1/runs", json!({"input": "PARENT-B"})).await;
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    let kid = &children(&s, id).await[0];
    // The child got what the parent had left (40 - 15) and stopped when it was spent.
    let created = s.events(kid["id"].as_str().unwrap()).await.into_iter().find(|e| e["type"] == "run.created").unwrap();
    assert_eq!(created["data"]["ceiling"]["max_tokens"], 25, "{created}");
    assert_eq!(created["data"]["ceiling"]["ask"], json!(["shell"]), "the parent's ask rules bind the child");
    assert_eq!(kid["status"], "failed", "{kid}");
    assert_eq!(kid["error"]["code"], "budget_exceeded");
    assert_eq!(kid["usage"]["total_tokens"], 30);
    // Its usage counts against the parent, which is over its budget too.
    assert_eq!(run["tree_usage"]["total_tokens"], 45, "{run}");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["code"], "budget_exceeded");
}

#[tokio::test]
async fn a_cost_budget_covers_the_whole_tree() {
    // Every answer: 10 input and 5 output tokens at $3 / $15 per million = $0.000105.
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(
        &cfg,
        format!(
            "default_model = \"priced\"\n[providers.p]\nbase_url = \"{}\"\n\
             [models.priced]\nprovider = \"p\"\nmodel = \"m\"\nprice = {{ input_per_mtok = 3.0, output_per_mtok = 15.0 }}\n\
             [agents.default.limits]\nmax_cost_usd = 0.0003\n",
            mock.base_url
        ),
    )
    .unwrap();
    mock.rule("PARENT-USD", vec![delegate("CHILD-USD"), Turn::text("parent: {tool}")]);
    mock.rule(
        "CHILD-USD",
        vec![Turn::tool("echo", json!({"a": 1})), Turn::tool("echo", json!({"a": 2})), Turn::text("x")],
    );
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let (c, r) = s.post("/v1/runs", json!({"input": "PARENT-USD"})).await;
    assert_eq!(c, 202, "{r}");
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    let kid = &children(&s, id).await[0];
    let created = s.events(kid["id"].as_str().unwrap()).await.into_iter().find(|e| e["type"] == "run.created").unwrap();
    let given = created["data"]["ceiling"]["max_cost_usd"].as_f64().unwrap();
    assert!((given - 0.000195).abs() < 1e-9, "the child got what the parent had left: {given}");
    assert_eq!(
        (kid["status"].as_str(), kid["error"]["code"].as_str()),
        (Some("failed"), Some("budget_exceeded")),
        "{kid}"
    );
    let tree = run["tree_cost_usd"].as_f64().unwrap();
    assert!((tree - 3.0 * 0.000105).abs() < 1e-9, "one parent call and two child calls: {run}");
    assert_eq!(
        (run["status"].as_str(), run["error"]["code"].as_str()),
        (Some("failed"), Some("budget_exceeded")),
        "{run}"
    );
}
