//! MCP against a real server from npm (`@modelcontextprotocol/server-everything`,
//! installed by scripts/install-test-deps; its path is in AGENTD_TEST_MCP_EVERYTHING).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use crate::common;

use std::path::Path;
use std::time::Duration;

use crate::common::{Opts, Server};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::{Value, json};

fn everything() -> String {
    let p = std::env::var("AGENTD_TEST_MCP_EVERYTHING")
        .expect("AGENTD_TEST_MCP_EVERYTHING is not set: run the suite with scripts/test (it installs the MCP servers)");
    assert!(std::path::Path::new(&p).exists(), "{p} is missing: run scripts/install-test-deps");
    p
}

/// What the operator grants tenant servers here: the npm and fixture
/// directories readable in the sandbox, loopback reachable over HTTP.
fn tenant_config(extra_read: &[&Path]) -> (tempfile::TempDir, std::path::PathBuf) {
    let npm = Path::new(&everything()).ancestors().nth(3).unwrap().to_path_buf();
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut read: Vec<String> = vec![npm.display().to_string(), fixtures.display().to_string()];
    read.extend(extra_read.iter().map(|p| p.display().to_string()));
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    let text = format!("[mcp]\nsandbox_read_paths = {read:?}\n[egress]\nallow = [\"127.0.0.1\"]\n");
    std::fs::write(&cfg, text).unwrap();
    (dir, cfg)
}

async fn wait_ready(s: &Server, name: &str, org: Option<&str>) -> Value {
    for _ in 0..300 {
        let (_, v) = s.call(reqwest::Method::GET, "/v1/mcp-servers", None, org).await;
        if let Some(info) = v["data"].as_array().unwrap().iter().find(|i| i["name"] == name)
            && info["state"] == "ready"
            && info["tools"].as_u64().unwrap_or(0) > 0
        {
            return info.clone();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("MCP server {name} never became ready");
}

fn text(v: &Value) -> String {
    v["content"].as_array().unwrap().iter().filter_map(|c| c["text"].as_str()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_server_from_config_tools_and_calls() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, format!("[mcp_servers.everything]\ncommand = \"{}\"\nargs = [\"stdio\"]\n", everything()))
        .unwrap();
    let mock = MockOpenAi::start(
        vec![Turn::tool("mcp__everything__get-sum", json!({"a": 2, "b": 40})), Turn::text("42 it is")],
        0,
    )
    .await
    .unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let info = wait_ready(&s, "everything", None).await;
    assert_eq!(info["scope"], "config");

    let (_, tools) = s.get("/v1/tools").await;
    let echo = tools["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "mcp__everything__echo")
        .expect("echo listed")
        .clone();
    assert_eq!(echo["source"], "mcp");
    assert!(echo["input_schema"]["properties"]["message"].is_object(), "the server's schema, unchanged: {echo}");

    let (c, v) = s.post("/v1/tools/mcp__everything__echo/call", json!({"arguments": {"message": "hello mcp"}})).await;
    assert_eq!((c, v["is_error"].as_bool()), (200, Some(false)), "{v}");
    assert!(text(&v).contains("hello mcp"), "{v}");
    let (_, v) = s.post("/v1/tools/mcp__everything__get-sum/call", json!({"arguments": {"a": 2, "b": 3}})).await;
    assert!(text(&v).contains('5'), "{v}");
    let (c, v) = s.post("/v1/tools/mcp__everything__get-sum/call", json!({"arguments": {"a": "two", "b": 3}})).await;
    assert_eq!((c, v["error"]["field"].as_str()), (400, Some("/a")), "{v}");
    let (_, v) = s.post("/v1/tools/mcp__everything__get-tiny-image/call", json!({"arguments": {}})).await;
    let image = v["content"].as_array().unwrap().iter().find(|p| p["type"] == "image").expect("an image part");
    assert!(image["url"].as_str().unwrap().starts_with("data:image/png;base64,"), "{image}");

    // A run's model calls an MCP tool like any other.
    let (_, run) = s.post("/v1/runs", json!({"input": "add"})).await;
    let id = run["id"].as_str().unwrap();
    assert_eq!(s.wait_run(id).await["output"], "42 it is");
    let evs = s.events(id).await;
    let result = evs.iter().find(|e| e["type"] == "tool.result").unwrap();
    assert!(result["data"]["content"][0]["text"].as_str().unwrap().contains("42"), "{result}");
}

#[tokio::test(flavor = "multi_thread")]
async fn servers_added_over_the_api_belong_to_their_tenant() {
    let (_cfg_dir, cfg) = tenant_config(&[]);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let body =
        json!({"name": "mine", "command": everything(), "args": ["stdio"], "env": {"SOME_TOKEN": "secret-value"}});
    let (c, v) = s.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body.clone()), Some("acme")).await;
    assert_eq!(c, 201, "{v}");
    let (c, _) = s.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body), Some("acme")).await;
    assert_eq!(c, 409);
    let info = wait_ready(&s, "mine", Some("acme")).await;
    assert_eq!(info["scope"], "tenant");
    assert!(!info.to_string().contains("secret-value"), "env values are never shown: {info}");
    // Invisible and unusable for another tenant.
    let (_, other) = s.call(reqwest::Method::GET, "/v1/mcp-servers", None, Some("globex")).await;
    assert!(other["data"].as_array().unwrap().is_empty());
    let (_, tools) = s.call(reqwest::Method::GET, "/v1/tools", None, Some("globex")).await;
    assert!(!tools.to_string().contains("mcp__mine__"));
    let call = json!({"arguments": {"message": "x"}});
    let (c, _) =
        s.call(reqwest::Method::POST, "/v1/tools/mcp__mine__echo/call", Some(call.clone()), Some("globex")).await;
    assert_eq!(c, 404);
    let (c, v) =
        s.call(reqwest::Method::POST, "/v1/tools/mcp__mine__echo/call", Some(call.clone()), Some("acme")).await;
    assert_eq!(c, 200, "{v}");
    // Restart reconnects; delete removes.
    let (c, _) = s.call(reqwest::Method::POST, "/v1/mcp-servers/mine/restart", None, Some("acme")).await;
    assert_eq!(c, 202);
    wait_ready(&s, "mine", Some("acme")).await;
    let (c, _) = s.call(reqwest::Method::DELETE, "/v1/mcp-servers/mine", None, Some("globex")).await;
    assert_eq!(c, 404);
    let (c, _) = s.call(reqwest::Method::DELETE, "/v1/mcp-servers/mine", None, Some("acme")).await;
    assert_eq!(c, 204);
    let (c, _) = s.call(reqwest::Method::POST, "/v1/tools/mcp__mine__echo/call", Some(call), Some("acme")).await;
    assert_eq!(c, 404);
    let (c, v) = s.post("/v1/mcp-servers", json!({"name": "bad name", "command": "x"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_request")));
    let (c, _) = s.post("/v1/mcp-servers", json!({"name": "neither"})).await;
    assert_eq!(c, 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_cannot_start_is_reported_not_hung() {
    let s = Server::start_with(Opts::default());
    let (c, _) = s.post("/v1/mcp-servers", json!({"name": "ghost", "command": "/nonexistent/mcp-server"})).await;
    assert_eq!(c, 201);
    let mut seen = Value::Null;
    for _ in 0..100 {
        let (_, v) = s.get("/v1/mcp-servers").await;
        seen = v["data"][0].clone();
        if seen["state"] == "restarting" || seen["state"] == "failed" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen["state"] == "restarting" || seen["state"] == "failed", "{seen}");
    assert!(seen["error"].as_str().unwrap().contains("cannot start"), "{seen}");
    // State changes are kept as events, oldest first.
    let states: Vec<&str> = seen["events"].as_array().unwrap().iter().map(|e| e["state"].as_str().unwrap()).collect();
    assert_eq!(states[0], "starting", "{seen}");
    assert!(states.contains(&"restarting") || states.contains(&"failed"), "{seen}");
    assert!(seen["events"][0]["at"].as_f64().unwrap() > 1.0e9);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_stdio_server_fails_the_call_cleanly_and_comes_back() {
    let (_cfg_dir, cfg) = tenant_config(&[]);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let (c, _) =
        s.post("/v1/mcp-servers", json!({"name": "fragile", "command": everything(), "args": ["stdio"]})).await;
    assert_eq!(c, 201);
    let info = wait_ready(&s, "fragile", None).await;
    let pid = info["pid"].as_u64().expect("a stdio server reports its pid");
    // A long call is in flight when the server dies.
    let url = format!("{}/v1/tools/mcp__fragile__trigger-long-running-operation/call", s.url);
    let pending = tokio::spawn(async move {
        reqwest::Client::new()
            .post(url)
            .json(&json!({"arguments": {"duration": 10, "steps": 5}}))
            .send()
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap()
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    std::process::Command::new("kill").arg("-9").arg(pid.to_string()).status().unwrap();
    let failed = tokio::time::timeout(Duration::from_secs(10), pending).await.expect("the call does not hang").unwrap();
    assert_eq!(failed["is_error"], true, "{failed}");
    // It is restarted (a new process) and the next call succeeds.
    let mut again = Value::Null;
    for _ in 0..100 {
        let info = wait_ready(&s, "fragile", None).await;
        if info["pid"].as_u64() != Some(pid) {
            again = info;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(again["pid"].is_u64(), "the server came back with a new process");
    let (_, v) = s.post("/v1/tools/mcp__fragile__echo/call", json!({"arguments": {"message": "alive"}})).await;
    assert!(text(&v).contains("alive"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cancelling_a_run_cancels_its_mcp_call() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, format!("[mcp_servers.everything]\ncommand = \"{}\"\nargs = [\"stdio\"]\n", everything()))
        .unwrap();
    let mock = MockOpenAi::start(
        vec![Turn::tool("mcp__everything__trigger-long-running-operation", json!({"duration": 30, "steps": 3}))],
        0,
    )
    .await
    .unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    wait_ready(&s, "everything", None).await;
    let (_, run) = s.post("/v1/runs", json!({"input": "wait"})).await;
    let id = run["id"].as_str().unwrap().to_string();
    s.wait_event(&id, "tool.started").await;
    let (c, r) = s.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
    assert_eq!((c, r["status"].as_str()), (200, Some("cancelled")));
    // The shared connection stays usable for everyone else.
    let (_, v) = s.post("/v1/tools/mcp__everything__echo/call", json!({"arguments": {"message": "still here"}})).await;
    assert!(text(&v).contains("still here"), "{v}");
}

/// Kills the child when dropped.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streamable_http_server() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let _server = Child(
        std::process::Command::new(everything())
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    // Wait for it to listen.
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_cfg_dir, cfg) = tenant_config(&[]);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let body = json!({"name": "remote", "url": format!("http://127.0.0.1:{port}/mcp"), "headers": {"X-Trace": "t1"}});
    let (c, v) = s.post("/v1/mcp-servers", body).await;
    assert_eq!(c, 201, "{v}");
    let info = wait_ready(&s, "remote", None).await;
    assert!(info.get("pid").is_none());
    assert_eq!(info["headers"]["X-Trace"], "<redacted>");
    let (_, v) = s.post("/v1/tools/mcp__remote__get-sum/call", json!({"arguments": {"a": 20, "b": 22}})).await;
    assert!(text(&v).contains("42"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn pypi_time_server_from_an_mcp_servers_file_inside_a_run() {
    let time = std::env::var("AGENTD_TEST_MCP_TIME")
        .expect("AGENTD_TEST_MCP_TIME is not set: run the suite with scripts/test (it installs mcp-server-time)");
    let dir = tempfile::tempdir().unwrap();
    // The format every MCP host uses, pasted as it is.
    std::fs::write(
        dir.path().join("mcp.json"),
        json!({"mcpServers": {"time": {"command": time, "args": []}}}).to_string(),
    )
    .unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "mcp_servers_file = \"mcp.json\"\n").unwrap();
    let mock = MockOpenAi::start(
        vec![Turn::tool("mcp__time__get_current_time", json!({"timezone": "UTC"})), Turn::text("it is now")],
        0,
    )
    .await
    .unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    wait_ready(&s, "time", None).await;
    let (_, run) = s.post("/v1/runs", json!({"input": "what time is it?"})).await;
    let id = run["id"].as_str().unwrap();
    let done = s.wait_run(id).await;
    assert_eq!(done["status"], "completed", "{done}");
    let evs = s.events(id).await;
    let result = evs.iter().find(|e| e["type"] == "tool.result").unwrap();
    assert_eq!(result["data"]["is_error"], false, "{result}");
    let text = result["data"]["content"][0]["text"].as_str().unwrap();
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    assert_eq!(v["timezone"], "UTC", "{text}");
    assert!(v["datetime"].as_str().unwrap_or_default().starts_with("20"), "{text}");
    // The model was offered the server's tool with its schema.
    let offered = mock.requests()[0]["tools"].as_array().unwrap().clone();
    assert!(offered.iter().any(|t| t["function"]["name"] == "mcp__time__get_current_time"));
}

#[tokio::test(flavor = "multi_thread")]
async fn tools_list_changed_refreshes_the_tools() {
    // A plain JSON-RPC server in Python (no SDK needed).
    let python = "python3";
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/dynamic_mcp.py");
    let (_cfg_dir, cfg) = tenant_config(&[]);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let body = json!({"name": "dyn", "command": python, "args": [script]});
    let (c, v) = s.post("/v1/mcp-servers", body).await;
    assert_eq!(c, 201, "{v}");
    wait_ready(&s, "dyn", None).await;
    let names = |v: &Value| -> Vec<String> {
        v["data"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_string()).collect()
    };
    let (_, tools) = s.get("/v1/tools").await;
    assert!(names(&tools).contains(&"mcp__dyn__grow".to_string()));
    assert!(!names(&tools).contains(&"mcp__dyn__grown".to_string()));
    let (_, v) = s.post("/v1/tools/mcp__dyn__grow/call", json!({"arguments": {}})).await;
    assert_eq!(v["is_error"], false, "{v}");
    let mut seen = false;
    for _ in 0..100 {
        let (_, tools) = s.get("/v1/tools").await;
        if names(&tools).contains(&"mcp__dyn__grown".to_string()) {
            seen = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(seen, "notifications/tools/list_changed made agentd list the new tool");
    let (_, v) = s.post("/v1/tools/mcp__dyn__grown/call", json!({"arguments": {}})).await;
    assert!(text(&v).contains("grown tool answers"), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tenant_stdio_servers_run_sandboxed() {
    let Some(python) = ["/usr/bin/python3", "/usr/local/bin/python3"].into_iter().find(|p| Path::new(p).exists())
    else {
        panic!("python3 is required");
    };
    // The script lives outside the data dir, where the operator lets sandboxed servers read.
    let outside = tempfile::tempdir().unwrap();
    let (_cfg_dir, cfg) = tenant_config(&[outside.path()]);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    // A tiny stdio MCP server whose one tool reports what it can see and do.
    let script = s.data_dir.parent().unwrap().join("probe_mcp.py");
    std::fs::write(&script, common::probe_mcp_server(PROBE)).unwrap();
    let secret = s.data_dir.join("agentd.db");
    assert!(secret.exists());
    let script_out = outside.path().join("probe_mcp.py");
    std::fs::copy(&script, &script_out).unwrap();
    let body =
        json!({"name": "probe", "command": python, "args": [script_out.to_str().unwrap(), secret.to_str().unwrap()]});
    let (c, v) = s.post("/v1/mcp-servers", body).await;
    assert_eq!((c, v["sandbox"].as_bool()), (201, Some(true)), "{v}");
    let mut out = Value::Null;
    for _ in 0..200 {
        let (c, v) = s.post("/v1/tools/mcp__probe__probe/call", json!({"arguments": {}})).await;
        if c == 200 {
            out = v;
            break;
        }
        out = json!({"status": c, "body": v, "servers": s.get("/v1/mcp-servers").await.1});
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let report: Value =
        serde_json::from_str(out["content"][0]["text"].as_str().unwrap_or_else(|| panic!("{out}"))).unwrap();
    assert_eq!(report["sees_database"], false, "{report}");
    assert_eq!(report["can_write_home"], false, "{report}");
    assert!(report["visible_pids"].as_u64().unwrap() < 5, "own PID namespace: {report}");
}

/// A line-delimited JSON-RPC MCP server with one tool, `probe`.
const PROBE: &str = r#"
secret = sys.argv[1]
DESCRIPTION = "what can I see"
def probe():
    try:
        open("/root/agentd-probe", "w").write("x"); home = True
    except OSError:
        home = False
    pids = [d for d in os.listdir("/proc") if d.isdigit()]
    return {"sees_database": os.path.exists(secret), "can_write_home": home, "visible_pids": len(pids)}
"#;

#[tokio::test(flavor = "multi_thread")]
async fn operator_hints_make_an_mcp_tool_destructive() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    let text = format!(
        "[mcp_servers.everything]\ncommand = \"{}\"\nargs = [\"stdio\"]\n\
         [mcp_servers.everything.tool_hints]\n\"get-s*\" = {{ destructiveHint = true }}\n",
        everything()
    );
    std::fs::write(&cfg, text).unwrap();
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    wait_ready(&s, "everything", None).await;
    let (c, v) = s.post("/v1/tools/mcp__everything__get-sum/call", json!({"arguments": {"a": 2, "b": 3}})).await;
    assert_eq!(
        (c, v["error"]["code"].as_str(), v["error"]["risk"].as_str()),
        (403, Some("approval_required"), Some("high")),
        "{v}"
    );
    assert!(v["error"]["reasons"].to_string().contains("destructive"), "{v}");
    let (c, v) = s.post("/v1/tools/mcp__everything__echo/call", json!({"arguments": {"message": "hi"}})).await;
    assert_eq!(c, 200, "{v}");
}

/// Servers a tenant adds are stored: they come back after a restart, and
/// another node sharing the database connects them too.
#[tokio::test(flavor = "multi_thread")]
async fn servers_added_over_the_api_outlive_restarts_and_reach_every_node() {
    let (_cfg_dir, cfg) = tenant_config(&[]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let opts = || Opts { config: Some(&cfg), data_dir: Some(&data), ..Default::default() };
    let s = Server::start_with(opts());
    let body =
        json!({"name": "kept", "command": everything(), "args": ["stdio"], "env": {"TOKEN_X": "tenant-own-value"}});
    let (c, v) = s.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body), Some("acme")).await;
    assert_eq!(c, 201, "{v}");
    wait_ready(&s, "kept", Some("acme")).await;
    drop(s); // SIGKILL
    let s = Server::start_with(opts());
    let info = wait_ready(&s, "kept", Some("acme")).await;
    assert_eq!(info["scope"], "tenant");
    let call = json!({"arguments": {"message": "back"}});
    let (c, v) =
        s.call(reqwest::Method::POST, "/v1/tools/mcp__kept__echo/call", Some(call.clone()), Some("acme")).await;
    assert_eq!(c, 200, "{v}");
    let (_, other) = s.call(reqwest::Method::GET, "/v1/mcp-servers", None, Some("globex")).await;
    assert!(other["data"].as_array().unwrap().is_empty(), "{other}");
    let (c, _) = s.call(reqwest::Method::DELETE, "/v1/mcp-servers/kept", None, Some("acme")).await;
    assert_eq!(c, 204);
    drop(s);
    let s = Server::start_with(opts());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_, v) = s.call(reqwest::Method::GET, "/v1/mcp-servers", None, Some("acme")).await;
    assert!(v["data"].as_array().unwrap().is_empty(), "deleted stays deleted: {v}");
    drop(s);

    // Two nodes on one PostgreSQL database: added on A, used on B.
    let db = common::fresh_pg_database().await;
    let node = |id: &str| Opts {
        config: Some(&cfg),
        args: vec!["--database".into(), db.clone(), "--node-id".into(), id.into()],
        ..Default::default()
    };
    let a = Server::start_with(node("node-a"));
    let b = Server::start_with(node("node-b"));
    let body = json!({"name": "shared", "command": everything(), "args": ["stdio"]});
    let (c, v) = a.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body), Some("acme")).await;
    assert_eq!(c, 201, "{v}");
    wait_ready(&b, "shared", Some("acme")).await;
    let (c, v) = b.call(reqwest::Method::POST, "/v1/tools/mcp__shared__echo/call", Some(call), Some("acme")).await;
    assert_eq!(c, 200, "{v}");
    // Removed on A: gone from B too.
    let (c, _) = a.call(reqwest::Method::DELETE, "/v1/mcp-servers/shared", None, Some("acme")).await;
    assert_eq!(c, 204);
    let mut gone = false;
    for _ in 0..50 {
        let (_, v) = b.call(reqwest::Method::GET, "/v1/mcp-servers", None, Some("acme")).await;
        if v["data"].as_array().unwrap().is_empty() {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "removed on one node, still on the other");
}

/// A tenant's MCP server can take a secret as an environment variable: the
/// value is opened at connect, reaches the server's process, and is never
/// shown (the server's own report of its environment comes back masked).
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_server_gets_a_secret_in_its_environment() {
    const VALUE: &str = "mcp-s3cr3t-4c3b2a1908";
    let (_cfg_dir, cfg) = tenant_config(&[]);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let (c, v) = s.call(reqwest::Method::PUT, "/v1/secrets/tok", Some(json!({"value": VALUE})), Some("acme")).await;
    assert_eq!(c, 200, "{v}");
    let body = json!({
        "name": "envy",
        "command": everything(),
        "args": ["stdio"],
        "env": {"MY_TOKEN": {"secret": "tok"}, "PLAIN": "visible-plain"},
    });
    let (c, v) = s.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body), Some("acme")).await;
    assert_eq!(c, 201, "{v}");
    let info = wait_ready(&s, "envy", Some("acme")).await;
    assert!(!info.to_string().contains(VALUE), "{info}");

    let call = json!({"arguments": {}});
    let (c, v) = s.call(reqwest::Method::POST, "/v1/tools/mcp__envy__get-env/call", Some(call), Some("acme")).await;
    assert_eq!(c, 200, "{v}");
    let env: Value = serde_json::from_str(v["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(env["PLAIN"], "visible-plain", "{env}");
    assert_eq!(env["MY_TOKEN"], "[REDACTED]", "the value reached the server and is masked on the way back: {env}");
    assert!(!v.to_string().contains(VALUE));

    // A secret the tenant does not have is refused when the server is added.
    let body = json!({"name": "nope", "command": everything(), "env": {"T": {"secret": "missing"}}});
    let (c, v) = s.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body), Some("acme")).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{v}");
    // Another tenant cannot borrow it.
    let body = json!({"name": "borrow", "command": everything(), "env": {"T": {"secret": "tok"}}});
    let (c, _) = s.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body), Some("globex")).await;
    assert_eq!(c, 400);
}

/// An MCP server over streamable HTTP (plain JSON answers) whose one tool,
/// `whoami`, reports the `x-api-token` and `x-plain` headers it was sent.
const HEADER_ECHO_SERVER: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def log_message(self, *a): pass
    def do_GET(self):
        self.send_response(405); self.end_headers()
    def do_DELETE(self):
        self.send_response(200); self.end_headers()
    def do_POST(self):
        msg = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))))
        if "id" not in msg:
            self.send_response(202); self.end_headers(); return
        m = msg.get("method")
        if m == "initialize":
            r = {"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {"tools": {}},
                 "serverInfo": {"name": "echo-headers", "version": "1"}}
        elif m == "tools/list":
            r = {"tools": [{"name": "whoami", "description": "headers", "inputSchema": {"type": "object"}}]}
        elif m == "tools/call":
            seen = {"token": self.headers.get("x-api-token"), "plain": self.headers.get("x-plain")}
            r = {"content": [{"type": "text", "text": json.dumps(seen)}]}
        else:
            r = {}
        body = json.dumps({"jsonrpc": "2.0", "id": msg["id"], "result": r}).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
srv = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(srv.server_address[1], flush=True)
srv.serve_forever()
"#;

/// A tenant's MCP server over HTTP can take a secret as a header: opened at
/// connect, sent to the server, never shown.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenant_http_server_gets_a_secret_header() {
    use std::io::BufRead;
    const VALUE: &str = "hdr-s3cr3t-8e7d6c5b4a";
    let mut child = std::process::Command::new("python3")
        .args(["-c", HEADER_ECHO_SERVER])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let _server = Child(child);
    let port: u16 = line.trim().parse().unwrap();
    let (_cfg_dir, cfg) = tenant_config(&[]);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let (c, v) = s.call(reqwest::Method::PUT, "/v1/secrets/tok", Some(json!({"value": VALUE})), Some("acme")).await;
    assert_eq!(c, 200, "{v}");
    let body = json!({
        "name": "hdr",
        "url": format!("http://127.0.0.1:{port}/mcp"),
        "headers": {"X-Api-Token": {"secret": "tok"}, "X-Plain": "visible-plain"},
    });
    let (c, v) = s.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body), Some("acme")).await;
    assert_eq!(c, 201, "{v}");
    let info = wait_ready(&s, "hdr", Some("acme")).await;
    assert!(!info.to_string().contains(VALUE), "{info}");
    let (c, v) = s
        .call(reqwest::Method::POST, "/v1/tools/mcp__hdr__whoami/call", Some(json!({"arguments": {}})), Some("acme"))
        .await;
    assert_eq!(c, 200, "{v}");
    let seen: Value = serde_json::from_str(v["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(seen["plain"], "visible-plain", "{seen}");
    assert_eq!(seen["token"], "[REDACTED]", "the value reached the server and is masked on the way back: {seen}");
    assert!(!v.to_string().contains(VALUE));
    let (_, listed) = s.call(reqwest::Method::GET, "/v1/mcp-servers", None, Some("acme")).await;
    assert!(!listed.to_string().contains(VALUE), "{listed}");
    // A header secret the tenant lacks is refused when the server is added.
    let body =
        json!({"name": "nope", "url": format!("http://127.0.0.1:{port}/mcp"), "headers": {"X": {"secret": "missing"}}});
    let (c, v) = s.call(reqwest::Method::POST, "/v1/mcp-servers", Some(body), Some("acme")).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_request")), "{v}");
}
