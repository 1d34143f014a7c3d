//! Starts the real `agentd` binary on a random loopback port with a
//! temporary data dir, and talks to it over HTTP.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::StreamExt;
use serde_json::Value;

pub(crate) const API_KEY: &str = "sk-test-SECRET-0123456789";

pub(crate) struct Server {
    pub url: String,
    pub data_dir: PathBuf,
    child: Child,
    _tmp: Option<tempfile::TempDir>,
    http: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// reqwest is built without a default TLS backend; tests pick ring like the binary does.
pub(crate) fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

pub(crate) fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_agentd")
}

/// Options for starting a server.
#[derive(Default)]
pub(crate) struct Opts<'a> {
    /// Mock base URL; `None` starts with no provider at all.
    pub mock: Option<&'a str>,
    pub data_dir: Option<&'a Path>,
    pub config: Option<&'a Path>,
    /// Extra command-line arguments for `serve`.
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
}

impl Server {
    pub(crate) fn start(mock: &str) -> Self {
        Self::start_with(Opts { mock: Some(mock), ..Default::default() })
    }

    pub(crate) fn start_with(o: Opts<'_>) -> Self {
        install_crypto();
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = o.data_dir.map(Path::to_path_buf).unwrap_or_else(|| tmp.path().join("data"));
        let mut cmd = Command::new(bin());
        cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data_dir)
            .current_dir(tmp.path())
            .env_remove("OPENAI_API_KEY")
            .env_remove("OPENAI_BASE_URL")
            .env_remove("AGENTD_CONFIG")
            .env_remove("AGENTD_LISTEN")
            .env_remove("AGENTD_DATA_DIR")
            .env_remove("DATABASE_URL")
            .env_remove("AGENTD_NODE_ID")
            .env_remove("AGENTD_TEST_TOOLS_FILE")
            .env_remove("AGENTD_AUTH")
            .env("AGENTD_LOG", std::env::var("TEST_AGENTD_LOG").unwrap_or("warn".into()))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(m) = o.mock {
            cmd.env("OPENAI_BASE_URL", m).env("OPENAI_API_KEY", API_KEY);
        }
        if let Some(c) = o.config {
            cmd.arg("--config").arg(c);
        }
        cmd.args(&o.args);
        for (k, v) in &o.env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start agentd");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let url = loop {
            let line = lines.next().expect("agentd exited before listening").expect("read stdout");
            if let Some(rest) = line.strip_prefix("agentd listening on ") {
                break rest.split_whitespace().next().unwrap_or_default().to_string();
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { url, data_dir, child, _tmp: Some(tmp), http: reqwest::Client::new() }
    }

    /// The server's process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Stops the server with SIGTERM and waits for it to exit.
    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and returns at once.
    pub(crate) fn terminate(&self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
    }

    /// Waits for the process to exit by itself.
    pub(crate) fn wait_exit(mut self) -> std::process::ExitStatus {
        self.child.wait().expect("wait")
    }

    /// Keeps the temp dir alive beyond this server (for restarts).
    pub(crate) fn take_tmp(&mut self) -> tempfile::TempDir {
        self._tmp.take().expect("tmp already taken")
    }

    pub(crate) fn req(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{}", self.url, path))
    }

    pub(crate) async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
        org: Option<&str>,
    ) -> (u16, Value) {
        let mut r = self.req(method, path);
        if let Some(b) = body {
            r = r.json(&b);
        }
        if let Some(o) = org {
            r = r.header("x-org-id", o);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        self.call(reqwest::Method::POST, path, Some(body), None).await
    }

    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        self.call(reqwest::Method::GET, path, None, None).await
    }

    /// Polls a run until it reaches a terminal state.
    pub(crate) async fn wait_run(&self, id: &str) -> Value {
        for _ in 0..1000 {
            let (code, run) = self.get(&format!("/v1/runs/{id}")).await;
            assert_eq!(code, 200, "{run}");
            if ["completed", "failed", "cancelled"].contains(&run["status"].as_str().unwrap_or("")) {
                return run;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("run {id} did not finish");
    }

    /// Every stored event of a run.
    pub(crate) async fn events(&self, id: &str) -> Vec<Value> {
        let (code, body) = self.get(&format!("/v1/runs/{id}/events?limit=1000")).await;
        assert_eq!(code, 200, "{body}");
        body["data"].as_array().cloned().unwrap_or_default()
    }

    /// Waits until the run's journal has an event of this type.
    pub(crate) async fn wait_event(&self, id: &str, ty: &str) {
        for _ in 0..1000 {
            if self.events(id).await.iter().any(|e| e["type"] == ty) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("run {id} never journaled {ty}");
    }
}

/// One SSE frame.
#[derive(Debug, Clone)]
pub(crate) struct Frame {
    pub id: String,
    pub event: String,
    pub data: Value,
}

/// Reads raw SSE frames until the server ends the stream (raw, so a frame
/// without `id:` is seen as such; comment-only keep-alives are skipped).
pub(crate) async fn frames(resp: reqwest::Response) -> Vec<Frame> {
    let out = frames_until(resp, |_| false).await;
    assert!(out.1, "SSE stream did not end");
    out.0
}

/// Reads SSE frames until `done` says so for the frames so far, the server
/// ends the stream (the flag is true then), or 30 s pass (it is false).
pub(crate) async fn frames_until(resp: reqwest::Response, done: impl Fn(&[Frame]) -> bool) -> (Vec<Frame>, bool) {
    let mut out = vec![];
    let mut buf = String::new();
    let mut s = resp.bytes_stream();
    let mut ended = false;
    let read = async {
        while let Some(chunk) = s.next().await {
            buf.push_str(&String::from_utf8_lossy(&chunk.expect("sse chunk")));
            while let Some(pos) = buf.find("\n\n") {
                let block: String = buf.drain(..pos + 2).collect();
                let mut f = Frame { id: String::new(), event: String::new(), data: Value::Null };
                let mut data = String::new();
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id:") {
                        f.id = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("event:") {
                        f.event = v.trim().to_string();
                    } else if let Some(v) = line.strip_prefix("data:") {
                        data.push_str(v.strip_prefix(' ').unwrap_or(v));
                    }
                }
                if !f.event.is_empty() || !data.is_empty() {
                    f.data = serde_json::from_str(&data).unwrap_or(Value::String(data));
                    out.push(f);
                    if done(&out) {
                        return;
                    }
                }
            }
        }
        ended = true;
    };
    let _ = tokio::time::timeout(Duration::from_secs(30), read).await;
    (out, ended)
}

pub(crate) fn types(events: &[Value]) -> Vec<String> {
    events.iter().map(|e| e["type"].as_str().unwrap_or("").to_string()).collect()
}

/// Creates an empty PostgreSQL database on the test server and returns its URL.
pub(crate) async fn fresh_pg_database() -> String {
    let admin = std::env::var("AGENTD_TEST_PG")
        .expect("AGENTD_TEST_PG is not set: run the suite with scripts/test (it starts PostgreSQL)");
    let name = format!("agentd_e2e_{}", agentd_core::new_id("db").trim_start_matches("db_"));
    let pool = sqlx::PgPool::connect(&admin).await.expect("connect to the test PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}"))).execute(&pool).await.expect("create database");
    pool.close().await;
    let base = admin.rsplit_once('/').map(|(b, _)| b).unwrap_or(&admin);
    format!("{base}/{name}")
}

/// A line-delimited JSON-RPC MCP server in Python with one tool, `probe`,
/// whose answer is the JSON of `probe()` as defined in `prelude` (which also
/// sets `DESCRIPTION`, the tool's description).
pub(crate) fn probe_mcp_server(prelude: &str) -> String {
    format!(
        r#"import json, os, sys
{prelude}
for line in sys.stdin:
    msg = json.loads(line)
    if "id" not in msg:
        continue
    m, r = msg.get("method"), None
    if m == "initialize":
        r = {{"protocolVersion": msg["params"]["protocolVersion"], "capabilities": {{"tools": {{}}}},
             "serverInfo": {{"name": "probe", "version": "1"}}}}
    elif m == "tools/list":
        r = {{"tools": [{{"name": "probe", "description": DESCRIPTION, "inputSchema": {{"type": "object"}}}}]}}
    elif m == "tools/call":
        r = {{"content": [{{"type": "text", "text": json.dumps(probe())}}]}}
    else:
        r = {{}}
    sys.stdout.write(json.dumps({{"jsonrpc": "2.0", "id": msg["id"], "result": r}}) + "\n")
    sys.stdout.flush()
"#
    )
}
