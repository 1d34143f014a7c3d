//! Builtin tools through the real server: direct calls, workspace
//! confinement, the shell sandbox, schema errors, tools inside a run.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use crate::common::{Opts, Server, types};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::{Value, json};

async fn call(s: &Server, name: &str, args: Value) -> (u16, Value) {
    s.post(&format!("/v1/tools/{name}/call"), json!({ "arguments": args })).await
}

fn text(v: &Value) -> String {
    v["content"].as_array().unwrap().iter().filter_map(|c| c["text"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_are_listed_with_source_and_schema() {
    let s = Server::start_with(Opts::default());
    let (c, v) = s.get("/v1/tools").await;
    assert_eq!(c, 200);
    let names: Vec<&str> = v["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    for want in [
        "read_file",
        "write_file",
        "edit_file",
        "list_dir",
        "glob",
        "grep",
        "shell",
        "http_fetch",
        "current_time",
        "echo",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    let read = v["data"].as_array().unwrap().iter().find(|t| t["name"] == "read_file").unwrap();
    assert_eq!(read["source"], "builtin");
    assert_eq!(read["input_schema"]["required"], json!(["path"]));
}

#[tokio::test(flavor = "multi_thread")]
async fn file_tools_work_inside_the_workspace() {
    let s = Server::start_with(Opts::default());
    let (c, v) = call(&s, "write_file", json!({"path": "notes/a.txt", "content": "alpha\nbeta\ngamma\nbeta\n"})).await;
    assert_eq!((c, v["is_error"].as_bool()), (200, Some(false)), "{v}");
    let (_, v) = call(&s, "read_file", json!({"path": "notes/a.txt", "offset": 2, "limit": 2})).await;
    assert!(text(&v).starts_with("beta\ngamma"), "{v}");
    assert!(text(&v).contains("more lines"), "{v}");
    let (_, v) = call(&s, "edit_file", json!({"path": "notes/a.txt", "old": "beta", "new": "BETA"})).await;
    assert_eq!(v["is_error"], true);
    assert!(text(&v).contains("ambiguous"), "{v}");
    let (_, v) = call(&s, "edit_file", json!({"path": "notes/a.txt", "old": "delta", "new": "x"})).await;
    assert!(text(&v).contains("not found"), "{v}");
    let (_, v) = call(&s, "edit_file", json!({"path": "notes/a.txt", "old": "gamma", "new": "GAMMA"})).await;
    assert_eq!(v["is_error"], false, "{v}");
    let (_, v) = call(&s, "grep", json!({"pattern": "^G.MMA$"})).await;
    assert_eq!(text(&v).trim(), "notes/a.txt:3:GAMMA");
    let (_, v) = call(&s, "glob", json!({"pattern": "**/*.txt"})).await;
    assert_eq!(text(&v).trim(), "notes/a.txt");
    let (_, v) = call(&s, "list_dir", json!({})).await;
    assert_eq!(text(&v).trim(), "notes/");
    let (c, v) = s.post("/v1/tools/echo/call?format=json", json!({"arguments": {"k": [1, 2]}})).await;
    assert_eq!((c, &v["json"]), (200, &json!({"k": [1, 2]})));
    // Direct calls are journaled, newest first.
    let (_, calls) = s.get("/v1/tool-calls?limit=2").await;
    assert_eq!(calls["data"][0]["tool"], "echo");
    assert_eq!(calls["data"][0]["arguments"], json!({"k": [1, 2]}));
    assert_eq!(calls["data"][1]["tool"], "list_dir");
    assert!(calls["next_cursor"].is_string());
    // A session has its own workspace.
    let (_, ses) = s.post("/v1/sessions", json!({})).await;
    let (_, v) = s.post("/v1/tools/list_dir/call", json!({"arguments": {}, "session_id": ses["id"]})).await;
    assert_eq!(text(&v), "(empty)");
}

#[tokio::test(flavor = "multi_thread")]
async fn workspace_escapes_are_refused() {
    // The fence is tested here, not the gate: the guard would stop most of these first.
    let (_dir, cfg) = gate_open();
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    // The tenant's scratch workspace, with a symlink planted to /etc.
    let ws = s.data_dir.join("workspaces/default/default/default/_scratch");
    std::fs::create_dir_all(&ws).unwrap();
    std::os::unix::fs::symlink("/etc", ws.join("etc")).unwrap();
    for (tool, args, why) in [
        ("read_file", json!({"path": "../../../../../../etc/passwd"}), "outside"),
        ("read_file", json!({"path": "/etc/passwd"}), "absolute"),
        ("read_file", json!({"path": "etc/passwd"}), "outside"),
        ("write_file", json!({"path": "../escape.txt", "content": "x"}), "outside"),
        ("write_file", json!({"path": "etc/evil", "content": "x"}), "outside"),
        ("list_dir", json!({"path": ".."}), "outside"),
        ("grep", json!({"pattern": "root", "path": "etc"}), "outside"),
        ("glob", json!({"pattern": "../*"}), ".."),
    ] {
        let (c, v) = call(&s, tool, args.clone()).await;
        assert_eq!(c, 200, "{tool} {args}: {v}");
        assert_eq!(v["is_error"], true, "{tool} {args} was not refused: {v}");
        assert!(text(&v).contains(why), "{tool} {args}: {v}");
    }
    assert!(!s.data_dir.join("workspaces/default/default/default/escape.txt").exists());
    // NUL never gets past the API (a model's NUL path is refused by the workspace).
    let (c, v) = call(&s, "read_file", json!({"path": "a\u{0}b"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_arguments_and_unknown_tools() {
    let s = Server::start_with(Opts::default());
    let (c, v) = call(&s, "read_file", json!({"path": 7})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_arguments")), "{v}");
    assert_eq!(v["error"]["field"], "/path");
    assert!(v["error"]["message"].as_str().unwrap().contains("/path"));
    let (c, v) = call(&s, "write_file", json!({"path": "x"})).await;
    assert_eq!((c, v["error"]["field"].as_str()), (400, Some("/content")), "{v}");
    let (c, v) = call(&s, "read_file", json!({"path": "x", "bogus": 1})).await;
    assert_eq!(c, 400, "{v}");
    let (c, v) = call(&s, "no_such_tool", json!({})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (404, Some("tool_not_found")));
    let (c, v) = s.post("/v1/tools/echo/call", json!({"arguments": [1]})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_arguments")), "{v}");
    let (c, v) = s.post("/v1/tools/echo/call", json!({"arguments": {}, "session_id": "ses_nope"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (404, Some("session_not_found")));
}

#[tokio::test(flavor = "multi_thread")]
async fn shell_runs_sandboxed_with_limits() {
    let (_dir, cfg) = gate_open();
    let s = Server::start_with(Opts {
        env: vec![("AGENTD_SECRET_FOR_TEST".into(), "hunter2".into())],
        config: Some(&cfg),
        ..Default::default()
    });
    let (_, v) = call(&s, "shell", json!({"command": "echo hi > out.txt && cat out.txt && pwd"})).await;
    assert_eq!(v["is_error"], false, "{v}");
    let t = text(&v);
    assert!(t.starts_with("exit code: 0") && t.contains("hi"), "{t}");
    assert!(s.data_dir.join("workspaces/default/default/default/_scratch/out.txt").exists());
    // The rest of the system is read-only, the network is gone, the environment is clean.
    let (_, v) = call(&s, "shell", json!({"argv": ["touch", "/usr/agentd-sandbox-test"]})).await;
    assert_eq!(v["is_error"], true, "{v}");
    assert!(!std::path::Path::new("/usr/agentd-sandbox-test").exists());
    let (_, v) = call(&s, "shell", json!({"command": "cat /proc/net/dev | grep -c ':' ; env"})).await;
    let t = text(&v);
    assert!(!t.contains("hunter2") && !t.contains("OPENAI_API_KEY"), "{t}");
    assert!(t.contains("\n1\n"), "only the loopback interface: {t}");
    let (_, v) = call(&s, "shell", json!({"command": "exit 3"})).await;
    assert_eq!(v["is_error"], true);
    assert!(text(&v).starts_with("exit code: 3"));
    let (_, v) = call(&s, "shell", json!({"command": "sleep 30", "timeout_ms": 300})).await;
    assert!(text(&v).contains("timed out"), "{v}");
    let (c, _) = call(&s, "shell", json!({"command": "x", "argv": ["y"]})).await;
    assert_eq!(c, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn http_fetch_reads_a_loopback_page() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    // Loopback addresses are high risk by default (a person must approve).
    let (_dir, cfg) = gate_open();
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let (_, v) = call(&s, "http_fetch", json!({"url": format!("{}/models", mock.base_url)})).await;
    assert_eq!(v["is_error"], false, "{v}");
    assert!(text(&v).starts_with("HTTP 200") && text(&v).contains("mock-model"), "{v}");
    let (_, v) = call(&s, "http_fetch", json!({"url": format!("{}/nothing", mock.base_url)})).await;
    assert_eq!(v["is_error"], true);
    let (c, _) = call(&s, "http_fetch", json!({"url": "file:///etc/passwd"})).await;
    assert_eq!(c, 400, "only http(s) URLs pass the schema");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_writes_and_reads_its_session_workspace() {
    let mock = MockOpenAi::start(
        vec![
            Turn::tool("write_file", json!({"path": "plan.md", "content": "step one"})),
            Turn::tool("read_file", json!({"path": "plan.md"})),
            Turn::tool("read_file", json!({"path": 5})),
            Turn::text("done"),
        ],
        0,
    )
    .await
    .unwrap();
    let s = Server::start(&mock.base_url);
    let (_, run) = s.post("/v1/runs", json!({"input": "plan"})).await;
    let id = run["id"].as_str().unwrap();
    let done = s.wait_run(id).await;
    assert_eq!(done["status"], "completed");
    let sid = done["session_id"].as_str().unwrap();
    let file = s.data_dir.join(format!("workspaces/default/default/default/{sid}/plan.md"));
    assert_eq!(std::fs::read_to_string(file).unwrap(), "step one");
    let evs = s.events(id).await;
    let results: Vec<&Value> = evs.iter().filter(|e| e["type"] == "tool.result").collect();
    assert_eq!(results[1]["data"]["content"][0]["text"], "step one");
    assert_eq!(results[2]["data"]["is_error"], true, "schema violations reach the model as errors");
    assert!(results[2]["data"]["content"][0]["text"].as_str().unwrap().contains("/path"));
    assert!(types(&evs).contains(&"run.completed".to_string()));
}

#[tokio::test(flavor = "multi_thread")]
async fn agent_tool_lists_accept_globs() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default]\ntools = [\"echo\", \"*_file\"]\n").unwrap();
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let (_, v) = s.get("/v1/tools").await;
    let mut names: Vec<&str> = v["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["echo", "edit_file", "read_file", "write_file"]);
    let (c, _) = call(&s, "shell", json!({"command": "true"})).await;
    assert_eq!(c, 404, "tools outside the agent's list cannot be called");
}

#[tokio::test(flavor = "multi_thread")]
async fn http_tools_are_registered_per_tenant_and_called() {
    let mock = MockOpenAi::start(vec![Turn::tool("lookup", json!({"q": "from the model"})), Turn::text("ok")], 0)
        .await
        .unwrap();
    let (_cfg_dir, cfg) = gate_open();
    let hosts =
        std::fs::read_to_string(&cfg).unwrap() + "[secrets.http_hosts]\nAGENTD_SECRET_TOKEN = [\"http://127.0.0.1\"]\n";
    std::fs::write(&cfg, hosts).unwrap();
    let s = Server::start_with(Opts {
        config: Some(&cfg),
        mock: Some(&mock.base_url),
        env: vec![("AGENTD_SECRET_TOKEN".into(), "Bearer s3cr3t".into())],
        ..Default::default()
    });
    let echo_url = mock.base_url.trim_end_matches("/v1").to_string() + "/echo";
    let def = json!({
        "name": "lookup",
        "description": "Looks things up",
        "input_schema": {"type": "object", "required": ["q"], "properties": {"q": {"type": "string"}}},
        "url": echo_url,
        "headers": {"X-Plain": "1"},
        "secret_headers": {"Authorization": "AGENTD_SECRET_TOKEN"},
    });
    let (c, v) = s.post("/v1/http-tools", def.clone()).await;
    assert_eq!(c, 201, "{v}");
    let (c, _) = s.post("/v1/http-tools", def.clone()).await;
    assert_eq!(c, 409);
    let mut bad = def.clone();
    bad["name"] = json!("shell");
    assert_eq!(s.post("/v1/http-tools", bad).await.0, 409, "builtin names are taken");
    let mut bad = def.clone();
    bad["name"] = json!("steal");
    bad["secret_headers"] = json!({"Authorization": "OPENAI_API_KEY"});
    let (c, v) = s.post("/v1/http-tools", bad).await;
    assert_eq!(c, 400, "only AGENTD_SECRET_* variables may be sent: {v}");
    let mut bad = def.clone();
    bad["name"] = json!("files");
    bad["url"] = json!("file:///etc/passwd");
    assert_eq!(s.post("/v1/http-tools", bad).await.0, 400);

    let (_, tools) = s.get("/v1/tools").await;
    let lookup = tools["data"].as_array().unwrap().iter().find(|t| t["name"] == "lookup").expect("listed").clone();
    assert_eq!(lookup["source"], "http");
    let (_, listed) = s.get("/v1/http-tools").await;
    assert!(!listed.to_string().contains("s3cr3t"), "secret values are never shown");

    let (c, v) = call(&s, "lookup", json!({"q": "direct"})).await;
    assert_eq!((c, v["is_error"].as_bool()), (200, Some(false)), "{v}");
    let echoed: Value = serde_json::from_str(&text(&v)).unwrap();
    assert_eq!(echoed["body"], json!({"q": "direct"}));
    // The secret reached the endpoint; what comes back is masked like everything that leaves agentd.
    assert_eq!(echoed["authorization"], "[REDACTED]");
    assert_eq!(echoed["x_plain"], "1");
    assert!(echoed["idempotency_key"].as_str().unwrap().starts_with("direct:"));
    let (c, v) = call(&s, "lookup", json!({"q": 5})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_arguments")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("/q"), "{v}");

    // Another tenant neither sees nor calls it.
    let (_, other) = s.call(reqwest::Method::GET, "/v1/tools", None, Some("globex")).await;
    assert!(!other.to_string().contains("lookup"));
    let (c, _) = s
        .call(reqwest::Method::POST, "/v1/tools/lookup/call", Some(json!({"arguments": {"q": "x"}})), Some("globex"))
        .await;
    assert_eq!(c, 404);

    // A run's model can call it; the idempotency key is run id + call id.
    let (_, run) = s.post("/v1/runs", json!({"input": "look it up"})).await;
    let id = run["id"].as_str().unwrap();
    assert_eq!(s.wait_run(id).await["status"], "completed");
    let evs = s.events(id).await;
    let result = evs.iter().find(|e| e["type"] == "tool.result").unwrap();
    let echoed: Value = serde_json::from_str(result["data"]["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(echoed["body"], json!({"q": "from the model"}));
    let call_id = result["data"]["call_id"].as_str().unwrap();
    assert_eq!(echoed["idempotency_key"], format!("{id}:{call_id}"));

    let (c, _) = s.call(reqwest::Method::DELETE, "/v1/http-tools/lookup", None, None).await;
    assert_eq!(c, 204);
    assert_eq!(call(&s, "lookup", json!({"q": "x"})).await.0, 404);
    assert_eq!(s.call(reqwest::Method::DELETE, "/v1/http-tools/lookup", None, None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn agents_from_config_and_api_choose_prompt_tools_and_model() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.researcher]\nsystem_prompt = \"You research.\"\ntools = [\"current_time\"]\n")
        .unwrap();
    let mock = MockOpenAi::start(vec![Turn::text("a"), Turn::text("b"), Turn::text("c")], 0).await.unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let def =
        json!({"name": "reviewer", "system_prompt": "You review code.", "tools": ["echo", "*_file"], "max_steps": 3});
    let (c, v) = s.call(reqwest::Method::POST, "/v1/agents", Some(def.clone()), Some("acme")).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!(s.call(reqwest::Method::POST, "/v1/agents", Some(def), Some("acme")).await.0, 409);
    let clash = json!({"name": "researcher"});
    assert_eq!(s.call(reqwest::Method::POST, "/v1/agents", Some(clash), Some("acme")).await.0, 409);
    let bad = json!({"name": "x", "model": "nope/nothing"});
    assert_eq!(s.call(reqwest::Method::POST, "/v1/agents", Some(bad), Some("acme")).await.0, 400);
    let (_, tools) = s.call(reqwest::Method::GET, "/v1/tools?agent=reviewer", None, Some("acme")).await;
    let mut names: Vec<&str> = tools["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    names.sort();
    assert_eq!(names, ["echo", "edit_file", "read_file", "write_file"]);

    // A run of the API agent: its prompt, only its tools, its step limit.
    let (c, run) =
        s.call(reqwest::Method::POST, "/v1/runs", Some(json!({"input": "x", "agent": "reviewer"})), Some("acme")).await;
    assert_eq!(c, 202, "{run}");
    assert_eq!((run["agent"].as_str(), run["max_steps"].as_u64()), (Some("reviewer"), Some(3)));
    let id = run["id"].as_str().unwrap().to_string();
    wait_acme_run(&s, &id).await;
    let req = &mock.requests()[0];
    assert!(req["messages"][0]["content"].as_str().unwrap().starts_with("You review code."));
    let offered: Vec<&str> =
        req["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(offered.contains(&"echo") && !offered.contains(&"shell"), "{offered:?}");
    // The config agent, for any tenant.
    let (_, run) = s.post("/v1/runs", json!({"input": "y", "agent": "researcher"})).await;
    s.wait_run(run["id"].as_str().unwrap()).await;
    let req = &mock.requests()[1];
    assert!(req["messages"][0]["content"].as_str().unwrap().starts_with("You research."));
    let offered: Vec<&str> =
        req["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert_eq!(offered, ["current_time"]);
    // Another tenant cannot use acme's agent; unknown agents are 404.
    let (c, v) = s.post("/v1/runs", json!({"input": "z", "agent": "reviewer"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (404, Some("agent_not_found")));
    let (_, list) = s.call(reqwest::Method::GET, "/v1/agents", None, Some("acme")).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 3, "default, researcher, reviewer: {list}");
    // Editing: PUT replaces the definition (checked as on creation); the next run uses it.
    let put = |name: &str, body: serde_json::Value| {
        let path = format!("/v1/agents/{name}");
        let s = &s;
        async move { s.call(reqwest::Method::PUT, &path, Some(body), Some("acme")).await }
    };
    let (c, v) =
        put("reviewer", json!({"name": "reviewer", "system_prompt": "You review harder.", "tools": ["echo"]})).await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(put("reviewer", json!({"name": "other"})).await.0, 400, "the body names another agent");
    assert_eq!(put("reviewer", json!({"name": "reviewer", "model": "nope/nothing"})).await.0, 400);
    assert_eq!(put("ghost", json!({"name": "ghost"})).await.0, 404);
    let (c, _) = s.call(reqwest::Method::PUT, "/v1/agents/reviewer", Some(json!({"name": "reviewer"})), None).await;
    assert_eq!(c, 404, "another tenant cannot edit acme's agent");
    let (_, run) =
        s.call(reqwest::Method::POST, "/v1/runs", Some(json!({"input": "w", "agent": "reviewer"})), Some("acme")).await;
    let id = run["id"].as_str().unwrap().to_string();
    wait_acme_run(&s, &id).await;
    let req = mock.requests().last().unwrap().clone();
    assert!(req["messages"][0]["content"].as_str().unwrap().starts_with("You review harder."), "{req}");
    assert_eq!(s.call(reqwest::Method::DELETE, "/v1/agents/reviewer", None, Some("acme")).await.0, 204);
    let (c, _) =
        s.call(reqwest::Method::POST, "/v1/runs", Some(json!({"input": "x", "agent": "reviewer"})), Some("acme")).await;
    assert_eq!(c, 404);
}

/// Waits (up to 4 s) for one of acme's runs to complete.
async fn wait_acme_run(s: &Server, id: &str) {
    for _ in 0..200 {
        let (_, r) = s.call(reqwest::Method::GET, &format!("/v1/runs/{id}"), None, Some("acme")).await;
        if r["status"] == "completed" {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn long_results_are_cut_for_the_model_but_journaled_whole() {
    let blob = "x".repeat(150_000);
    let mock = MockOpenAi::start(vec![Turn::tool("echo", json!({ "blob": blob })), Turn::text("ok")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (_, run) = s.post("/v1/runs", json!({"input": "big"})).await;
    let id = run["id"].as_str().unwrap();
    assert_eq!(s.wait_run(id).await["status"], "completed");
    let evs = s.events(id).await;
    let result = evs.iter().find(|e| e["type"] == "tool.result").unwrap();
    assert!(result["data"]["content"][0]["text"].as_str().unwrap().len() > 150_000, "the journal keeps it whole");
    let sent =
        mock.requests()[1]["messages"].as_array().unwrap().last().unwrap()["content"].as_str().unwrap().to_string();
    assert!(sent.len() < 110_000, "the model gets a cut version ({} bytes)", sent.len());
    assert!(sent.contains("cut for the model"), "with a marker");
}

/// A config whose policy lets high-risk calls through, to test the fence behind the gate.
fn gate_open() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default.policy]\nhigh_risk = \"allow\"\n[egress]\nallow = [\"127.0.0.1\"]\n")
        .unwrap();
    (dir, cfg)
}

/// A header can name one of the tenant's secrets: the value is opened at
/// the call, reaches the endpoint, and is masked in what comes back; a
/// missing secret or another tenant's is an error of that call.
#[tokio::test(flavor = "multi_thread")]
async fn an_http_tool_header_can_be_a_tenant_secret() {
    const VALUE: &str = "tenant-s3cr3t-9f8e7d6c5b";
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let (_cfg_dir, cfg) = gate_open();
    let s = Server::start_with(Opts { config: Some(&cfg), mock: Some(&mock.base_url), ..Default::default() });
    let (c, v) = s.call(reqwest::Method::PUT, "/v1/secrets/api_token", Some(json!({"value": VALUE})), None).await;
    assert_eq!(c, 200, "{v}");
    let echo_url = mock.base_url.trim_end_matches("/v1").to_string() + "/echo";
    let def = json!({
        "name": "withsecret",
        "url": echo_url,
        "headers": {"Authorization": {"secret": "api_token"}, "X-Plain": "1"},
    });
    let (c, v) = s.post("/v1/http-tools", def).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!(v["headers"]["Authorization"], json!({"secret": "api_token"}), "the reference is shown, not a value");
    assert!(!v.to_string().contains(VALUE));

    let (c, v) = call(&s, "withsecret", json!({})).await;
    assert_eq!((c, v["is_error"].as_bool()), (200, Some(false)), "{v}");
    let echoed: Value = serde_json::from_str(&text(&v)).unwrap();
    // The endpoint got the secret's value (masked in what comes back, as a known secret).
    assert_eq!(echoed["authorization"], "[REDACTED]", "{echoed}");
    assert_eq!(echoed["x_plain"], "1");
    assert!(!v.to_string().contains(VALUE));

    // A tool naming a secret the tenant does not have fails at the call, with the reason.
    let def = json!({"name": "nosecret", "url": echo_url, "headers": {"Authorization": {"secret": "missing"}}});
    assert_eq!(s.post("/v1/http-tools", def.clone()).await.0, 201);
    let (_, v) = call(&s, "nosecret", json!({})).await;
    assert_eq!(v["is_error"], true, "{v}");
    assert!(text(&v).contains("missing"), "{v}");
    // Another tenant's tool cannot open this tenant's secret.
    let other = json!({"name": "borrow", "url": echo_url, "headers": {"Authorization": {"secret": "api_token"}}});
    let (c, _) = s.call(reqwest::Method::POST, "/v1/http-tools", Some(other), Some("globex")).await;
    assert_eq!(c, 201);
    let (_, v) =
        s.call(reqwest::Method::POST, "/v1/tools/borrow/call", Some(json!({"arguments": {}})), Some("globex")).await;
    assert_eq!(v["is_error"], true, "{v}");
    assert!(!v.to_string().contains(VALUE));
}

/// `agentd secrets rotate-key` re-seals every secret under a new master key:
/// refused while a server holds the data dir; afterwards the secret still
/// opens with the new key file, and no longer with the old key.
#[tokio::test(flavor = "multi_thread")]
async fn rotating_the_master_key_reseals_every_secret() {
    const VALUE: &str = "rotate-s3cr3t-1a2b3c4d5e";
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let (_cfg_dir, cfg) = gate_open();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let opts = || Opts { config: Some(&cfg), mock: Some(&mock.base_url), data_dir: Some(&data), ..Default::default() };
    let rotate = |extra: &[&str]| {
        std::process::Command::new(crate::common::bin())
            .args(["secrets", "rotate-key", "--data-dir"])
            .arg(&data)
            .args(extra)
            .env_remove("AGENTD_SECRET_KEY")
            .env_remove("DATABASE_URL")
            .output()
            .unwrap()
    };
    let s = Server::start_with(opts());
    let (c, v) = s.call(reqwest::Method::PUT, "/v1/secrets/api_token", Some(json!({"value": VALUE})), None).await;
    assert_eq!(c, 200, "{v}");
    let echo_url = mock.base_url.trim_end_matches("/v1").to_string() + "/echo";
    let def = json!({"name": "withsecret", "url": echo_url, "headers": {"Authorization": {"secret": "api_token"}}});
    assert_eq!(s.post("/v1/http-tools", def).await.0, 201);
    let out = rotate(&[]);
    assert!(!out.status.success(), "refused while the server holds the data dir");
    s.stop();

    let old_key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    let out = rotate(&[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("re-sealed 1 secrets"));
    let new_key = std::fs::read_to_string(data.join("secret.key")).unwrap();
    assert_ne!(old_key, new_key);
    assert!(!data.join("secret.key.new").exists());

    let s = Server::start_with(opts());
    let (_, v) = call(&s, "withsecret", json!({})).await;
    assert_eq!(v["is_error"], false, "opens with the new key: {v}");
    assert_eq!(serde_json::from_str::<Value>(&text(&v)).unwrap()["authorization"], "[REDACTED]");
    s.stop();
    let s = Server::start_with(Opts { env: vec![("AGENTD_SECRET_KEY".into(), old_key)], ..opts() });
    let (_, v) = call(&s, "withsecret", json!({})).await;
    assert_eq!(v["is_error"], true, "the old key no longer opens it: {v}");
    assert!(!v.to_string().contains(VALUE));
}
