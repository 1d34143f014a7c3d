//! API keys and roles against the real binary: the first key made on the
//! database before any server, auth on by default once it exists, 401 /
//! 403 / 404 by key, role and tenant, revocation and expiry, and the
//! refusal to serve a network address with no key.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::path::Path;
use std::process::Command;

use crate::common::{self, Opts, Server};
use reqwest::Method;
use serde_json::{Value, json};

/// `agentd keys create` on the database: the key is alone on the last line.
pub(crate) fn make_key(data: &Path, args: &[&str]) -> String {
    let out = Command::new(common::bin())
        .args(["keys", "create", "--data-dir"])
        .arg(data)
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("AGENTD_CONFIG")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let last = stdout.lines().last().unwrap_or_default().to_string();
    assert!(last.starts_with("agk_") && last.len() == 47 && !last.contains(' '), "{stdout}");
    last
}

pub(crate) async fn call(
    s: &Server,
    key: Option<&str>,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = s.req(method, path);
    if let Some(k) = key {
        r = r.bearer_auth(k);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

pub(crate) fn code_of(v: &Value) -> &str {
    v["error"]["code"].as_str().unwrap_or("<none>")
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_roles_and_tenant_scope() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let operator = make_key(&data, &["--role", "operator", "--name", "root"]);
    let member = make_key(&data, &["--role", "member", "--org", "acme"]);
    let viewer = make_key(&data, &["--role", "viewer", "--org", "acme"]);
    let other = make_key(&data, &["--role", "member", "--org", "globex"]);
    let s = Server::start_with(Opts { data_dir: Some(&data), ..Default::default() });

    // A key exists, so auth is on by default; health and readiness stay open.
    let (c, ready) = s.get("/readyz").await;
    assert_eq!((c, ready["auth"].as_str()), (503, Some("on")), "{ready}");
    assert_eq!(s.get("/healthz").await.0, 200);

    // No key, a malformed one, an unknown one: 401 with a Bearer challenge.
    let resp = s.req(Method::GET, "/v1/sessions").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    assert_eq!(resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()), Some("Bearer"));
    assert_eq!(code_of(&resp.json().await.unwrap()), "unauthorized");
    for bad in ["nonsense", "agk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        let (c, v) = call(&s, Some(bad), Method::GET, "/v1/sessions", None).await;
        assert_eq!((c, code_of(&v)), (401, "unauthorized"), "{bad}");
    }

    // The key fixes the org: x-org-id cannot move a member key to another org.
    let resp = s
        .req(Method::POST, "/v1/sessions")
        .header("x-api-key", &member)
        .header("x-org-id", "globex")
        .json(&json!({"title": "acme's"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let sid = resp.json::<Value>().await.unwrap()["id"].as_str().unwrap().to_string();
    let (c, v) = call(&s, Some(&other), Method::GET, &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!((c, code_of(&v)), (404, "session_not_found"), "another org's session does not exist for it");
    assert_eq!(call(&s, Some(&other), Method::GET, "/v1/sessions", None).await.1["data"], json!([]));
    assert_eq!(call(&s, Some(&viewer), Method::GET, &format!("/v1/sessions/{sid}"), None).await.0, 200);

    // Roles: a viewer reads but does not write; a member does not manage keys or credentials.
    let (c, v) = call(&s, Some(&viewer), Method::POST, "/v1/sessions", Some(json!({}))).await;
    assert_eq!((c, code_of(&v)), (403, "forbidden"));
    let (c, v) = call(&s, Some(&viewer), Method::DELETE, &format!("/v1/sessions/{sid}"), None).await;
    assert_eq!((c, code_of(&v)), (403, "forbidden"));
    assert_eq!(call(&s, Some(&member), Method::GET, "/v1/api-keys", None).await.0, 403);
    let http = json!({"name": "lookup", "url": "https://example.com/x"});
    assert_eq!(call(&s, Some(&member), Method::POST, "/v1/http-tools", Some(http)).await.0, 403);

    // An operator acts in the org x-org-id names, and makes an admin for acme.
    let resp = s
        .req(Method::POST, "/v1/sessions")
        .bearer_auth(&operator)
        .header("x-org-id", "acme")
        .json(&json!({"title": "from the operator"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    assert_eq!(call(&s, Some(&member), Method::GET, "/v1/sessions", None).await.1["data"].as_array().unwrap().len(), 2);
    let (c, made) =
        call(&s, Some(&operator), Method::POST, "/v1/api-keys", Some(json!({"role": "admin", "org": "acme"}))).await;
    assert_eq!(c, 201, "{made}");
    let admin = made["secret"].as_str().unwrap().to_string();
    assert!(made.get("hash").is_none());

    // An admin sees and makes keys of its own org only, at most admin.
    let (c, listed) = call(&s, Some(&admin), Method::GET, "/v1/api-keys", None).await;
    assert_eq!(c, 200);
    let orgs: Vec<&str> = listed["data"].as_array().unwrap().iter().map(|k| k["org"].as_str().unwrap()).collect();
    assert_eq!(orgs, ["acme", "acme", "acme"], "{listed}");
    assert!(!listed.to_string().contains(&member), "secrets are never listed");
    for body in [json!({"role": "member", "org": "globex"}), json!({"role": "operator"})] {
        let (c, v) = call(&s, Some(&admin), Method::POST, "/v1/api-keys", Some(body)).await;
        assert_eq!((c, code_of(&v)), (403, "forbidden"), "{v}");
    }
    let (_, all) = call(&s, Some(&operator), Method::GET, "/v1/api-keys", None).await;
    let id_of = |org: &str, role: &str| {
        all["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|k| k["org"] == org && k["role"] == role)
            .map(|k| k["id"].as_str().unwrap().to_string())
            .unwrap()
    };
    let (c, v) =
        call(&s, Some(&admin), Method::GET, &format!("/v1/api-keys/{}", id_of("globex", "member")), None).await;
    assert_eq!((c, code_of(&v)), (404, "key_not_found"), "another org's key does not exist for an admin");

    // Revoking is immediate.
    let member_id = id_of("acme", "member");
    let (c, v) = call(&s, Some(&admin), Method::DELETE, &format!("/v1/api-keys/{member_id}"), None).await;
    assert_eq!(c, 200, "{v}");
    assert!(v["revoked_at"].is_string());
    let (c, v) = call(&s, Some(&member), Method::GET, "/v1/sessions", None).await;
    assert_eq!((c, code_of(&v)), (401, "unauthorized"));

    // An expired key is refused.
    let body = json!({"role": "member", "org": "acme", "expires_at": "2001-01-01T00:00:00Z"});
    let (c, made) = call(&s, Some(&admin), Method::POST, "/v1/api-keys", Some(body)).await;
    assert_eq!(c, 201, "{made}");
    let (c, v) = call(&s, Some(made["secret"].as_str().unwrap()), Method::GET, "/v1/sessions", None).await;
    assert_eq!((c, code_of(&v)), (401, "unauthorized"));
    assert!(v["error"]["message"].as_str().unwrap().contains("expired"), "{v}");

    // The CLI lists and revokes against the server with a key.
    let out =
        Command::new(common::bin()).args(["keys", "list", "--url", &s.url, "--api-key", &admin]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 4);

    // Every command that talks to a server sends --api-key.
    let out = Command::new(common::bin()).args(["sessions", "--url", &s.url, "--api-key", &viewer]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(&sid));
    let out =
        Command::new(common::bin()).args(["sessions", "--url", &s.url]).env_remove("AGENTD_API_KEY").output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread")]
async fn serving_a_network_address_without_keys_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let out = Command::new(common::bin())
        .args(["serve", "--listen", "0.0.0.0:0", "--data-dir"])
        .arg(tmp.path().join("data"))
        .env_remove("AGENTD_AUTH")
        .env_remove("DATABASE_URL")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("agentd keys create --role operator"), "{err}");
    // On loopback with no key, auth is off and everything works as before.
    let s = Server::start_with(Opts { data_dir: Some(&tmp.path().join("data")), ..Default::default() });
    assert_eq!(s.get("/readyz").await.1["auth"], "off");
    assert_eq!(s.post("/v1/sessions", json!({})).await.0, 201);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_over_the_request_limit_gets_429_then_recovers() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = tmp.path().join("agentd.toml");
    std::fs::write(
        &cfg,
        "[limits.default]\nrequests_per_minute = 60\n[limits.orgs.globex]\nrequests_per_minute = 600\n",
    )
    .unwrap();
    let acme = make_key(&data, &["--role", "member", "--org", "acme"]);
    let globex = make_key(&data, &["--role", "member", "--org", "globex"]);
    let s = Server::start_with(Opts { data_dir: Some(&data), config: Some(&cfg), ..Default::default() });

    // 60 a minute allows a burst of 60; the next one waits.
    let mut limited = None;
    for i in 0..70 {
        let resp = s.req(Method::GET, "/v1/sessions").bearer_auth(&acme).send().await.unwrap();
        if resp.status().as_u16() == 429 {
            let wait: u64 = resp.headers()["retry-after"].to_str().unwrap().parse().unwrap();
            let body: Value = resp.json().await.unwrap();
            assert_eq!(code_of(&body), "rate_limited");
            limited = Some((i, wait));
            break;
        }
        assert_eq!(resp.status().as_u16(), 200);
    }
    let (at, wait) = limited.expect("the burst was never limited");
    assert!((60..=61).contains(&at) && (1..=2).contains(&wait), "limited at request {at}, wait {wait} s");

    // Another organisation's key is not slowed by it.
    for _ in 0..100 {
        assert_eq!(call(&s, Some(&globex), Method::GET, "/v1/sessions", None).await.0, 200);
    }
    // After the wait, the limited key gets through again.
    tokio::time::sleep(std::time::Duration::from_secs(wait)).await;
    assert_eq!(call(&s, Some(&acme), Method::GET, "/v1/sessions", None).await.0, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn changes_are_audited_with_the_acting_key() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let operator = make_key(&data, &["--role", "operator"]);
    let admin = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let member = make_key(&data, &["--role", "member", "--org", "acme", "--user", "alice"]);
    let globex = make_key(&data, &["--role", "admin", "--org", "globex"]);
    let s = Server::start_with(Opts { data_dir: Some(&data), ..Default::default() });

    let resp = s
        .req(Method::POST, "/v1/http-tools")
        .bearer_auth(&admin)
        .json(&json!({"name": "lookup", "url": "https://example.com/x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 201);
    let request_id = resp.headers()["x-request-id"].to_str().unwrap().to_string();
    let tpl = json!({"name": "greet", "content": "Hi {{ who }}"});
    assert_eq!(call(&s, Some(&member), Method::POST, "/v1/prompt-templates", Some(tpl)).await.0, 201);
    // Refused and failed changes, reads and another org's changes are not in acme's log.
    assert_eq!(call(&s, Some(&member), Method::DELETE, "/v1/http-tools/lookup", None).await.0, 403);
    assert_eq!(call(&s, Some(&admin), Method::DELETE, "/v1/agents/nope", None).await.0, 404);
    assert_eq!(call(&s, Some(&admin), Method::GET, "/v1/http-tools", None).await.0, 200);
    let other = json!({"name": "other", "url": "https://example.com/y"});
    assert_eq!(call(&s, Some(&globex), Method::POST, "/v1/http-tools", Some(other)).await.0, 201);

    let (c, log) = call(&s, Some(&admin), Method::GET, "/v1/audit", None).await;
    assert_eq!(c, 200, "{log}");
    let rows = log["data"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{log}");
    let ids: Vec<String> = {
        let (_, keys) = call(&s, Some(&operator), Method::GET, "/v1/api-keys", None).await;
        let find = |org: &str, role: &str| {
            keys["data"].as_array().unwrap().iter().find(|k| k["org"] == org && k["role"] == role).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string()
        };
        vec![find("acme", "admin"), find("acme", "member")]
    };
    assert_eq!(
        (rows[0]["method"].as_str(), rows[0]["route"].as_str(), rows[0]["key_id"].as_str(), rows[0]["role"].as_str()),
        (Some("POST"), Some("/v1/http-tools"), Some(ids[0].as_str()), Some("admin"))
    );
    assert_eq!(rows[0]["request_id"], request_id);
    assert_eq!((rows[1]["route"].as_str(), rows[1]["user"].as_str()), (Some("/v1/prompt-templates"), Some("alice")));
    assert_eq!(rows[1]["key_id"], ids[1]);

    // Members do not read the log; the operator reads every org's.
    assert_eq!(call(&s, Some(&member), Method::GET, "/v1/audit", None).await.0, 403);
    let (_, all) = call(&s, Some(&operator), Method::GET, "/v1/audit", None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 3, "{all}");
}

/// For every operation the OpenAPI document lists: no key, a revoked key
/// and an expired key are 401; a viewer's write is 403; another org's key
/// on one of this org's resources is 404.
#[tokio::test(flavor = "multi_thread")]
async fn every_documented_route_checks_keys_roles_and_tenants() {
    let mock = agentd_testkit::MockOpenAi::start(vec![agentd_testkit::Turn::text("done")], 0).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let admin = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let viewer = make_key(&data, &["--role", "viewer", "--org", "acme"]);
    let stranger = make_key(&data, &["--role", "admin", "--org", "globex"]);
    let revoked = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let expired = make_key(&data, &["--role", "admin", "--org", "acme", "--expires", "1s"]);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), data_dir: Some(&data), ..Default::default() });

    // acme's resources, one of each kind a path can name.
    let post = |path: &'static str, body: Value| {
        let (s, admin) = (&s, admin.clone());
        async move {
            let (c, v) = call(s, Some(&admin), Method::POST, path, Some(body)).await;
            assert!((200..300).contains(&c), "{path}: {c} {v}");
            v
        }
    };
    let sid = post("/v1/sessions", json!({})).await["id"].as_str().unwrap().to_string();
    let rid = post("/v1/runs", json!({"input": "hi", "session_id": sid})).await["id"].as_str().unwrap().to_string();
    post("/v1/http-tools", json!({"name": "lookup", "url": "https://example.com/x"})).await;
    post("/v1/agents", json!({"name": "helper"})).await;
    post("/v1/teams", json!({"name": "crew", "lead": {"agent": "helper", "role": "lead"}})).await;
    post("/v1/skills", json!({"content": "---\nname: notes\ndescription: d\n---\nbody\n"})).await;
    post("/v1/prompt-templates", json!({"name": "greet", "content": "Hi"})).await;
    post("/v1/prompts", json!({"name": "hello", "text": "Hi"})).await;
    let (c, v) = call(&s, Some(&admin), Method::PUT, "/v1/secrets/db", Some(json!({"value": "db-pw-51c2e9"}))).await;
    assert_eq!(c, 200, "{v}");
    // A public address literal: built and stored without any connection.
    post(
        "/v1/providers",
        json!({"name": "own", "type": "openai", "base_url": "http://8.8.8.8/v1", "api_key": {"secret": "db"}}),
    )
    .await;
    post("/v1/model-profiles", json!({"name": "fast", "provider": "own", "model": "m"})).await;
    let kid = post("/v1/api-keys", json!({"role": "viewer", "org": "acme"})).await["id"].as_str().unwrap().to_string();
    let (_, keys) = call(&s, Some(&admin), Method::GET, "/v1/api-keys", None).await;
    let revoked_id = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| revoked.starts_with(k["prefix"].as_str().unwrap()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(call(&s, Some(&admin), Method::DELETE, &format!("/v1/api-keys/{revoked_id}"), None).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;

    let (c, doc) = s.get("/v1/openapi.json").await;
    assert_eq!(c, 200, "the document is open");
    let mut checked = 0;
    for (path, ops) in doc["paths"].as_object().unwrap() {
        for (method, _) in ops.as_object().unwrap() {
            if ["/healthz", "/readyz", "/v1/openapi.json"].contains(&path.as_str()) {
                continue;
            }
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let concrete = path
                .replace("/runs/{id}", &format!("/runs/{rid}"))
                .replace("/sessions/{id}", &format!("/sessions/{sid}"))
                .replace("/api-keys/{id}", &format!("/api-keys/{kid}"))
                .replace("/approvals/{id}", "/approvals/apr_0123456789abcdef0123")
                .replace("/http-tools/{name}", "/http-tools/lookup")
                .replace("/mcp-servers/{name}", "/mcp-servers/nope")
                .replace("/agents/{name}", "/agents/helper")
                .replace("/teams/{name}", "/teams/crew")
                .replace("/skills/{name}", "/skills/notes")
                .replace("/prompt-templates/{name}", "/prompt-templates/greet")
                .replace("/prompts/{name}", "/prompts/hello")
                .replace("/tools/{name}", "/tools/echo")
                .replace("/secrets/{name}", "/secrets/db")
                .replace("/files/{path}", "/files/notes.txt")
                .replace("/providers/{name}", "/providers/own")
                .replace("/model-profiles/{name}", "/model-profiles/fast")
                .replace("/orgs/{org}", "/orgs/acme");
            let what = format!("{method} {concrete}");
            for (key, why) in [(None, "no key"), (Some(&revoked), "revoked"), (Some(&expired), "expired")] {
                let (c, v) = call(&s, key.map(String::as_str), m.clone(), &concrete, None).await;
                assert_eq!((c, code_of(&v)), (401, "unauthorized"), "{what} with {why}");
            }
            // A preview changes nothing: viewers may.
            if m != Method::GET && path != "/v1/template-preview" {
                let (c, v) = call(&s, Some(&viewer), m.clone(), &concrete, None).await;
                assert_eq!((c, code_of(&v)), (403, "forbidden"), "{what} as a viewer");
            }
            // A PUT of a secret by name creates the caller's own; a builtin tool is nobody's.
            let someone_elses = path.starts_with("/v1/tools/") || (method == "put" && path == "/v1/secrets/{name}");
            if path.contains('{') && !someone_elses {
                let body = match (method.as_str(), path.as_str()) {
                    ("put", "/v1/skills/{name}") => {
                        Some(json!({"content": "---\nname: notes\ndescription: d\n---\nx\n"}))
                    }
                    ("put", "/v1/prompt-templates/{name}") => Some(json!({"content": "x"})),
                    ("put", "/v1/prompts/{name}") => Some(json!({"text": "x"})),
                    ("put", "/v1/agents/{name}") => Some(json!({"name": "helper"})),
                    ("put", "/v1/teams/{name}") => {
                        Some(json!({"name": "crew", "lead": {"agent": "default", "role": "lead"}}))
                    }
                    ("post", "/v1/teams/{name}/runs") => Some(json!({"input": "x"})),
                    ("post", "/v1/teams/{name}/blackboard") => Some(json!({"kind": "note", "content": "x"})),
                    ("post", "/v1/approvals/{id}") => Some(json!({"decision": "approve"})),
                    ("post", "/v1/runs/{id}/cancel") => Some(json!({})),
                    ("post", "/v1/runs/{id}/messages") => Some(json!({"input": "x"})),
                    ("put", "/v1/orgs/{org}/limits") => Some(json!({})),
                    ("post", "/v1/sessions/{id}/rename-file") => Some(json!({"from": "a", "to": "b"})),
                    _ => None,
                };
                let (c, v) = call(&s, Some(&stranger), m.clone(), &concrete, body).await;
                assert_eq!(c, 404, "{what} with another org's key: {v}");
            }
            checked += 1;
        }
    }
    assert!(checked >= 40, "only {checked} operations checked");
}

/// schemathesis fuzzes every operation of the OpenAPI document against a
/// live server with a valid key: no 5xx, and every answer's status,
/// content type and body as the document says (bounded, seeded).
#[tokio::test(flavor = "multi_thread")]
async fn schemathesis_finds_no_server_errors_and_no_answers_outside_the_document() {
    let st = std::env::var("AGENTD_TEST_SCHEMATHESIS")
        .expect("AGENTD_TEST_SCHEMATHESIS is not set: run the suite with scripts/test (it installs schemathesis)");
    let mock = agentd_testkit::MockOpenAi::start(vec![], 0).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let key = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), data_dir: Some(&data), ..Default::default() });
    let url = format!("{}/v1/openapi.json", s.url);
    let (_, doc) = s.get("/v1/openapi.json").await;
    let ops: usize = doc["paths"].as_object().unwrap().values().map(|p| p.as_object().unwrap().len()).sum();
    let out = tokio::task::spawn_blocking(move || {
        Command::new(st)
            .args(["run", &url, "-H", &format!("Authorization: Bearer {key}")])
            .args(["--max-examples", "10", "--seed", "1", "-w", "2", "--phases", "fuzzing"])
            // Revoking its own key would leave the rest of the run with 401s.
            .args(["--exclude-operation-id", "delete /v1/api-keys/{id}"])
            .args([
                "--checks",
                "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance",
            ])
            .env("NO_COLOR", "1")
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    // Colour codes sit between the words even with NO_COLOR; drop them.
    let report: String = {
        let raw = String::from_utf8_lossy(&out.stdout).to_string();
        let mut plain = String::with_capacity(raw.len());
        let mut chars = raw.chars();
        while let Some(c) = chars.next() {
            if c == '\u{1b}' {
                chars.by_ref().take_while(|c| !c.is_ascii_alphabetic()).for_each(drop);
            } else {
                plain.push(c);
            }
        }
        plain
    };
    assert!(out.status.success(), "{report}\n{}", String::from_utf8_lossy(&out.stderr));
    // "N selected / M total": every operation but the excluded one was fuzzed (schemathesis
    // also counts one fewer than the document: it does not fuzz the document's own route).
    let line = report.lines().find(|l| l.contains(" selected / ")).unwrap_or_default();
    let nums: Vec<usize> = line.split_whitespace().filter_map(|w| w.parse().ok()).collect();
    assert!(nums.len() == 2 && nums[0] + 2 >= ops, "ops={ops}\n{report}");
    assert!(report.contains(" passed"), "{report}");
}

#[tokio::test(flavor = "multi_thread")]
async fn secrets_are_sealed_at_rest_and_never_shown() {
    const VALUE: &str = "pg-password-7f3a9c1e5b";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let admin = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let member = make_key(&data, &["--role", "member", "--org", "acme"]);
    let other = make_key(&data, &["--role", "admin", "--org", "globex"]);
    let s = Server::start_with(Opts { data_dir: Some(&data), ..Default::default() });

    let (c, v) = call(&s, Some(&admin), Method::PUT, "/v1/secrets/db", Some(json!({"value": VALUE}))).await;
    assert_eq!(c, 200, "{v}");
    assert_eq!(v["name"], "db");
    let (c, v) =
        call(&s, Some(&admin), Method::PUT, "/v1/secrets/db", Some(json!({"value": format!("{VALUE}-2")}))).await;
    assert_eq!(c, 200, "replacing is the same call: {v}");
    let (c, listed) = call(&s, Some(&admin), Method::GET, "/v1/secrets", None).await;
    assert_eq!(c, 200);
    assert_eq!(listed["data"].as_array().unwrap().len(), 1);
    assert!(!listed.to_string().contains(VALUE), "a value is never shown: {listed}");
    assert_eq!(call(&s, Some(&member), Method::GET, "/v1/secrets", None).await.0, 403, "secrets are for admins");
    assert_eq!(call(&s, Some(&other), Method::GET, "/v1/secrets", None).await.1["data"], json!([]));
    assert_eq!(call(&s, Some(&other), Method::DELETE, "/v1/secrets/db", None).await.0, 404);
    let (_, log) = call(&s, Some(&admin), Method::GET, "/v1/audit", None).await;
    assert!(log["data"].as_array().unwrap().iter().any(|e| e["route"] == "/v1/secrets/{name}"), "{log}");
    assert!(!log.to_string().contains(VALUE));

    // At rest the value is sealed: no database file holds it, and the key file is the owner's alone.
    for f in std::fs::read_dir(&data).unwrap().flatten() {
        let bytes = std::fs::read(f.path()).unwrap_or_default();
        let found = bytes.windows(VALUE.len()).any(|w| w == VALUE.as_bytes());
        assert!(!found, "{} holds the secret in the clear", f.path().display());
    }
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(data.join("secret.key")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);

    assert_eq!(call(&s, Some(&admin), Method::DELETE, "/v1/secrets/db", None).await.0, 204);
    assert_eq!(call(&s, Some(&admin), Method::DELETE, "/v1/secrets/db", None).await.0, 404);
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_sums_tokens_cost_runs_and_tool_calls() {
    use agentd_testkit::{MockOpenAi, Turn};
    let mock = MockOpenAi::start(vec![Turn::tool("echo", json!({"x": 1})), Turn::text("done")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (c, run) = s.post("/v1/runs", json!({"input": "hi"})).await;
    assert_eq!(c, 202, "{run}");
    let done = s.wait_run(run["id"].as_str().unwrap()).await;
    let model = done["model"].as_str().unwrap().to_string();
    let tokens = done["usage"]["total_tokens"].as_u64().unwrap();
    assert!(tokens > 0, "{done}");

    let (c, by_model) = s.get("/v1/usage?group_by=model").await;
    assert_eq!(c, 200, "{by_model}");
    assert_eq!(by_model["data"].as_array().unwrap().len(), 1, "{by_model}");
    assert_eq!(by_model["data"][0]["key"], model.as_str());
    let total = &by_model["total"];
    assert_eq!(
        (total["runs"].as_u64(), total["tool_calls"].as_u64(), total["total_tokens"].as_u64()),
        (Some(1), Some(1), Some(tokens))
    );
    let (_, by_day) = s.get("/v1/usage").await;
    assert_eq!(by_day["group_by"], "day");
    assert_eq!(by_day["data"][0]["key"].as_str().map(str::len), Some(10), "{by_day}");
    // Another org used nothing; a period before the run holds nothing.
    let resp = s.req(Method::GET, "/v1/usage").header("x-org-id", "other").send().await.unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["total"]["runs"], 0);
    assert_eq!(s.get("/v1/usage?from=2001-01-01&to=2001-01-02").await.1["total"]["runs"], 0);
    for bad in ["/v1/usage?group_by=planet", "/v1/usage?from=yesterday"] {
        let (c, v) = s.get(bad).await;
        assert_eq!((c, code_of(&v)), (400, "invalid_query"), "{bad}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_run_over_the_daily_token_budget_fails_budget_exceeded() {
    use agentd_testkit::{MockOpenAi, Turn};
    // acme's run asks for a tool; the next model call is globex's (acme's second step never asks).
    let script = vec![Turn::tool("echo", json!({"x": 1})), Turn::text("globex answer")];
    let mock = MockOpenAi::start(script, 0).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("agentd.toml");
    std::fs::write(&cfg, "[limits.orgs.acme]\ntokens_per_day = 1\n").unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let in_org = |org: &'static str, body: Value| {
        let s = &s;
        async move {
            let resp = s.req(Method::POST, "/v1/runs").header("x-org-id", org).json(&body).send().await.unwrap();
            let run: Value = resp.json().await.unwrap();
            let id = run["id"].as_str().unwrap().to_string();
            for _ in 0..1000 {
                let r: Value = s
                    .req(Method::GET, &format!("/v1/runs/{id}"))
                    .header("x-org-id", org)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                if ["completed", "failed", "cancelled"].contains(&r["status"].as_str().unwrap_or("")) {
                    return r;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
            panic!("run {id} did not finish");
        }
    };
    // The first step crosses the budget: the step finishes, the next does not start.
    let first = in_org("acme", json!({"input": "hi"})).await;
    assert_eq!(
        (first["status"].as_str(), first["error"]["code"].as_str()),
        (Some("failed"), Some("budget_exceeded")),
        "{first}"
    );
    assert!(first["usage"]["total_tokens"].as_u64().unwrap() > 1);
    // A new run of the org does not start at all; another org is not held back.
    let second = in_org("acme", json!({"input": "again"})).await;
    assert_eq!(second["error"]["code"], "budget_exceeded", "{second}");
    assert_eq!(second["usage"]["total_tokens"], 0);
    let other = in_org("globex", json!({"input": "hi"})).await;
    assert_eq!(
        (other["status"].as_str(), other["output"].as_str()),
        (Some("completed"), Some("globex answer")),
        "{other}"
    );
    assert_eq!(mock.calls(), 2, "no model call over the budget");
}

#[tokio::test(flavor = "multi_thread")]
async fn operators_set_an_orgs_limits_over_the_api() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let operator = make_key(&data, &["--role", "operator"]);
    let admin = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let member = make_key(&data, &["--role", "member", "--org", "acme"]);
    let stranger = make_key(&data, &["--role", "admin", "--org", "globex"]);
    let s = Server::start_with(Opts { data_dir: Some(&data), ..Default::default() });

    let limits = json!({"requests_per_minute": 3});
    let (c, v) = call(&s, Some(&admin), Method::PUT, "/v1/orgs/acme/limits", Some(limits.clone())).await;
    assert_eq!((c, code_of(&v)), (403, "forbidden"), "an admin does not set its own limits");
    let (c, v) = call(&s, Some(&stranger), Method::GET, "/v1/orgs/acme/limits", None).await;
    assert_eq!(c, 404, "another org's limits do not exist for an admin: {v}");
    let (c, v) = call(&s, Some(&operator), Method::PUT, "/v1/orgs/acme/limits", Some(limits)).await;
    assert_eq!((c, v["requests_per_minute"].as_u64()), (200, Some(3)), "{v}");
    let (c, v) = call(&s, Some(&admin), Method::GET, "/v1/orgs/acme/limits", None).await;
    assert_eq!((c, v["requests_per_minute"].as_u64()), (200, Some(3)), "{v}");

    // They apply from the next requests: 3 at once, then 429.
    let mut codes = vec![];
    for _ in 0..4 {
        codes.push(call(&s, Some(&member), Method::GET, "/v1/sessions", None).await.0);
    }
    assert_eq!(codes, [200, 200, 200, 429]);
    assert_eq!(call(&s, Some(&stranger), Method::GET, "/v1/sessions", None).await.0, 200, "globex is untouched");
}

/// Two orgs on one node: acme floods the queue but runs at most its
/// `concurrent_runs` at once; globex's run is not held behind acme's backlog.
#[tokio::test(flavor = "multi_thread")]
async fn an_org_at_its_concurrency_limit_does_not_hold_back_another() {
    use agentd_testkit::MockOpenAi;
    let mock = MockOpenAi::start_with_latency(vec![], 0, std::time::Duration::from_millis(400)).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("agentd.toml");
    std::fs::write(&cfg, "[scheduler]\nmax_concurrent_runs = 4\n[limits.orgs.acme]\nconcurrent_runs = 2\n").unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let as_org = |org: &'static str, m: Method, path: String, body: Option<Value>| {
        let s = &s;
        async move {
            let mut r = s.req(m, &path).header("x-org-id", org);
            if let Some(b) = body {
                r = r.json(&b);
            }
            r.send().await.unwrap().json::<Value>().await.unwrap()
        }
    };
    let mut acme = vec![];
    for i in 0..12 {
        let run = as_org("acme", Method::POST, "/v1/runs".into(), Some(json!({"input": format!("job {i}")}))).await;
        acme.push(run["id"].as_str().unwrap().to_string());
    }
    let theirs = as_org("globex", Method::POST, "/v1/runs".into(), Some(json!({"input": "mine"}))).await;
    let theirs = theirs["id"].as_str().unwrap().to_string();
    let (mut most_running, mut acme_left_when_globex_done) = (0, None);
    for _ in 0..3000 {
        let running = as_org("acme", Method::GET, "/v1/runs?status=running&limit=100".into(), None).await;
        most_running = most_running.max(running["data"].as_array().unwrap().len());
        if acme_left_when_globex_done.is_none() {
            let g = as_org("globex", Method::GET, format!("/v1/runs/{theirs}"), None).await;
            if g["status"] == "completed" {
                let open = as_org("acme", Method::GET, "/v1/runs?limit=100".into(), None).await;
                let left = open["data"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|r| !["completed", "failed", "cancelled"].contains(&r["status"].as_str().unwrap()))
                    .count();
                acme_left_when_globex_done = Some(left);
            }
        }
        let done = as_org("acme", Method::GET, "/v1/runs?status=completed&limit=100".into(), None).await;
        if done["data"].as_array().unwrap().len() == acme.len() && acme_left_when_globex_done.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(15)).await;
    }
    let left = acme_left_when_globex_done.expect("globex's run finished");
    assert!(left >= 6, "globex finished while acme still had {left} of 12 runs to go");
    assert!(most_running <= 2, "acme had {most_running} runs executing at once (its limit is 2)");
    assert!(most_running >= 1);
}
