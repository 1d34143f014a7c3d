//! The API's answers to a representative set of requests, compared with a
//! committed snapshot (`tests/fixtures/api_snapshot.json`), so a refactor of
//! the layers underneath cannot change a status code or a body unnoticed.
//! Ids, times and durations are normalised. `AGENTD_UPDATE_SNAPSHOT=1`
//! rewrites the file (review the diff before committing it).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::path::PathBuf;

use crate::common::{Opts, Server};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::{Map, Value, json};

const VOLATILE: &[&str] = &[
    "id",
    "session_id",
    "run_id",
    "approval_id",
    "call_id",
    "created_at",
    "updated_at",
    "started_at",
    "finished_at",
    "resolved_at",
    "expires_at",
    "at",
    "duration_ms",
    "node",
    "next_cursor",
    "approval_key",
    "idempotency_key",
    "pid",
];

/// Replaces `<prefix>_<hex…>` ids inside a string with `<id>`.
fn scrub_ids(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut token = String::new();
    let flush = |token: &mut String, out: &mut String| {
        let looks_like_id = token.split_once('_').is_some_and(|(p, rest)| {
            !p.is_empty()
                && p.chars().all(|c| c.is_ascii_lowercase())
                && rest.len() >= 16
                && rest.chars().all(|c| c.is_ascii_hexdigit())
        });
        out.push_str(if looks_like_id { "<id>" } else { token });
        token.clear();
    };
    for c in s.chars() {
        if c.is_ascii_alphanumeric() || c == '_' {
            token.push(c);
        } else {
            flush(&mut token, &mut out);
            out.push(c);
        }
    }
    flush(&mut token, &mut out);
    out
}

fn normalise(v: &mut Value) {
    match v {
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                if VOLATILE.contains(&k.as_str()) && !x.is_null() {
                    *x = json!(format!("<{k}>"));
                } else {
                    normalise(x);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(normalise),
        Value::String(s) => {
            let looks_like_time = s.len() >= 20 && s.as_bytes().get(4) == Some(&b'-') && s.contains('T');
            *s = if looks_like_time { "<time>".into() } else { scrub_ids(s) };
        }
        _ => {}
    }
}

struct Recorder<'a> {
    s: &'a Server,
    out: Map<String, Value>,
    /// Each answer as it came: status and body.
    raw: Vec<(String, u16, Value)>,
}

impl Recorder<'_> {
    async fn call(&mut self, name: &str, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.s.req(method.clone(), path);
        if let Some(b) = &body {
            r = r.json(b);
        }
        let resp = r.send().await.expect("request");
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap_or_default();
        let raw: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        self.raw.push((name.into(), status, raw.clone()));
        let mut shown = raw.clone();
        normalise(&mut shown);
        self.out.insert(
            name.into(),
            json!({"request": format!("{method} {}", scrub_ids(path)), "status": status, "body": shown}),
        );
        raw
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn api_answers_match_the_snapshot() {
    let mock = MockOpenAi::start(vec![Turn::tool("echo", json!({"x": 1})), Turn::text("done")], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default.policy]\nask = [\"write_file\"]\n").unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let mut r = Recorder { s: &s, out: Map::new(), raw: vec![] };
    use reqwest::Method as M;

    r.call("healthz", M::GET, "/healthz", None).await;
    r.call("readyz", M::GET, "/readyz", None).await;
    let ses =
        r.call("session_create", M::POST, "/v1/sessions", Some(json!({"title": "t", "metadata": {"k": 1}}))).await;
    let sid = ses["id"].as_str().unwrap().to_string();
    r.call("session_get", M::GET, &format!("/v1/sessions/{sid}"), None).await;
    r.call("session_missing", M::GET, "/v1/sessions/ses_0123456789abcdef0123", None).await;
    let run = r.call("run_create", M::POST, "/v1/runs", Some(json!({"input": "hello", "session_id": sid}))).await;
    let rid = run["id"].as_str().unwrap().to_string();
    s.wait_run(&rid).await;
    r.call("run_get", M::GET, &format!("/v1/runs/{rid}"), None).await;
    r.call("run_events", M::GET, &format!("/v1/runs/{rid}/events?type=run.created,tool.result,run.completed"), None)
        .await;
    r.call("run_cancel_finished", M::POST, &format!("/v1/runs/{rid}/cancel"), Some(json!({}))).await;
    r.call("run_bad_json", M::POST, "/v1/runs", None).await;
    r.call("run_unknown_session", M::POST, "/v1/runs", Some(json!({"input": "x", "session_id": "nope"}))).await;
    r.call("run_bad_busy", M::POST, "/v1/runs", Some(json!({"input": "x", "if_busy": "maybe"}))).await;
    r.call("session_runs", M::GET, &format!("/v1/sessions/{sid}/runs"), None).await;
    r.call("tool_echo", M::POST, "/v1/tools/echo/call", Some(json!({"arguments": {"a": [1, 2]}}))).await;
    r.call("tool_bad_args", M::POST, "/v1/tools/read_file/call", Some(json!({"arguments": {"path": 3}}))).await;
    r.call("tool_missing", M::POST, "/v1/tools/nope/call", Some(json!({"arguments": {}}))).await;
    r.call("tool_ask", M::POST, "/v1/tools/write_file/call", Some(json!({"arguments": {"path": "a", "content": "b"}})))
        .await;
    r.call("agent_create", M::POST, "/v1/agents", Some(json!({"name": "helper", "system_prompt": "be brief"}))).await;
    r.call("agent_list", M::GET, "/v1/agents", None).await;
    r.call(
        "template_create",
        M::POST,
        "/v1/prompt-templates",
        Some(json!({"name": "greet", "content": "Hi {{ who }}"})),
    )
    .await;
    r.call("template_get", M::GET, "/v1/prompt-templates/greet", None).await;
    r.call("template_run_missing_var", M::POST, "/v1/runs", Some(json!({"template": "greet", "arguments": {}}))).await;
    let http = json!({"name": "lookup", "url": "https://example.com/x", "input_schema": {"type": "object"}});
    r.call("http_tool_create", M::POST, "/v1/http-tools", Some(http)).await;
    r.call("http_tool_list", M::GET, "/v1/http-tools", None).await;
    let skill = "---\nname: notes\ndescription: Takes notes\n---\nWrite them down.\n";
    r.call("skill_create", M::POST, "/v1/skills", Some(json!({"content": skill}))).await;
    r.call("skill_get", M::GET, "/v1/skills/notes", None).await;
    r.call("approvals_list", M::GET, "/v1/approvals?status=pending", None).await;
    r.call("approval_missing", M::POST, "/v1/approvals/apr_0123456789abcdef0123", Some(json!({"decision": "approve"})))
        .await;
    r.call("mcp_list", M::GET, "/v1/mcp-servers", None).await;
    r.call("route_missing", M::GET, "/v1/nothing", None).await;
    r.call("method_not_allowed", M::DELETE, "/v1/runs", None).await;

    for (name, status, body) in &r.raw {
        reads_as_its_api_type(name, *status, body);
    }
    let got = Value::Object(r.out);
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/api_snapshot.json");
    if std::env::var("AGENTD_UPDATE_SNAPSHOT").is_ok() {
        std::fs::write(&path, serde_json::to_string_pretty(&got).unwrap() + "\n").unwrap();
        return;
    }
    let want: Value = serde_json::from_str(&std::fs::read_to_string(&path).expect("snapshot file")).unwrap();
    for (name, w) in want.as_object().unwrap() {
        assert_eq!(got.get(name), Some(w), "{name} changed");
    }
    assert_eq!(got.as_object().unwrap().len(), want.as_object().unwrap().len(), "requests added or removed");
}

/// The answer parses as the agentd-api type of its route and writes back
/// the same JSON: the API crate describes every field the server sends.
fn reads_as_its_api_type(name: &str, status: u16, body: &Value) {
    use agentd_api as api;
    fn exact<T: serde::de::DeserializeOwned + serde::Serialize>(name: &str, body: &Value) {
        let typed: T = serde_json::from_value(body.clone()).unwrap_or_else(|e| panic!("{name}: {e}\n{body}"));
        assert_eq!(&serde_json::to_value(&typed).unwrap(), body, "{name}: the API type drops or changes fields");
    }
    if status >= 400 {
        return exact::<api::ErrorBody>(name, body);
    }
    match name {
        "healthz" => exact::<api::Health>(name, body),
        "readyz" => exact::<api::Readiness>(name, body),
        "session_create" => exact::<api::Session>(name, body),
        "session_get" => exact::<api::SessionView>(name, body),
        "run_create" => exact::<api::RunCreated>(name, body),
        "run_get" => exact::<api::Run>(name, body),
        "run_events" => exact::<api::Page<api::StoredEvent>>(name, body),
        "session_runs" => exact::<api::Page<api::Run>>(name, body),
        "tool_echo" => exact::<api::ToolCallResult>(name, body),
        "agent_create" => exact::<api::AgentDef>(name, body),
        "agent_list" => exact::<api::Page<api::AgentListing>>(name, body),
        "template_create" | "template_get" => exact::<api::PromptTemplate>(name, body),
        "http_tool_create" => exact::<api::HttpToolDef>(name, body),
        "http_tool_list" => exact::<api::Page<api::HttpToolDef>>(name, body),
        "skill_create" => exact::<api::SkillUploaded>(name, body),
        "skill_get" => exact::<api::Skill>(name, body),
        "approvals_list" => exact::<api::Page<api::Approval>>(name, body),
        "mcp_list" => exact::<api::Page<api::McpServerInfo>>(name, body),
        other => panic!("{other}: no API type named for this answer"),
    }
}
