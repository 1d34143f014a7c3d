//! Black-box tests of bad input, provider failures, tenant scope, sessions,
//! readiness and the CLI.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use crate::common;

use std::process::Command;

use crate::common::{API_KEY, Server, types};
use agentd_testkit::{MockOpenAi, Turn};
use reqwest::Method;
use serde_json::{Value, json};

async fn raw(s: &Server, method: Method, path: &str, body: &'static [u8]) -> (u16, Value) {
    let resp = s.req(method, path).header("content-type", "application/json").body(body).send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

fn code_of(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_input_gets_defined_errors_and_server_keeps_serving() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (c, v) = raw(&s, Method::POST, "/v1/runs", b"{\"input\": ").await;
    assert_eq!((c, code_of(&v)), (400, "invalid_json"));
    let (c, v) = raw(&s, Method::POST, "/v1/runs", b"").await;
    assert_eq!((c, code_of(&v)), (400, "invalid_json"));
    let (c, v) = s.post("/v1/runs", json!({"input": 5})).await;
    assert_eq!((c, code_of(&v)), (400, "invalid_request"));
    let (c, v) = s.post("/v1/runs", json!({"input": "x", "bogus_field": 1})).await;
    assert_eq!((c, code_of(&v)), (400, "invalid_request"));
    assert!(v["error"]["message"].as_str().unwrap().contains("bogus_field"));
    let (c, v) = s.post("/v1/runs", json!({"input": "  "})).await;
    assert_eq!((c, code_of(&v)), (400, "input_required"));
    let (c, v) = s.post("/v1/runs", json!({"input": "x", "max_steps": 0})).await;
    assert_eq!((c, code_of(&v)), (400, "invalid_max_steps"));
    let (c, v) = s.post("/v1/runs", json!({"input": "x", "model": "nope/gpt"})).await;
    assert_eq!((c, code_of(&v)), (400, "unknown_provider"));
    let (c, v) = s.post("/v1/runs", json!({"input": "x", "model": "no-such-profile"})).await;
    assert_eq!((c, code_of(&v)), (400, "unknown_model"));
    let (c, v) = s.post("/v1/runs", json!({"input": "x", "session_id": "ses_missing"})).await;
    assert_eq!((c, code_of(&v)), (404, "session_not_found"));
    for path in ["/v1/runs/run_missing", "/v1/runs/run_missing/events"] {
        let (c, v) = s.get(path).await;
        assert_eq!((c, code_of(&v)), (404, "run_not_found"), "{path}");
    }
    let resp =
        s.req(Method::GET, "/v1/runs/run_missing/events").header("accept", "text/event-stream").send().await.unwrap();
    assert_eq!(resp.status(), 404);
    let (c, v) = s.post("/v1/runs/run_missing/cancel", json!({})).await;
    assert_eq!((c, code_of(&v)), (404, "run_not_found"));
    let (c, v) = s.get("/v1/sessions/ses_missing").await;
    assert_eq!((c, code_of(&v)), (404, "session_not_found"));
    let (c, v) = s.get("/v1/nothing-here").await;
    assert_eq!((c, code_of(&v)), (404, "route_not_found"));
    let (c, v) = s.call(Method::PUT, "/v1/runs", Some(json!({})), None).await;
    assert_eq!((c, code_of(&v)), (405, "method_not_allowed"));
    let (c, v) = s.call(Method::GET, "/v1/runs", None, Some("bad org!")).await;
    assert_eq!((c, code_of(&v)), (400, "invalid_scope"));

    // Just over the 1 MiB default limit. The server may answer before it has
    // read the body and close the connection; a client can then lose the
    // answer to a reset, so retry the transport, never the verdict.
    let big = json!({"input": "x".repeat((1 << 20) + 100_000)});
    let mut verdict = None;
    for _ in 0..10 {
        let sent = s.req(Method::POST, "/v1/runs").json(&big).send().await;
        if let Ok(resp) = sent {
            let code = resp.status().as_u16();
            verdict = Some((code, resp.json::<Value>().await.unwrap_or(Value::Null)));
            break;
        }
    }
    let (c, v) = verdict.expect("no answer to the oversize request");
    assert_eq!((c, code_of(&v)), (413, "payload_too_large"));

    // None of that created a run, and the server still works.
    let (_, list) = s.get("/v1/runs").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    assert_eq!(s.get("/healthz").await.0, 200);
    mock.push([Turn::text("still here")]);
    let (c, run) = s.post("/v1/runs", json!({"input": "x"})).await;
    assert_eq!(c, 202);
    assert_eq!(s.wait_run(run["id"].as_str().unwrap()).await["output"], "still here");
}

#[tokio::test(flavor = "multi_thread")]
async fn provider_failures_fail_the_run_with_a_reason() {
    let mock = MockOpenAi::start(
        vec![
            Turn::Status(500, "upstream exploded".into()),
            Turn::InvalidJson,
            Turn::CutStream(vec!["partial ".into(), "answ".into()]),
            Turn::Status(401, "bad key".into()),
        ],
        0,
    )
    .await
    .unwrap();
    // Retries are tested with the providers; here every failure must end the run at once.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[providers.openai]\nmax_retries = 0\n").unwrap();
    let s = common::Server::start_with(common::Opts {
        mock: Some(&mock.base_url),
        config: Some(&cfg),
        ..Default::default()
    });
    let mut all = String::new();
    for (expect, detail) in [
        ("provider_http_error", "500"),
        ("provider_invalid_response", "JSON"),
        ("provider_stream_interrupted", "ended"),
        ("provider_http_error", "401"),
    ] {
        let (_, run) = s.post("/v1/runs", json!({"input": "x"})).await;
        let id = run["id"].as_str().unwrap();
        let done = s.wait_run(id).await;
        assert_eq!(done["status"], "failed", "{done}");
        assert_eq!(done["error"]["code"], expect, "{done}");
        assert!(done["error"]["message"].as_str().unwrap().contains(detail), "{done}");
        let evs = s.events(id).await;
        assert_eq!(evs.last().unwrap()["type"], "run.failed");
        assert!(!types(&evs).contains(&"llm.completed".to_string()));
        all.push_str(&done.to_string());
        all.push_str(&Value::Array(evs).to_string());
    }
    assert!(!all.contains(API_KEY), "the API key leaked into a run or event");
    // The server keeps serving after each failure.
    mock.push([Turn::text("recovered")]);
    let (_, run) = s.post("/v1/runs", json!({"input": "x"})).await;
    assert_eq!(s.wait_run(run["id"].as_str().unwrap()).await["output"], "recovered");
    // The key was sent to the provider as a bearer token (and only there).
    assert!(mock.requests().iter().all(|r| !r.to_string().contains(API_KEY)));
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_scope_isolates_runs_and_sessions() {
    let mock = MockOpenAi::start(vec![Turn::text("mine")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (c, run) = s.call(Method::POST, "/v1/runs", Some(json!({"input": "secret"})), Some("acme")).await;
    assert_eq!(c, 202);
    let id = run["id"].as_str().unwrap();
    let sid = run["session_id"].as_str().unwrap();
    // Wait as the owner.
    for _ in 0..500 {
        let (_, r) = s.call(Method::GET, &format!("/v1/runs/{id}"), None, Some("acme")).await;
        if r["status"] == "completed" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let probes: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("/v1/runs/{id}"), None),
        (Method::GET, format!("/v1/runs/{id}/events"), None),
        (Method::POST, format!("/v1/runs/{id}/cancel"), Some(json!({}))),
        (Method::GET, format!("/v1/sessions/{sid}"), None),
        (Method::GET, format!("/v1/sessions/{sid}/runs"), None),
        (Method::DELETE, format!("/v1/sessions/{sid}"), None),
        (Method::POST, "/v1/runs".into(), Some(json!({"input": "x", "session_id": sid}))),
    ];
    for other in [None, Some("globex")] {
        for (m, p, b) in &probes {
            let (c, v) = s.call(m.clone(), p, b.clone(), other).await;
            assert_eq!(c, 404, "{m} {p} as {other:?}: {v}");
        }
        let (_, runs) = s.call(Method::GET, "/v1/runs", None, other).await;
        assert!(runs["data"].as_array().unwrap().is_empty());
        let (_, sessions) = s.call(Method::GET, "/v1/sessions", None, other).await;
        assert!(sessions["data"].as_array().unwrap().is_empty());
    }
    // Same org, other project: also invisible.
    let resp = s
        .req(Method::GET, &format!("/v1/runs/{id}"))
        .header("x-org-id", "acme")
        .header("x-project-id", "p2")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
    // The owner still sees everything intact.
    let (c, r) = s.call(Method::GET, &format!("/v1/runs/{id}"), None, Some("acme")).await;
    assert_eq!((c, r["output"].as_str()), (200, Some("mine")));
    let (c, _) = s.call(Method::GET, &format!("/v1/sessions/{sid}"), None, Some("acme")).await;
    assert_eq!(c, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn sessions_crud_and_pagination() {
    let mock = MockOpenAi::start(vec![Turn::text("a1"), Turn::text("a2")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (c, ses) = s.post("/v1/sessions", json!({"title": "chat", "metadata": {"k": 1}})).await;
    assert_eq!(c, 201);
    assert_eq!(ses["title"], "chat");
    let sid = ses["id"].as_str().unwrap();
    let (c, _) = raw(&s, Method::POST, "/v1/sessions", b"").await;
    assert_eq!(c, 201, "an empty body creates an untitled session");
    let (c, v) = s.post("/v1/sessions", json!({"metadata": [1]})).await;
    assert_eq!((c, code_of(&v)), (400, "invalid_request"));

    let (_, page1) = s.get("/v1/sessions?limit=1").await;
    assert_eq!(page1["data"].as_array().unwrap().len(), 1);
    let cursor = page1["next_cursor"].as_str().expect("a cursor when more exist").to_string();
    let (_, page2) = s.get(&format!("/v1/sessions?limit=1&after={cursor}")).await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    assert_ne!(page1["data"][0]["id"], page2["data"][0]["id"]);

    for input in ["q1", "q2"] {
        let (_, run) = s.post("/v1/runs", json!({"input": input, "session_id": sid})).await;
        s.wait_run(run["id"].as_str().unwrap()).await;
    }
    let (_, full) = s.get(&format!("/v1/sessions/{sid}")).await;
    let texts: Vec<&str> =
        full["messages"].as_array().unwrap().iter().map(|m| m["content"][0]["text"].as_str().unwrap()).collect();
    assert_eq!(texts, ["q1", "a1", "q2", "a2"]);
    let (_, runs) = s.get(&format!("/v1/sessions/{sid}/runs")).await;
    assert_eq!(runs["data"].as_array().unwrap().len(), 2);
    assert!(runs["next_cursor"].is_null());
    let run_id = runs["data"][0]["id"].as_str().unwrap().to_string();

    let (c, _) = s.call(Method::DELETE, &format!("/v1/sessions/{sid}"), None, None).await;
    assert_eq!(c, 204);
    assert_eq!(s.get(&format!("/v1/sessions/{sid}")).await.0, 404);
    assert_eq!(s.get(&format!("/v1/runs/{run_id}")).await.0, 404, "runs go with their session");
    assert_eq!(s.call(Method::DELETE, &format!("/v1/sessions/{sid}"), None, None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_reports_missing_provider_and_tools_are_listed() {
    let s = Server::start_with(common::Opts::default());
    assert_eq!(s.get("/healthz").await.0, 200);
    let (c, v) = s.get("/readyz").await;
    assert_eq!(c, 503);
    assert_eq!(v["missing"], json!(["provider"]));
    assert_eq!(v["checks"]["database"]["ok"], true);
    let (c, v) = s.post("/v1/runs", json!({"input": "x"})).await;
    assert_eq!((c, code_of(&v)), (400, "model_required"));

    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (c, v) = s.get("/readyz").await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["checks"]["providers"]["configured"], json!(["openai"]));
    assert!(!v.to_string().contains(API_KEY));
    let (_, tools) = s.get("/v1/tools").await;
    let names: Vec<&str> = tools["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"echo") && names.contains(&"current_time"), "{tools}");
    assert_eq!(tools["data"][0]["source"], "builtin");
}

#[tokio::test(flavor = "multi_thread")]
async fn config_file_profiles_and_scripted_provider() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(
        &cfg,
        r#"
        default_model = "offline"
        [providers.demo]
        type = "scripted"
        turns = [{ tool_calls = [{ name = "echo", arguments = { hello = "world" } }] }, { text = "scripted answer" }]
        [models.offline]
        provider = "demo"
        model = "script"
        [agents.default]
        max_steps = 5
        "#,
    )
    .unwrap();
    let s = Server::start_with(common::Opts { config: Some(&cfg), ..Default::default() });
    assert_eq!(s.get("/readyz").await.0, 200);
    let (c, run) = s.post("/v1/runs", json!({"input": "hi"})).await;
    assert_eq!(c, 202, "{run}");
    assert_eq!(run["model"], "offline");
    assert_eq!(run["max_steps"], 5);
    let done = s.wait_run(run["id"].as_str().unwrap()).await;
    assert_eq!(done["output"], "scripted answer");
    let (c, v) = s.post("/v1/runs", json!({"input": "x", "model": "openai/gpt-4o"})).await;
    assert_eq!((c, code_of(&v)), (400, "unknown_provider"));
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_run_in_process_and_against_server() {
    common::install_crypto();
    let mock = MockOpenAi::start(vec![Turn::Text(vec!["It is ".into(), "noon.".into()])], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let base = mock.base_url.clone();
    let d = dir.path().to_path_buf();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(common::bin())
            .args(["run", "what time is it?", "--model", "openai/gpt-4o-mini", "--data-dir"])
            .arg(d.join("data"))
            .current_dir(&d)
            .env("OPENAI_BASE_URL", &base)
            .env("OPENAI_API_KEY", API_KEY)
            .env_remove("AGENTD_CONFIG")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "It is noon.");

    let s = Server::start(&mock.base_url);
    mock.push([Turn::text("remote answer")]);
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(common::bin()).args(["run", "hi", "--url", &url]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "remote answer");

    // A failing run exits non-zero with the reason.
    mock.push([Turn::Status(401, "no such key".into())]);
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(common::bin()).args(["run", "hi", "--url", &url]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("provider_http_error"));

    // `runs` lists them; `tail` replays a finished run and exits 0.
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(common::bin()).args(["runs", "--url", &url]).output().unwrap()
    })
    .await
    .unwrap();
    let listing = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(listing.lines().count(), 2, "{listing}");
    let first_id = listing.lines().last().unwrap().split_whitespace().next().unwrap().to_string();
    let url = s.url.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(common::bin()).args(["tail", &first_id, "--url", &url]).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run.completed"));
}

#[tokio::test(flavor = "multi_thread")]
async fn doctor_reports_provider_state() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_path_buf();
    let base = mock.base_url.clone();
    let (good, bad) = tokio::task::spawn_blocking(move || {
        let run = |with: bool| {
            let mut c = Command::new(common::bin());
            c.args(["doctor", "--data-dir"])
                .arg(d.join("data"))
                .current_dir(&d)
                .env_remove("OPENAI_API_KEY")
                .env_remove("OPENAI_BASE_URL")
                .env_remove("AGENTD_CONFIG");
            if with {
                c.env("OPENAI_BASE_URL", &base).env("OPENAI_API_KEY", API_KEY);
            }
            c.output().unwrap()
        };
        (run(true), run(false))
    })
    .await
    .unwrap();
    let g = String::from_utf8_lossy(&good.stdout);
    assert!(good.status.success(), "{g}");
    assert!(g.contains("✓ provider openai"), "{g}");
    assert!(g.contains("✓ sandbox: bubblewrap at"), "{g}");
    assert!(!g.contains(API_KEY));
    let b = String::from_utf8_lossy(&bad.stdout);
    assert!(!bad.status.success());
    assert!(b.contains("✗ providers: none configured"), "{b}");
}

#[tokio::test(flavor = "multi_thread")]
async fn prune_command_deletes_old_finished_runs_only() {
    let mock =
        MockOpenAi::start(vec![Turn::text("old news"), Turn::Slow(std::time::Duration::from_secs(30), "x".into())], 0)
            .await
            .unwrap();
    let mut s = Server::start(&mock.base_url);
    let tmp = s.take_tmp();
    let data = s.data_dir.clone();
    let (_, done) = s.post("/v1/runs", json!({"input": "finished"})).await;
    let done = done["id"].as_str().unwrap().to_string();
    s.wait_run(&done).await;
    let (_, open) = s.post("/v1/runs", json!({"input": "still going"})).await;
    let open = open["id"].as_str().unwrap().to_string();
    s.wait_event(&open, "step.started").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    // Pruning works next to a running server (SQLite allows a second writer process).
    let d = data.clone();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(common::bin()).args(["prune", "--older-than", "1s", "--data-dir"]).arg(&d).output().unwrap()
    })
    .await
    .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("pruned 1 runs"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(s.get(&format!("/v1/runs/{done}")).await.0, 404);
    assert_eq!(s.get(&format!("/v1/runs/{open}")).await.0, 200, "an unfinished run is never pruned");
    let d = data.clone();
    let bad = tokio::task::spawn_blocking(move || {
        Command::new(common::bin()).args(["prune", "--older-than", "soon", "--data-dir"]).arg(&d).output().unwrap()
    })
    .await
    .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("invalid age"));
    drop(s);
    drop(tmp);
}

/// Runs the CLI against a server and returns (success, stdout, stderr).
async fn cli(args: Vec<String>) -> (bool, String, String) {
    let out =
        tokio::task::spawn_blocking(move || Command::new(common::bin()).args(&args).output().unwrap()).await.unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into(), String::from_utf8_lossy(&out.stderr).into())
}

/// The CLI reads the API's typed answers: listings, tools, errors.
#[tokio::test(flavor = "multi_thread")]
async fn cli_reads_typed_answers() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let url = s.url.clone();
    let (c, ses) = s.post("/v1/sessions", json!({"title": "typed listing"})).await;
    assert_eq!(c, 201, "{ses}");
    let sid = ses["id"].as_str().unwrap().to_string();
    let with_url = |a: &[&str]| a.iter().map(|s| s.to_string()).chain(["--url".into(), url.clone()]).collect();

    let (ok, out, err) = cli(with_url(&["sessions"])).await;
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with(&sid) && l.ends_with("typed listing")), "{out}");

    // A page that does not hold everything says where the next starts.
    s.post("/v1/sessions", json!({"title": "second"})).await;
    let (ok, out, err) = cli(with_url(&["sessions", "--limit", "1"])).await;
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 1, "{out}");
    assert!(err.contains("more: pass after=ses_"), "{err}");

    let (ok, out, err) = cli(with_url(&["tool", "list"])).await;
    assert!(ok, "{err}");
    assert!(out.lines().any(|l| l.starts_with("current_time") && l.contains("builtin")), "{out}");

    let (ok, out, err) = cli(with_url(&["tool", "call", "echo", "--args", r#"{"said": "typed"}"#])).await;
    assert!(ok, "{err}");
    assert!(out.contains("typed"), "{out}");

    // An error answer is read as the API's error body: code and message.
    let (ok, _, err) = cli(with_url(&["tool", "call", "no_such_tool", "--args", "{}"])).await;
    assert!(!ok);
    assert!(err.contains("404") && err.contains("tool_not_found"), "{err}");

    // Every approval status the CLI offers is one the server takes.
    for status in ["pending", "approved", "denied", "expired", "cancelled", "all"] {
        let (ok, _, err) = cli(with_url(&["approvals", "--status", status])).await;
        assert!(ok, "{status}: {err}");
    }
}

/// `POST /v1/template-preview` renders text with sample arguments, and
/// answers a template that does not render with its error (stores nothing).
#[tokio::test(flavor = "multi_thread")]
async fn template_preview_renders_or_says_why_not() {
    let s = Server::start_with(common::Opts::default());
    let (c, v) =
        s.post("/v1/template-preview", json!({"content": "Hi {{ name }}!", "arguments": {"name": "Ada"}})).await;
    assert_eq!((c, v["text"].as_str(), v["variables"].clone()), (200, Some("Hi Ada!"), json!(["name"])), "{v}");
    let (c, v) = s.post("/v1/template-preview", json!({"content": "Hi {{ name }}!"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (200, Some("missing_variable")), "{v}");
    assert!(v.get("text").is_none());
    let (c, v) = s.post("/v1/template-preview", json!({"content": "{% if %}"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (200, Some("invalid_template")), "{v}");
    let (_, listed) = s.get("/v1/prompt-templates").await;
    assert_eq!(listed["data"], json!([]), "nothing stored");
}
