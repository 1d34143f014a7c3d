//! Saved prompts (`/v1/prompts`), the first kind on the generic tenant
//! document path: CRUD, checks, tenant scope, roles, audit, masking, the
//! OpenAPI document and the CLI, against the real binary.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::process::Command;

use crate::auth::{call, code_of, make_key};
use crate::common::{self, Opts, Server};
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn saved_prompts_are_tenant_documents_with_one_generic_path() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let admin = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let member = make_key(&data, &["--role", "member", "--org", "acme"]);
    let viewer = make_key(&data, &["--role", "viewer", "--org", "acme"]);
    let globex = make_key(&data, &["--role", "member", "--org", "globex"]);
    let s = Server::start_with(Opts { data_dir: Some(&data), ..Default::default() });
    let c = |key: &str, m: Method, path: &str, body: Option<Value>| {
        let (s, key, path) = (&s, key.to_string(), path.to_string());
        async move { call(s, Some(&key), m, &path, body).await }
    };

    // Create, read, list.
    let body = json!({"name": "review", "text": "Review this diff for bugs.", "tags": ["code", " code ", "review"]});
    let (code, p) = c(&member, Method::POST, "/v1/prompts", Some(body.clone())).await;
    assert_eq!(code, 201, "{p}");
    assert_eq!((p["name"].as_str(), p["text"].as_str()), (Some("review"), Some("Review this diff for bugs.")));
    assert_eq!(p["tags"], json!(["code", "review"]), "tags trimmed, repeats dropped");
    let created_at = p["created_at"].as_str().unwrap().to_string();
    assert!(!created_at.is_empty());
    let (code, v) = c(&member, Method::POST, "/v1/prompts", Some(body)).await;
    assert_eq!((code, code_of(&v)), (409, "already_exists"), "{v}");
    let (code, one) = c(&viewer, Method::GET, "/v1/prompts/review", None).await;
    assert_eq!((code, &one["text"]), (200, &p["text"]));
    let (code, all) = c(&viewer, Method::GET, "/v1/prompts", None).await;
    assert_eq!(code, 200);
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "{all}");
    assert_eq!(all["next_cursor"], Value::Null);

    // Replace keeps the creation time; the tags may be left out.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let (code, r) = c(&member, Method::PUT, "/v1/prompts/review", Some(json!({"text": "Review it again."}))).await;
    assert_eq!(code, 200, "{r}");
    assert_eq!((r["text"].as_str(), r["tags"].clone()), (Some("Review it again."), json!([])));
    assert_eq!(r["created_at"].as_str(), Some(created_at.as_str()));
    assert_ne!(r["updated_at"], r["created_at"]);

    // Bad input: a clear 4xx, nothing stored.
    let big = "x".repeat(64 * 1024 + 1);
    let too_many: Vec<String> = (0..33).map(|i| format!("t{i}")).collect();
    for (bad, code_want) in [
        (json!({"name": "../etc", "text": "x"}), "invalid_request"),
        (json!({"name": "", "text": "x"}), "invalid_request"),
        (json!({"name": "a", "text": "   "}), "invalid_request"),
        (json!({"name": "a", "text": big}), "invalid_request"),
        (json!({"name": "a", "text": "x", "tags": too_many}), "invalid_request"),
        (json!({"name": "a", "text": "x", "tags": [""]}), "invalid_request"),
        (json!({"name": "a", "text": "x", "tags": ["a\u{7}b"]}), "invalid_request"),
        (json!({"name": "a"}), "invalid_request"),
        (json!({"name": "a", "text": 5}), "invalid_request"),
    ] {
        let (code, v) = c(&member, Method::POST, "/v1/prompts", Some(bad.clone())).await;
        assert_eq!((code, code_of(&v)), (400, code_want), "{bad}: {v}");
    }
    let resp = s.req(Method::POST, "/v1/prompts").bearer_auth(&member).header("content-type", "application/json");
    let resp = resp.body("{\"name\": ").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let (code, v) = c(&member, Method::PUT, "/v1/prompts/nope", Some(json!({"text": "x"}))).await;
    assert_eq!((code, code_of(&v)), (404, "not_found"), "{v}");
    let (_, all) = c(&viewer, Method::GET, "/v1/prompts", None).await;
    assert_eq!(all["data"].as_array().unwrap().len(), 1, "a refused write stores nothing: {all}");

    // Roles: viewers read only.
    let (code, v) = c(&viewer, Method::POST, "/v1/prompts", Some(json!({"name": "v", "text": "x"}))).await;
    assert_eq!((code, code_of(&v)), (403, "forbidden"));
    let (code, _) = c(&viewer, Method::DELETE, "/v1/prompts/review", None).await;
    assert_eq!(code, 403);

    // Another org sees none of acme's, and has its own namespace.
    let (code, v) = c(&globex, Method::GET, "/v1/prompts/review", None).await;
    assert_eq!((code, code_of(&v)), (404, "not_found"));
    let (code, _) = c(&globex, Method::PUT, "/v1/prompts/review", Some(json!({"text": "mine"}))).await;
    assert_eq!(code, 404);
    let (code, _) = c(&globex, Method::DELETE, "/v1/prompts/review", None).await;
    assert_eq!(code, 404);
    let (_, theirs) = c(&globex, Method::GET, "/v1/prompts", None).await;
    assert_eq!(theirs["data"], json!([]));
    let (code, _) = c(&globex, Method::POST, "/v1/prompts", Some(json!({"name": "review", "text": "g"}))).await;
    assert_eq!(code, 201);
    let (_, one) = c(&viewer, Method::GET, "/v1/prompts/review", None).await;
    assert_eq!(one["text"], "Review it again.", "globex's write left acme's alone");

    // Changes are audited with their route rows; reads are not.
    let (code, _) = c(&member, Method::DELETE, "/v1/prompts/review", None).await;
    assert_eq!(code, 204);
    let (code, v) = c(&viewer, Method::GET, "/v1/prompts/review", None).await;
    assert_eq!((code, code_of(&v)), (404, "not_found"));
    let (_, log) = c(&admin, Method::GET, "/v1/audit", None).await;
    let rows: Vec<(String, String)> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r["method"].as_str().unwrap().to_string(), r["route"].as_str().unwrap().to_string()))
        .collect();
    let want: Vec<(String, String)> =
        [("POST", "/v1/prompts"), ("PUT", "/v1/prompts/{name}"), ("DELETE", "/v1/prompts/{name}")]
            .iter()
            .map(|(m, r)| (m.to_string(), r.to_string()))
            .collect();
    assert_eq!(rows, want, "{log}");

    // The document lists the kind's operations with its schema.
    let (_, doc) = s.get("/v1/openapi.json").await;
    for (path, method) in [
        ("/v1/prompts", "post"),
        ("/v1/prompts", "get"),
        ("/v1/prompts/{name}", "get"),
        ("/v1/prompts/{name}", "put"),
        ("/v1/prompts/{name}", "delete"),
    ] {
        assert!(doc["paths"][path][method].is_object(), "{method} {path} is documented");
    }
    let schemas = doc["components"]["schemas"].to_string();
    assert!(schemas.contains("\"tags\"") && schemas.contains("\"text\""), "the prompt's fields are in the schemas");

    // A person reaches it from the CLI.
    let cli = |args: &[&str]| {
        let out = Command::new(common::bin())
            .args(args)
            .args(["--url", &s.url, "--api-key", &member])
            .env_remove("AGENTD_CONFIG")
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).to_string(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, out, err) = cli(&[
        "docs",
        "put",
        "prompts",
        "standup",
        "--json",
        r#"{"text": "What did you do yesterday?", "tags": ["daily"]}"#,
    ]);
    assert!(ok && out.contains("created standup"), "{out}{err}");
    let (ok, out, err) =
        cli(&["docs", "put", "prompts", "standup", "--json", r#"{"text": "What will you do today?"}"#]);
    assert!(ok && out.contains("replaced standup"), "{out}{err}");
    let (ok, out, _) = cli(&["docs", "list", "prompts"]);
    assert!(ok && out.contains("standup  What will you do today?"), "{out}");
    let (ok, out, _) = cli(&["docs", "show", "prompts", "standup"]);
    assert!(ok && out.contains("\"text\": \"What will you do today?\""), "{out}");
    let (ok, _, err) = cli(&["docs", "put", "prompts", "bad", "--json", r#"{"text": ""}"#]);
    assert!(!ok && err.contains("invalid_request"), "{err}");
    let (ok, out, _) = cli(&["docs", "delete", "prompts", "standup"]);
    assert!(ok && out.contains("deleted standup"), "{out}");
    let (ok, _, err) = cli(&["docs", "show", "prompts", "standup"]);
    assert!(!ok && err.contains("not_found"), "{err}");
}

/// A tenant's secret typed into a saved prompt is stored masked, for its own
/// tenant only.
#[tokio::test(flavor = "multi_thread")]
async fn a_saved_prompt_is_stored_with_its_tenants_secrets_masked() {
    const SECRET: &str = "Zq8!pr0mpt-vault-4471";
    let mock = agentd_testkit::MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (code, v) = s.call(Method::PUT, "/v1/secrets/vault", Some(json!({ "value": SECRET })), Some("a")).await;
    assert_eq!(code, 200, "{v}");
    let text = format!("use the key {SECRET} to open it");
    let body = json!({"name": "open", "text": text, "tags": [SECRET]});
    let (code, p) = s.call(Method::POST, "/v1/prompts", Some(body.clone()), Some("a")).await;
    assert_eq!(code, 201, "{p}");
    assert!(!p.to_string().contains(SECRET), "{p}");
    let (_, again) = s.call(Method::GET, "/v1/prompts/open", None, Some("a")).await;
    assert!(!again.to_string().contains(SECRET) && again["text"].as_str().unwrap().contains("[REDACTED]"), "{again}");
    // Org b's own text is its own: a's secret does not touch it.
    let (code, theirs) = s.call(Method::POST, "/v1/prompts", Some(body), Some("b")).await;
    assert_eq!(code, 201);
    assert!(theirs["text"].as_str().unwrap().contains(SECRET), "{theirs}");
}

/// What the attack on this change found, each kept fixed: a name holding a
/// secret is refused (not stored as `[REDACTED]` and lost), lists are paged,
/// a path that is not UTF-8 is a JSON 400, the CLI sends names as one path
/// segment, prices cannot go negative nor params replace the request's own
/// keys, and a change with unreadable scope headers is still audited.
#[tokio::test(flavor = "multi_thread")]
async fn the_attack_rounds_findings_stay_fixed() {
    const SECRET: &str = "Zq9-Xk7_Wm3Lp2Rt";
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let admin = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let member = make_key(&data, &["--role", "member", "--org", "acme"]);
    let operator = make_key(&data, &["--role", "operator"]);
    let mock = agentd_testkit::MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), data_dir: Some(&data), ..Default::default() });
    let c = |key: &str, m: Method, path: &str, body: Option<Value>| {
        let (s, key, path) = (&s, key.to_string(), path.to_string());
        async move { call(s, Some(&key), m, &path, body).await }
    };
    let (code, v) = c(&admin, Method::PUT, "/v1/secrets/vault", Some(json!({ "value": SECRET }))).await;
    assert_eq!(code, 200, "{v}");
    let (code, v) = c(&member, Method::POST, "/v1/prompts", Some(json!({"name": SECRET, "text": "t"}))).await;
    assert_eq!((code, code_of(&v)), (400, "invalid_request"), "{v}");
    assert!(!v.to_string().contains(SECRET) || v["error"]["message"].as_str().unwrap().contains("secret"));

    // Pages, by name.
    for n in ["p1", "p2", "p3"] {
        let (code, _) = c(&member, Method::POST, "/v1/prompts", Some(json!({"name": n, "text": n}))).await;
        assert_eq!(code, 201);
    }
    let (_, first) = c(&member, Method::GET, "/v1/prompts?limit=2", None).await;
    let names: Vec<&str> = first["data"].as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["p1", "p2"]);
    assert_eq!(first["next_cursor"], "p2");
    let (_, next) = c(&member, Method::GET, "/v1/prompts?limit=2&after=p2", None).await;
    assert_eq!(next["data"].as_array().unwrap().len(), 1);
    assert_eq!(next["next_cursor"], Value::Null);
    let (code, v) = c(&member, Method::GET, "/v1/prompts?limit=5000", None).await;
    assert_eq!((code, code_of(&v)), (400, "invalid_query"));

    // A path segment that is not UTF-8: JSON, like every refusal.
    let resp = s.req(Method::GET, "/v1/prompts/%ff").bearer_auth(&member).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(code_of(&v), "invalid_request", "{v}");

    // The CLI never lets a name walk to another route.
    let out = Command::new(common::bin())
        .args(["docs", "show", "prompts", "../api-keys", "--url", &s.url, "--api-key", &admin])
        .env_remove("AGENTD_CONFIG")
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(!out.status.success() && !stdout.contains("agk_") && stderr.contains("a name is"), "{stdout}{stderr}");

    // Model profiles: no negative prices, no params that replace the request's own keys.
    let profile = |extra: Value| {
        let mut p = json!({"name": "cheap", "provider": "openai", "model": "m"});
        p.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
        p
    };
    for bad in [
        json!({"price": {"input_per_mtok": -100.0, "output_per_mtok": 0.0}}),
        json!({"params": {"model": "x"}}),
        json!({"params": {"n": 64}}),
        json!({"params": {"max_tokens": 64000}}),
        json!({"params": {"system": "overridden"}}),
    ] {
        let (code, v) = c(&admin, Method::POST, "/v1/model-profiles", Some(profile(bad.clone()))).await;
        assert_eq!((code, code_of(&v)), (400, "invalid_request"), "{bad}: {v}");
    }

    // Sampling settings are a profile's to choose.
    let (code, v) =
        c(&admin, Method::POST, "/v1/model-profiles", Some(profile(json!({"params": {"temperature": 0.2}})))).await;
    assert_eq!(code, 201, "{v}");

    // An import is checked whole before anything is written.
    let (code, _) = c(&member, Method::POST, "/v1/agents", Some(json!({"name": "exp"}))).await;
    assert_eq!(code, 201);
    let (_, mut bundle) = c(&member, Method::GET, "/v1/agents/exp/export", None).await;
    bundle["agent"]["name"] = json!("imp");
    bundle["templates"] = json!([{"name": "dupt", "content": "one {{x}}"}, {"name": "dupt", "content": "two"}]);
    let (code, v) = c(&member, Method::POST, "/v1/agents/import", Some(bundle)).await;
    assert_eq!((code, code_of(&v)), (400, "invalid_request"), "{v}");
    let (code, _) = c(&member, Method::GET, "/v1/prompt-templates/dupt", None).await;
    assert_eq!(code, 404, "nothing of a refused import is written");

    // The CLI's --url is an address, never a place to smuggle a path into a query.
    let out = Command::new(common::bin())
        .args(["docs", "list", "prompts", "--url", &format!("{}/x?y=", s.url), "--api-key", &member])
        .env_remove("AGENTD_CONFIG")
        .output()
        .unwrap();
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("without a query"));

    // A change whose scope headers do not read is audited under the key's org.
    let (_, keys) = c(&admin, Method::GET, "/v1/api-keys", None).await;
    let member_id = keys["data"].as_array().unwrap().iter().find(|k| k["role"] == "member").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let resp = s
        .req(Method::DELETE, &format!("/v1/api-keys/{member_id}"))
        .bearer_auth(&admin)
        .header("x-user-id", "bad user/..")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    // An operator's change to an org is that org's record.
    let limits = json!({"requests_per_minute": 600});
    let (code, v) = c(&operator, Method::PUT, "/v1/orgs/acme/limits", Some(limits)).await;
    assert_eq!(code, 200, "{v}");
    let (_, log) = c(&admin, Method::GET, "/v1/audit", None).await;
    let rows = log["data"].as_array().unwrap();
    let revoked = rows.iter().any(|r| r["method"] == "DELETE" && r["route"] == "/v1/api-keys/{id}");
    assert!(revoked, "{log}");
    let by_operator =
        rows.iter().any(|r| r["route"] == "/v1/orgs/{org}/limits" && r["role"] == "operator" && r["org"] == "acme");
    assert!(by_operator, "acme's admin sees the operator's change to acme: {log}");
}
