//! The second hardening pass: each finding of the outside attack on keys,
//! secrets, templates, the browser, trees and the files API, reproduced
//! against the real binary (each test fails on the build before the fix).

use std::time::Duration;

use crate::auth::{call, code_of, make_key};
use crate::common::{Opts, Server};
use agentd_testkit::{MockOpenAi, Turn};
use reqwest::Method;
use serde_json::{Value, json};

fn config(dir: &tempfile::TempDir, text: &str) -> std::path::PathBuf {
    let p = dir.path().join("agentd.toml");
    std::fs::write(&p, text).unwrap();
    p
}

async fn in_org(s: &Server, org: &str, method: Method, path: &str, body: Option<Value>) -> (u16, Value) {
    s.call(method, path, body, Some(org)).await
}

async fn wait_in(s: &Server, org: &str, id: &str) -> Value {
    for _ in 0..1000 {
        let (_, r) = in_org(s, org, Method::GET, &format!("/v1/runs/{id}"), None).await;
        if ["completed", "failed", "cancelled"].contains(&r["status"].as_str().unwrap_or("")) {
            return r;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("run {id} did not finish");
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Finding 1: one org's secret rewrote every other org's stored data (keys
/// included) and confirmed guesses; now a secret masks its own tenant's
/// data only, string values only, and common words are refused as secrets.
#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_secret_masks_its_own_data_only_and_never_structure() {
    const SECRET: &str = "Qf7#tool_calls-2026";
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("ORG-B-ASKS", vec![Turn::tool("echo", json!({"note": SECRET})), Turn::text(&format!("b says {SECRET}"))]);
    mock.rule("ORG-A-ASKS", vec![Turn::text(&format!("a says {SECRET}"))]);
    let s = Server::start(&mock.base_url);
    for (value, why) in [("quarterly forecast", "ordinary words"), ("tool_calls", "a field name"), ("short", "short")] {
        let (c, v) = in_org(&s, "a", Method::PUT, "/v1/secrets/w", Some(json!({ "value": value }))).await;
        assert_eq!((c, code_of(&v)), (400, "secret_unfit"), "{why}: {v}");
    }
    let (c, v) = in_org(&s, "a", Method::PUT, "/v1/secrets/real", Some(json!({ "value": SECRET }))).await;
    assert_eq!(c, 200, "{v}");

    // Org b's run, session title and metadata keep the value: it is not b's secret.
    let meta = json!({ SECRET: 1 });
    let (c, ses) =
        in_org(&s, "b", Method::POST, "/v1/sessions", Some(json!({"title": SECRET, "metadata": meta}))).await;
    assert_eq!(c, 201, "{ses}");
    assert_eq!(ses["title"], SECRET, "no oracle: another org's guess is not confirmed");
    let sid = ses["id"].as_str().unwrap();
    let (_, r) =
        in_org(&s, "b", Method::POST, "/v1/runs", Some(json!({"input": "ORG-B-ASKS", "session_id": sid}))).await;
    let run = wait_in(&s, "b", r["id"].as_str().unwrap()).await;
    assert_eq!(run["output"], format!("b says {SECRET}"), "{run}");
    let (_, ses) = in_org(&s, "b", Method::GET, &format!("/v1/sessions/{sid}"), None).await;
    let text = ses.to_string();
    assert!(text.contains("\"tool_calls\""), "the journaled tool call keeps its structure: {text}");
    assert!(!text.contains("[REDACTED]"), "{text}");
    // The next run in that session replays the history (a tool result with its call).
    let (_, r) =
        in_org(&s, "b", Method::POST, "/v1/runs", Some(json!({"input": "ORG-A-ASKS", "session_id": sid}))).await;
    assert_eq!(wait_in(&s, "b", r["id"].as_str().unwrap()).await["status"], "completed");
    let replayed = mock.requests().last().unwrap().to_string();
    assert!(replayed.contains("tool_call_id"), "{replayed}");

    // Org a's own data is masked, in values only: a key stays a key.
    let meta = json!({SECRET: SECRET, "name": SECRET, "x": {"id": SECRET}});
    let (_, ses) =
        in_org(&s, "a", Method::POST, "/v1/sessions", Some(json!({"title": SECRET, "metadata": meta}))).await;
    assert_eq!(ses["title"], "[REDACTED]", "{ses}");
    assert_eq!(ses["metadata"][SECRET], "[REDACTED]", "{ses}");
    let under_ids = (ses["metadata"]["name"].as_str(), ses["metadata"]["x"]["id"].as_str());
    assert_eq!(under_ids, (Some("[REDACTED]"), Some("[REDACTED]")), "no key name exempts free data: {ses}");
    let (_, r) = in_org(&s, "a", Method::POST, "/v1/runs", Some(json!({"input": "ORG-A-ASKS"}))).await;
    let run = wait_in(&s, "a", r["id"].as_str().unwrap()).await;
    assert_eq!(run["output"], "a says [REDACTED]", "{run}");
}

/// Finding 2: a viewer's template preview doubled a string to gigabytes
/// and aborted the process. Every render is bounded in memory and output.
#[tokio::test(flavor = "multi_thread")]
async fn template_bombs_are_refused_and_the_server_stays_small() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let doubling = |n: u32| {
        format!(
            "{{% set ns = namespace(a='x') %}}{{% for i in range({n}) %}}{{% set ns.a = ns.a ~ ns.a %}}{{% endfor %}}{{{{ ns.a|length }}}}"
        )
    };
    let bombs = [
        doubling(33),
        doubling(40),
        // Squaring through a filter.
        "{% set ns = namespace(a='xx') %}{% for i in range(8) %}{% set ns.a = ns.a|replace('x', ns.a) %}{% endfor %}{{ ns.a|length }}".to_string(),
        // Doubling through macro recursion.
        "{% macro d(s, n) %}{% if n %}{{ d(s ~ s, n - 1) }}{% else %}{{ s|length }}{% endif %}{% endmacro %}{{ d('x', 34) }}".to_string(),
        // Output over the cap.
        "{{ 'y' * 3000000 }}".to_string(),
    ];
    for b in &bombs {
        let (c, v) = s.post("/v1/template-preview", json!({ "content": b })).await;
        assert_eq!((c, code_of(&v)), (400, "template_too_large"), "{b}: {v}");
    }
    // Stored templates and runs take the same path.
    let (c, v) = s.post("/v1/prompt-templates", json!({"name": "bomb", "content": doubling(33)})).await;
    assert_eq!(c, 201, "{v}");
    let (c, v) = s.post("/v1/runs", json!({"template": "bomb"})).await;
    assert_eq!((c, code_of(&v)), (400, "template_too_large"), "{v}");
    // Ordinary templates still render, close to the caps too.
    let (c, v) = s.post("/v1/template-preview", json!({"content": doubling(18)})).await;
    assert_eq!((c, v["text"].as_str()), (200, Some("262144")), "{v}");
    let (c, v) = s.post("/v1/template-preview", json!({"content": "Hi {{ n }}", "arguments": {"n": "Ada"}})).await;
    assert_eq!((c, v["text"].as_str()), (200, Some("Hi Ada")), "{v}");
    assert_eq!(s.get("/healthz").await.0, 200, "still serving");
    let rss = rss_kib(s.pid());
    assert!(rss < 200 * 1024, "the server itself never held a bomb: {rss} KiB");
}

/// Findings 3, 4 and 17: a server provider's URL (with its password) was
/// shown to tenants; a bound admin minted an unbound key; an admin could
/// not make a key without naming its own org.
#[tokio::test(flavor = "multi_thread")]
async fn keys_stay_in_scope_and_server_addresses_stay_with_operators() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let port = mock.base_url.trim_start_matches("http://127.0.0.1:").split('/').next().unwrap().to_string();
    let cfg = config(
        &tmp,
        &format!(
            "[providers.inner]\ntype = \"openai\"\nbase_url = \"http://ops:PASSWORD-9z@127.0.0.1:{port}/v1\"\napi_key_env = \"OPENAI_API_KEY\"\n"
        ),
    );
    let operator = make_key(&data, &["--role", "operator"]);
    let admin = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let alice_admin = make_key(&data, &["--role", "admin", "--org", "acme", "--user", "alice"]);
    let viewer = make_key(&data, &["--role", "viewer", "--org", "acme"]);
    let s = Server::start_with(Opts {
        mock: Some(&mock.base_url),
        data_dir: Some(&data),
        config: Some(&cfg),
        ..Default::default()
    });
    for key in [&viewer, &admin] {
        let (c, v) = call(&s, Some(key), Method::GET, "/v1/providers/inner/health", None).await;
        assert_eq!(c, 200, "{v}");
        let text = v.to_string();
        assert!(!text.contains("PASSWORD") && !text.contains("127.0.0.1") && !text.contains("ops"), "{text}");
        let (c, v) = call(&s, Some(key), Method::GET, "/v1/diagnostics", None).await;
        if key == &admin {
            assert_eq!(c, 200, "{v}");
            let text = v["providers"].to_string();
            assert!(!text.contains("PASSWORD") && !text.contains("127.0.0.1"), "{text}");
        }
    }
    let (_, v) = call(&s, Some(&operator), Method::GET, "/v1/diagnostics", None).await;
    let text = v["providers"].to_string();
    assert!(
        text.contains("127.0.0.1") && !text.contains("PASSWORD"),
        "operators see where, never the password: {text}"
    );

    // A key bound to alice makes keys bound to alice, never wider.
    let (c, v) =
        call(&s, Some(&alice_admin), Method::POST, "/v1/api-keys", Some(json!({"name": "k", "role": "member"}))).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!((v["org"].as_str(), v["user"].as_str()), (Some("acme"), Some("alice")), "{v}");
    let minted = v["secret"].as_str().unwrap().to_string();
    let r = s.req(Method::GET, "/v1/sessions").bearer_auth(&minted).header("x-user-id", "bob").send().await.unwrap();
    let v: Value = r.json().await.unwrap();
    assert!(v["data"].as_array().is_none_or(|d| d.is_empty()) || code_of(&v) != "<none>", "{v}");
    for body in [
        json!({"name": "k", "role": "member", "user": "bob"}),
        json!({"name": "k", "role": "operator"}),
        json!({"name": "k", "role": "member", "org": "globex"}),
    ] {
        let (c, v) = call(&s, Some(&alice_admin), Method::POST, "/v1/api-keys", Some(body.clone())).await;
        assert_eq!(c, 403, "{body}: {v}");
    }
    let (c, v) = call(&s, Some(&alice_admin), Method::GET, "/v1/api-keys", None).await;
    assert_eq!(c, 200);
    assert!(v["data"].as_array().unwrap().iter().all(|k| k["user"] == "alice"), "sees its own scope only: {v}");
    // An admin's key goes to its own org; an operator's to the org it acts in.
    let (c, v) =
        call(&s, Some(&admin), Method::POST, "/v1/api-keys", Some(json!({"name": "k", "role": "member"}))).await;
    assert_eq!((c, v["org"].as_str()), (201, Some("acme")), "{v}");
    let r = s
        .req(Method::POST, "/v1/api-keys")
        .bearer_auth(&operator)
        .header("x-org-id", "initech")
        .json(&json!({"name": "k", "role": "viewer"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["org"], "initech", "{v}");
}

/// Finding 5: with auth off, any web page could drive the API (a
/// `text/plain` form wrote a file; a `no-cors` fetch started a run), and any
/// `Host` was served (DNS rebinding).
#[tokio::test(flavor = "multi_thread")]
async fn with_auth_off_other_sites_and_other_names_are_refused() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let write = json!({"arguments": {"path": "pwned.txt", "content": "x"}}).to_string();
    let http = reqwest::Client::new();
    let url = format!("{}/v1/tools/write_file/call", s.url);
    let post = |ct: &'static str, extra: Option<(&'static str, &'static str)>| {
        let mut r = http.post(&url).header("content-type", ct).body(write.clone());
        if let Some((k, v)) = extra {
            r = r.header(k, v);
        }
        r.send()
    };
    for ct in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
        let r = post(ct, None).await.unwrap();
        assert_eq!(r.status(), 415, "{ct}");
        let v: Value = r.json().await.unwrap();
        assert_eq!(code_of(&v), "unsupported_media_type");
    }
    for (k, v) in [("origin", "https://evil.example"), ("origin", "null"), ("sec-fetch-site", "cross-site")] {
        let r = post("application/json", Some((k, v))).await.unwrap();
        assert_eq!(r.status(), 403, "{k}: {v}");
        let body: Value = r.json().await.unwrap();
        assert_eq!(code_of(&body), "cross_site_request");
    }
    let (c, v) = s.get("/v1/sessions").await;
    assert_eq!(c, 200, "{v}");
    // A rebinding name reaches the loopback address but is not served.
    for path in ["/v1/sessions", "/", "/v1/runs"] {
        let r = http.get(format!("{}{path}", s.url)).header("host", "rebind.attacker.example").send().await.unwrap();
        assert_eq!(r.status(), 403, "{path}");
    }
    let r = http.get(format!("{}/v1/sessions", s.url)).header("host", "localhost").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Nothing was written by the refused requests; the same call from the console's origin is.
    let (_, files) = s.post("/v1/tools/list_dir/call", json!({"arguments": {"path": "."}})).await;
    assert!(!files.to_string().contains("pwned.txt"), "{files}");
    let r = post("application/json", Some(("origin", "http://127.0.0.1"))).await.unwrap();
    assert_eq!(r.status(), 403, "another port's origin is another site");
    let own = s.url.clone();
    let r = http
        .post(&url)
        .header("content-type", "application/json")
        .header("origin", own.as_str())
        .body(write.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
}

/// Finding 6: an agent's limits made a spawn bomb. The operator's
/// `[limits]` cap depth, children and the runs of a tree whatever an agent says.
#[tokio::test(flavor = "multi_thread")]
async fn the_operators_caps_bound_a_tree_whatever_the_agent_says() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let spawns: Vec<(String, Value)> =
        (0..6).map(|i| ("spawn".to_string(), json!({"task": format!("BOMB-CHILD {i}")}))).collect();
    mock.rule("BOMB-ROOT", vec![Turn::ToolCalls(spawns), Turn::tool("wait_children", json!({})), Turn::text("done")]);
    mock.rule("BOMB-CHILD", vec![Turn::tool("delegate", json!({"task": "BOMB-GRANDCHILD"})), Turn::text("{tool}")]);
    mock.rule("BOMB-GRANDCHILD", vec![Turn::text("leaf")]);
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&tmp, "[limits]\nmax_depth = 1\nmax_tree_runs = 4\nmax_concurrent_children = 2\n");
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let greedy = json!({"name": "greedy", "limits": {"max_depth": 1000, "max_children": 1000000, "max_concurrent_children": 100000}});
    let (c, v) = s.post("/v1/agents", greedy).await;
    assert_eq!(c, 201, "{v}");
    let (_, r) = s.post("/v1/runs", json!({"input": "BOMB-ROOT", "agent": "greedy"})).await;
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let (_, kids) = s.get(&format!("/v1/runs/{id}/children")).await;
    let kids = kids["data"].as_array().unwrap().clone();
    assert_eq!(kids.len(), 3, "the tree holds 4 runs with its root: {kids:?}");
    let refused: Vec<Value> = s
        .events(id)
        .await
        .into_iter()
        .filter(|e| e["type"] == "tool.result" && e["data"]["is_error"] == true)
        .collect();
    assert_eq!(refused.len(), 3, "{refused:?}");
    assert!(refused[0].to_string().contains("max_tree_runs"), "{refused:?}");
    for k in &kids {
        let k = s.wait_run(k["id"].as_str().unwrap()).await;
        // max_depth 1: a child may not delegate, whatever its agent's 1000.
        assert!(k["output"].as_str().unwrap_or_default().contains("max_depth 1"), "{k}");
    }
    let held =
        s.events(id).await.into_iter().filter(|e| e["type"] == "child.spawned" && e["data"]["held"] == true).count();
    assert_eq!(held, 1, "two at once, the third held");
}

/// Finding 7: stalled downloads held a whole file each. Downloads stream,
/// and an org may have only so many in flight.
#[tokio::test(flavor = "multi_thread")]
async fn downloads_stream_and_an_org_has_a_cap_on_them() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&tmp, "[limits]\ndownloads_per_org = 3\n");
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, ses) = s.post("/v1/sessions", json!({})).await;
    let sid = ses["id"].as_str().unwrap();
    let big: Vec<u8> = (0..10 * 1024 * 1024).map(|i| (i % 251) as u8).collect();
    let path = format!("/v1/sessions/{sid}/files/big.bin");
    let r = s.req(Method::PUT, &path).body(big.clone()).send().await.unwrap();
    assert_eq!(r.status(), 201);
    let before = rss_kib(s.pid());
    // Three clients that never read hold the three slots, not three files.
    let mut stalled = vec![];
    for _ in 0..3 {
        let r = s.req(Method::GET, &path).send().await.unwrap();
        assert_eq!(r.status(), 200);
        assert_eq!(r.content_length(), Some(big.len() as u64));
        stalled.push(r);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = rss_kib(s.pid());
    assert!(during < before + 12 * 1024, "three stalled downloads held {} KiB", during.saturating_sub(before));
    let r = s.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), 429, "over the org's cap");
    let v: Value = r.json().await.unwrap();
    assert_eq!(code_of(&v), "limit_exceeded");
    // Another org is not held up by this one.
    let (_, other) = in_org(&s, "globex", Method::POST, "/v1/sessions", Some(json!({}))).await;
    let osid = other["id"].as_str().unwrap();
    let opath = format!("/v1/sessions/{osid}/files/small.txt");
    let r = s.req(Method::PUT, &opath).header("x-org-id", "globex").body("hi").send().await.unwrap();
    assert_eq!(r.status(), 201);
    let r = s.req(Method::GET, &opath).header("x-org-id", "globex").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // A finished download gives its slot back, and the bytes are whole.
    let body = stalled.pop().unwrap().bytes().await.unwrap();
    assert_eq!(body.as_ref(), big.as_slice());
    drop(stalled);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let r = s.req(Method::GET, &path).send().await.unwrap();
    assert_eq!(r.status(), 200);
}

/// Finding 8: an MCP server's literal `authorization` header was stored in
/// plain text. Inline credentials are sealed as the tenant's secrets.
#[tokio::test(flavor = "multi_thread")]
async fn inline_credentials_are_sealed_never_stored_as_given() {
    const INLINE: &str = "inline-cred-5e4d3c2b1a";
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let tool =
        // A name no heuristic would call a credential is sealed all the same.
        json!({"name": "lookup", "url": "https://example.com/x",
               "headers": {"X-Api-Key": INLINE, "X-Plain": "1", "X-Vault-Code": format!("v-{INLINE}")}});
    let (c, v) = s.post("/v1/http-tools", tool).await;
    assert_eq!(c, 201, "{v}");
    let (c, v) = s
        .post("/v1/providers", json!({"name": "p", "type": "openai", "base_url": "https://u:pw@example.com/v1"}))
        .await;
    assert_eq!((c, code_of(&v)), (400, "inline_credential"), "{v}");
    let (c, v) = s
        .post(
            "/v1/providers",
            json!({"name": "p", "type": "openai", "base_url": "https://93.184.216.34/v1",
                                      "headers": {"Authorization": format!("Bearer {INLINE}")}}),
        )
        .await;
    assert_eq!(c, 201, "{v}");
    let (_, secrets) = s.get("/v1/secrets").await;
    let names: Vec<&str> = secrets["data"].as_array().unwrap().iter().filter_map(|x| x["name"].as_str()).collect();
    for prefix in ["inline.http.lookup.X-Api-Key.", "inline.http.lookup.X-Plain.", "inline.provider.p.Authorization."] {
        assert!(names.iter().any(|n| n.starts_with(prefix)), "{prefix}: {names:?}");
    }
    // Nothing in the database files holds the value.
    for entry in std::fs::read_dir(&s.data_dir).unwrap().flatten() {
        if entry.path().is_file() {
            let bytes = std::fs::read(entry.path()).unwrap();
            let found = bytes.windows(INLINE.len()).any(|w| w == INLINE.as_bytes());
            assert!(!found, "{} holds the inline credential", entry.path().display());
        }
    }
}

/// Findings 12, 13, 15: no workspace quota, unaudited workspace and team
/// changes, and an agent import that stored skills an upload refuses.
#[tokio::test(flavor = "multi_thread")]
async fn workspace_quotas_audit_rows_and_imported_skills() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(&tmp, "[limits]\nworkspace_bytes = 1000\n");
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, ses) = s.post("/v1/sessions", json!({})).await;
    let sid = ses["id"].as_str().unwrap();
    let put = |name: &str, n: usize| {
        s.req(Method::PUT, &format!("/v1/sessions/{sid}/files/{name}")).body(vec![b'a'; n]).send()
    };
    assert_eq!(put("a.txt", 600).await.unwrap().status(), 201);
    let r = put("b.txt", 600).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(code_of(&v), "quota_exceeded", "{v}");
    assert_eq!(put("a.txt", 900).await.unwrap().status(), 201, "replacing counts what it grows");
    // The file tools are bound by the same quota.
    let body = json!({"arguments": {"path": "c.txt", "content": "x".repeat(500)}, "session_id": sid});
    let (_, v) = s.post("/v1/tools/write_file/call", body).await;
    let text = v.to_string();
    assert!(text.contains("quota"), "{text}");
    // Parallel writes cannot each see the room the others take.
    let (_, fresh) = s.post("/v1/sessions", json!({})).await;
    let fsid = fresh["id"].as_str().unwrap().to_string();
    let writes = (0..8).map(|i| {
        let body = json!({"arguments": {"path": format!("p{i}.txt"), "content": "z".repeat(300)}, "session_id": fsid});
        s.post("/v1/tools/write_file/call", body)
    });
    let ok = futures::future::join_all(writes).await.into_iter().filter(|(_, v)| v["is_error"] == false).count();
    assert_eq!(ok, 3, "1000 bytes hold three writes of 300");
    let (_, listing) = s.get(&format!("/v1/sessions/{fsid}/files")).await;
    let entries = listing["entries"].as_array().unwrap();
    assert_eq!(entries.len(), 3, "a refused write leaves no empty file: {listing}");

    let (c, _) = s.post(&format!("/v1/sessions/{sid}/rename-file"), json!({"from": "a.txt", "to": "d.txt"})).await;
    assert_eq!(c, 200);
    let (c, _) = s.call(Method::DELETE, &format!("/v1/sessions/{sid}/files/d.txt"), None, None).await;
    assert_eq!(c, 204);
    let (c, v) = s.post("/v1/teams", json!({"name": "crew", "lead": {"agent": "default", "role": "lead"}})).await;
    assert_eq!(c, 201, "{v}");
    let (_, audit) = s.get("/v1/audit?limit=100").await;
    let routes: Vec<String> = audit["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| format!("{} {}", a["method"].as_str().unwrap(), a["route"].as_str().unwrap()))
        .collect();
    for want in [
        "PUT /v1/sessions/{id}/files/{*path}",
        "POST /v1/sessions/{id}/rename-file",
        "DELETE /v1/sessions/{id}/files/{*path}",
        "POST /v1/teams",
    ] {
        assert!(routes.iter().any(|r| r == want), "{want} not audited: {routes:?}");
    }

    let bundle = |skill: Value| json!({"format": "agentd.agent/v1", "agent": {"name": "imp"}, "skills": [skill], "templates": []});
    for skill in [
        json!({"name": "../escape", "description": "d", "body": "b"}),
        json!({"name": "ok", "description": "d", "body": "b", "files": {"/etc/passwd": "x"}}),
        json!({"name": "ok", "description": "d", "body": "b", "files": {"a/../../b": "x"}}),
        json!({"name": "ok", "description": "", "body": "b"}),
    ] {
        let (c, v) = s.post("/v1/agents/import", bundle(skill.clone())).await;
        assert_eq!((c, code_of(&v)), (400, "invalid_skill"), "{skill}: {v}");
    }
    let (c, v) = s
        .post("/v1/agents/import", bundle(json!({"name": "fine", "description": "d", "body": "b", "source": "config"})))
        .await;
    assert_eq!(c, 201, "{v}");
    let (_, skills) = s.get("/v1/skills").await;
    let fine = skills["data"].as_array().unwrap().iter().find(|k| k["name"] == "fine").cloned().unwrap();
    assert_eq!(fine["source"], "tenant", "an import cannot claim the operator's source: {fine}");
}

/// Finding 14: a project-bound key's usage by user showed other projects' users.
#[tokio::test(flavor = "multi_thread")]
async fn usage_of_a_project_bound_key_is_its_projects() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("USAGE", vec![Turn::text("ok")]);
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let member = make_key(&data, &["--role", "member", "--org", "acme"]);
    let p1 = make_key(&data, &["--role", "viewer", "--org", "acme", "--project", "p1"]);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), data_dir: Some(&data), ..Default::default() });
    for (user, project) in [("ann", "p1"), ("zed-from-p2", "p2")] {
        let r = s
            .req(Method::POST, "/v1/runs")
            .bearer_auth(&member)
            .header("x-user-id", user)
            .header("x-project-id", project)
            .json(&json!({"input": "USAGE"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 202);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (c, v) = call(&s, Some(&p1), Method::GET, "/v1/usage?group_by=user", None).await;
    assert_eq!(c, 200, "{v}");
    let keys: Vec<&str> = v["data"].as_array().unwrap().iter().filter_map(|r| r["key"].as_str()).collect();
    assert_eq!(keys, ["ann"], "{v}");
}

/// Finding 11: parallel children were each given the whole remaining budget.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_children_share_a_budget_reserved_at_spawn() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let spawns: Vec<(String, Value)> =
        (0..3).map(|i| ("spawn".to_string(), json!({"task": format!("BUDGET-CHILD {i}")}))).collect();
    mock.rule("BUDGET-ROOT", vec![Turn::ToolCalls(spawns), Turn::tool("wait_children", json!({})), Turn::text("done")]);
    mock.rule("BUDGET-CHILD", vec![Turn::text("leaf")]);
    let s = Server::start(&mock.base_url);
    let (c, v) = s.post("/v1/agents", json!({"name": "thrifty", "limits": {"max_tokens": 100000}})).await;
    assert_eq!(c, 201, "{v}");
    let (_, r) = s.post("/v1/runs", json!({"input": "BUDGET-ROOT", "agent": "thrifty"})).await;
    let id = r["id"].as_str().unwrap();
    s.wait_run(id).await;
    let reserved: Vec<u64> = s
        .events(id)
        .await
        .into_iter()
        .filter(|e| e["type"] == "child.spawned")
        .map(|e| e["data"]["reserved_tokens"].as_u64().unwrap())
        .collect();
    assert_eq!(reserved.len(), 3);
    let left = 100_000 - s.get(&format!("/v1/runs/{id}")).await.1["usage"]["total_tokens"].as_u64().unwrap_or(0);
    assert!(reserved.iter().sum::<u64>() <= left, "reservations {reserved:?} exceed what was left ({left})");
    for k in s.get(&format!("/v1/runs/{id}/children")).await.1["data"].as_array().unwrap() {
        let evs = s.events(k["id"].as_str().unwrap()).await;
        let ceiling = &evs[0]["data"]["ceiling"];
        assert!(reserved.contains(&ceiling["max_tokens"].as_u64().unwrap()), "{ceiling}");
    }
}

/// Finding 10, for team members: a member's own allow rules do not escape
/// the team run's policy (the same inheritance as a delegated child's).
#[tokio::test(flavor = "multi_thread")]
async fn a_team_member_is_bound_by_the_team_runs_policy() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("worker of the team", vec![Turn::tool("echo", json!({"x": 1})), Turn::text("member saw: {tool}")]);
    mock.rule("lead of the team", vec![Turn::text("decided")]);
    let s = Server::start(&mock.base_url);
    let (c, v) = s.post("/v1/agents", json!({"name": "strict", "policy": {"deny": ["echo"]}})).await;
    assert_eq!(c, 201, "{v}");
    let (c, v) = s.post("/v1/agents", json!({"name": "loose", "policy": {"mode": "allow", "allow": ["echo"]}})).await;
    assert_eq!(c, 201, "{v}");
    let team = json!({"name": "crew", "members": [{"agent": "loose", "role": "worker"}], "lead": {"agent": "strict", "role": "lead"}});
    let (c, v) = s.post("/v1/teams", team).await;
    assert_eq!(c, 201, "{v}");
    let (_, r) = s.post("/v1/teams/crew/runs", json!({"input": "go"})).await;
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let (_, kids) = s.get(&format!("/v1/runs/{id}/children")).await;
    let worker = kids["data"].as_array().unwrap().iter().find(|k| k["agent"] == "loose").cloned().unwrap();
    let evs = s.events(worker["id"].as_str().unwrap()).await;
    let policy = evs.iter().find(|e| e["type"] == "tool.policy").expect("the echo call was judged");
    assert_eq!(policy["data"]["decision"], "deny", "{policy}");
    assert!(!evs.iter().any(|e| e["type"] == "tool.started"), "echo never ran");
}

/// Finding 16: an agent edit changed the prompt of a run in flight.
#[tokio::test(flavor = "multi_thread")]
async fn an_agent_edit_never_reaches_a_run_in_flight() {
    // Each model call takes a while: the edit lands during the first one.
    let mock = MockOpenAi::start_with_latency(vec![], 0, Duration::from_millis(400)).await.unwrap();
    mock.rule(
        "PINNED-RUN",
        vec![Turn::tool("echo", json!({"x": 1})), Turn::tool("echo", json!({"x": 2})), Turn::text("done")],
    );
    let s = Server::start(&mock.base_url);
    let model = "openai/gpt-x";
    let (c, v) = s.post("/v1/agents", json!({"name": "pin", "system_prompt": "PROMPT-ONE", "model": model})).await;
    assert_eq!(c, 201, "{v}");
    let (_, r) = s.post("/v1/runs", json!({"input": "PINNED-RUN", "agent": "pin"})).await;
    let id = r["id"].as_str().unwrap().to_string();
    while !mock.requests().iter().any(|b| b.to_string().contains("PINNED-RUN")) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let edit = json!({"name": "pin", "system_prompt": "PROMPT-TWO", "model": model});
    let (c, v) = s.call(Method::PUT, "/v1/agents/pin", Some(edit), None).await;
    assert_eq!(c, 200, "{v}");
    let run = s.wait_run(&id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let reqs: Vec<Value> = mock.requests().into_iter().filter(|b| b.to_string().contains("PINNED-RUN")).collect();
    assert_eq!(reqs.len(), 3);
    for r in &reqs {
        let system = r["messages"][0]["content"].as_str().unwrap_or_default();
        assert!(system.starts_with("PROMPT-ONE"), "{system}");
    }
}

/// Every documented operation, generated from the OpenAPI document: a JSON
/// body sent as a form is `415`, a write from another site is `403`, a
/// rebinding `Host` is `403`, and big bodies sent to every JSON route at
/// once leave the server's memory where it was.
#[tokio::test(flavor = "multi_thread")]
async fn every_operation_refuses_browser_tricks_and_big_bodies_cost_no_memory() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (_, doc) = s.get("/v1/openapi.json").await;
    let http = reqwest::Client::new();
    let (mut json_ops, mut writes, mut all) = (vec![], 0, 0);
    for (path, ops) in doc["paths"].as_object().unwrap() {
        let concrete =
            path.split('/').map(|seg| if seg.starts_with('{') { "x1" } else { seg }).collect::<Vec<_>>().join("/");
        for (method, op) in ops.as_object().unwrap() {
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let url = format!("{}{concrete}", s.url);
            let what = format!("{method} {path}");
            let r = http.request(m.clone(), &url).header("host", "attacker.example").send().await.unwrap();
            assert_eq!(r.status(), 403, "{what} under a foreign name");
            all += 1;
            if m == Method::GET {
                continue;
            }
            let r = http
                .request(m.clone(), &url)
                .header("origin", "https://evil.example")
                .header("content-type", "application/json")
                .body("{}")
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 403, "{what} from another site");
            writes += 1;
            if op["requestBody"]["content"].get("application/json").is_some() {
                let r =
                    http.request(m.clone(), &url).header("content-type", "text/plain").body("{}").send().await.unwrap();
                assert_eq!(r.status(), 415, "{what} as text/plain");
                json_ops.push((m, url));
            }
        }
    }
    assert!(all >= 80 && writes >= 40 && json_ops.len() >= 25, "{all} {writes} {}", json_ops.len());
    // Memory: 900 KiB bodies to every JSON route, eight at a time, twice over.
    let body = json!({"input": "x".repeat(900 * 1024)}).to_string();
    let before = rss_kib(s.pid());
    for _ in 0..2 {
        for chunk in json_ops.chunks(8) {
            let sends = chunk.iter().map(|(m, url)| {
                http.request(m.clone(), url).header("content-type", "application/json").body(body.clone()).send()
            });
            for r in futures::future::join_all(sends).await {
                assert!(r.unwrap().status().as_u16() < 500);
            }
        }
    }
    let after = rss_kib(s.pid());
    assert!(after < before + 64 * 1024, "RSS grew from {before} to {after} KiB");
    assert_eq!(s.get("/healthz").await.0, 200);
}

/// The outside attack's second look: a tenant's secrets mask its data from
/// the start, after a restart too (not only once a secret is opened here).
#[tokio::test(flavor = "multi_thread")]
async fn a_tenants_secrets_mask_its_data_after_a_restart() {
    const SECRET: &str = "Zq7pL2xx-hunter-99";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let s = Server::start_with(Opts { data_dir: Some(&data), ..Default::default() });
    let (c, v) = in_org(&s, "orga", Method::PUT, "/v1/secrets/s1", Some(json!({ "value": SECRET }))).await;
    assert_eq!(c, 200, "{v}");
    s.stop();
    let s = Server::start_with(Opts { data_dir: Some(&data), ..Default::default() });
    let title = format!("t2 {SECRET}");
    let (_, ses) = in_org(&s, "orga", Method::POST, "/v1/sessions", Some(json!({ "title": title }))).await;
    assert_eq!(ses["title"], "t2 [REDACTED]", "{ses}");
    let (_, ses) = in_org(&s, "orgb", Method::POST, "/v1/sessions", Some(json!({ "title": title }))).await;
    assert_eq!(ses["title"], title, "still only orga's: {ses}");
}

/// Finding 3's class, for MCP servers: the operator's own servers show a
/// tenant's key their name and state, never their command or address.
#[tokio::test(flavor = "multi_thread")]
async fn the_operators_mcp_servers_show_tenants_no_command_or_address() {
    let everything = std::env::var("AGENTD_TEST_MCP_EVERYTHING")
        .expect("AGENTD_TEST_MCP_EVERYTHING is not set: run the suite with scripts/test (it installs the MCP servers)");
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let cfg = config(&tmp, &format!("[mcp_servers.ops]\ncommand = \"{everything}\"\nargs = [\"stdio\"]\n"));
    let operator = make_key(&data, &["--role", "operator"]);
    let member = make_key(&data, &["--role", "member", "--org", "acme"]);
    let s = Server::start_with(Opts { data_dir: Some(&data), config: Some(&cfg), ..Default::default() });
    let mut seen = Value::Null;
    for _ in 0..300 {
        let (_, v) = call(&s, Some(&member), Method::GET, "/v1/mcp-servers", None).await;
        if v["data"][0]["state"] == "ready" {
            seen = v;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let server = &seen["data"][0];
    assert_eq!((server["name"].as_str(), server["scope"].as_str()), (Some("ops"), Some("config")), "{seen}");
    assert!(server["tools"].as_u64().unwrap_or(0) > 0, "{seen}");
    assert!(!seen.to_string().contains(&everything) && server.get("command").is_none() && server.get("pid").is_none());
    let (_, v) = call(&s, Some(&operator), Method::GET, "/v1/mcp-servers", None).await;
    assert!(v.to_string().contains(&everything), "operators see it: {v}");
}

/// A tree's token budget also bounds what one model answer may spend: the
/// request asks for no more output than is left.
#[tokio::test(flavor = "multi_thread")]
async fn a_model_is_asked_for_no_more_tokens_than_the_budget_has_left() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("TIGHT", vec![Turn::tool("echo", json!({"x": 1})), Turn::text("done")]);
    let s = Server::start(&mock.base_url);
    let (c, v) = s.post("/v1/agents", json!({"name": "tight", "limits": {"max_tokens": 40}})).await;
    assert_eq!(c, 201, "{v}");
    let (_, r) = s.post("/v1/runs", json!({"input": "TIGHT", "agent": "tight"})).await;
    s.wait_run(r["id"].as_str().unwrap()).await;
    let asked: Vec<u64> = mock
        .requests()
        .iter()
        .filter(|b| b.to_string().contains("TIGHT"))
        .map(|b| b["max_tokens"].as_u64().or(b["max_completion_tokens"].as_u64()).unwrap_or(u64::MAX))
        .collect();
    assert_eq!(asked.len(), 2, "{asked:?}");
    assert_eq!(asked[0], 40, "the whole budget at first");
    assert!(asked[1] < 40, "what is left after the first answer: {asked:?}");
}

/// Team members share the team run's budget as delegated children do.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_team_members_share_the_team_runs_budget() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    mock.rule("researcher of the team", vec![Turn::text("proposal A")]);
    mock.rule("critic of the team", vec![Turn::text("proposal B")]);
    mock.rule("lead of the team", vec![Turn::text("decided")]);
    let s = Server::start(&mock.base_url);
    let (c, v) = s.post("/v1/agents", json!({"name": "boss", "limits": {"max_tokens": 90}})).await;
    assert_eq!(c, 201, "{v}");
    let team = json!({"name": "crew", "strategy": "parallel",
        "members": [{"agent": "default", "role": "researcher"}, {"agent": "default", "role": "critic"}],
        "lead": {"agent": "boss", "role": "lead"}});
    let (c, v) = s.post("/v1/teams", team).await;
    assert_eq!(c, 201, "{v}");
    let (_, r) = s.post("/v1/teams/crew/runs", json!({"input": "pick"})).await;
    let id = r["id"].as_str().unwrap();
    let run = s.wait_run(id).await;
    assert_eq!(run["status"], "completed", "{run}");
    let reserved: Vec<u64> = s
        .events(id)
        .await
        .into_iter()
        .filter(|e| e["type"] == "child.spawned")
        .map(|e| e["data"]["reserved_tokens"].as_u64().unwrap_or(u64::MAX))
        .collect();
    assert_eq!(reserved.len(), 3, "two members and the lead: {reserved:?}");
    assert_eq!(&reserved[..2], &[45, 45], "the members split 90");
    assert!(reserved[2] <= 90 - 2 * 15, "the lead gets what they left: {reserved:?}");
}
