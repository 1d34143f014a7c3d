//! Resilience against real HTTP mocks: retries per error class, partial
//! streams, and failover along a profile's fallback list.

mod common;

use std::path::PathBuf;

use agentd_testkit::{MockOpenAi, Turn};
use common::{Opts, Server, types};
use serde_json::{Value, json};

fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("agentd.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path)
}

/// One provider `p` on the mock, fast retries, a profile `main`.
fn one_provider(mock: &MockOpenAi) -> String {
    format!(
        "default_model = \"main\"\n[providers.p]\ntype = \"openai\"\nbase_url = \"{}\"\nretry_base_ms = 20\n\
         [models.main]\nprovider = \"p\"\nmodel = \"m1\"\n",
        mock.base_url
    )
}

async fn run(s: &Server) -> (Value, Vec<Value>) {
    let (c, r) = s.post("/v1/runs", json!({"input": "hi"})).await;
    assert_eq!(c, 202, "{r}");
    let id = r["id"].as_str().unwrap().to_string();
    let done = s.wait_run(&id).await;
    (done, s.events(&id).await)
}

fn of_type<'a>(evs: &'a [Value], ty: &str) -> Vec<&'a Value> {
    evs.iter().filter(|e| e["type"] == ty).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn transient_errors_are_retried_and_permanent_ones_are_not() {
    let mock = MockOpenAi::start(
        vec![
            // 1: 429 with Retry-After, then 500, then an answer.
            Turn::RateLimited(1),
            Turn::Status(500, "boom".into()),
            Turn::text("third time lucky"),
            // 2: a stream cut after tokens: retried, the partial answer discarded.
            Turn::CutStream(vec!["half an ".into(), "answ".into()]),
            Turn::text("whole answer"),
            // 3: 401 is not retried.
            Turn::Status(401, "bad key".into()),
            // 4: invalid JSON is not retried.
            Turn::InvalidJson,
            // 5: retries run out.
            Turn::Status(503, "a".into()),
            Turn::Status(503, "b".into()),
            Turn::Status(503, "c".into()),
            Turn::Status(503, "d".into()),
        ],
        0,
    )
    .await
    .unwrap();
    let (_d, cfg) = config(&one_provider(&mock));
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });

    let (done, evs) = run(&s).await;
    assert_eq!((done["status"].as_str(), done["output"].as_str()), (Some("completed"), Some("third time lucky")));
    let retries = of_type(&evs, "llm.retry");
    assert_eq!(retries.len(), 2, "{evs:?}");
    assert_eq!(
        (retries[0]["data"]["status"].as_u64(), retries[0]["data"]["wait_ms"].as_u64()),
        (Some(429), Some(1000))
    );
    assert_eq!(retries[1]["data"]["status"], 500);
    assert!(retries[1]["data"]["wait_ms"].as_u64().unwrap() <= 40, "exponential from 20 ms: {}", retries[1]);
    assert_eq!((retries[0]["data"]["attempt"].as_u64(), retries[1]["data"]["attempt"].as_u64()), (Some(1), Some(2)));
    assert_eq!(done["attempted_profiles"], json!(["main"]));
    assert_eq!(done["final_profile"], "main");

    let (done, evs) = run(&s).await;
    assert_eq!(done["output"], "whole answer");
    let r = of_type(&evs, "llm.retry");
    assert_eq!(r[0]["data"]["partial_discarded"], true, "{evs:?}");
    assert_eq!(of_type(&evs, "llm.completed")[0]["data"]["message"]["content"][0]["text"], "whole answer");

    let calls_before = mock.calls();
    let (done, evs) = run(&s).await;
    assert_eq!(
        (done["status"].as_str(), done["error"]["code"].as_str()),
        (Some("failed"), Some("provider_http_error"))
    );
    assert!(of_type(&evs, "llm.retry").is_empty());
    assert_eq!(of_type(&evs, "llm.failed")[0]["data"]["status"], 401);
    assert_eq!(mock.calls(), calls_before + 1, "a 401 is asked once");
    assert_eq!(done["attempted_profiles"], json!(["main"]));
    assert!(done["final_profile"].is_null());

    let (done, evs) = run(&s).await;
    assert_eq!(done["error"]["code"], "provider_invalid_response");
    assert!(of_type(&evs, "llm.retry").is_empty());

    let (done, evs) = run(&s).await;
    assert_eq!(done["error"]["code"], "provider_http_error");
    assert_eq!(of_type(&evs, "llm.retry").len(), 3, "max_retries = 3");
    assert!(done["error"]["message"].as_str().unwrap().contains('d'), "{done}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_primary_fails_over_to_the_fallback() {
    let primary = MockOpenAi::start(
        vec![
            Turn::Status(503, "overloaded".into()),
            Turn::Status(503, "overloaded".into()),
            Turn::Status(503, "overloaded".into()),
            Turn::Status(401, "revoked key".into()),
        ],
        0,
    )
    .await
    .unwrap();
    let backup = MockOpenAi::start(vec![Turn::text("from the backup")], 0).await.unwrap();
    let text = format!(
        "default_model = \"main\"\n\
         [providers.primary]\nbase_url = \"{}\"\nmax_retries = 2\nretry_base_ms = 10\n\
         [providers.backup]\nbase_url = \"{}\"\n\
         [models.main]\nprovider = \"primary\"\nmodel = \"big\"\nfallback = [\"spare\"]\n\
         [models.spare]\nprovider = \"backup\"\nmodel = \"small\"\n",
        primary.base_url, backup.base_url
    );
    let (_d, cfg) = config(&text);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let (done, evs) = run(&s).await;
    assert_eq!(
        (done["status"].as_str(), done["output"].as_str()),
        (Some("completed"), Some("from the backup")),
        "{done}"
    );
    assert_eq!(done["attempted_profiles"], json!(["main", "spare"]));
    assert_eq!(done["final_profile"], "spare");
    let t = types(&evs);
    assert_eq!(t.iter().filter(|x| *x == "llm.retry").count(), 2, "{t:?}");
    let f = of_type(&evs, "llm.failover")[0];
    assert_eq!((f["data"]["from_profile"].as_str(), f["data"]["to_profile"].as_str()), (Some("main"), Some("spare")));
    assert_eq!(f["data"]["status"], 503);
    let c = of_type(&evs, "llm.completed")[0];
    assert_eq!((c["data"]["provider"].as_str(), c["data"]["model"].as_str()), (Some("backup"), Some("small")));
    assert_eq!(backup.requests()[0]["model"], "small");

    // An auth error on the primary does not fail over.
    let (done, evs) = run(&s).await;
    assert_eq!(done["status"], "failed");
    assert!(of_type(&evs, "llm.failover").is_empty(), "{evs:?}");
    assert_eq!(done["attempted_profiles"], json!(["main"]));
    assert!(done["final_profile"].is_null());
    assert_eq!(backup.calls(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn prompt_templates_crud_and_runs_from_templates() {
    let mock = MockOpenAi::start(vec![Turn::text("reviewed")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let body =
        json!({"name": "review", "content": "Review {{ file }} for {{ focus }}.{% if strict %} Be strict.{% endif %}"});
    let (c, v) = s.post("/v1/prompt-templates", body.clone()).await;
    assert_eq!(c, 201, "{v}");
    assert_eq!(v["variables"], json!(["file", "focus", "strict"]));
    let (c, v) = s.post("/v1/prompt-templates", body).await;
    assert_eq!((c, v["error"]["code"].as_str()), (409, Some("template_exists")), "{v}");
    let (c, v) = s.post("/v1/prompt-templates", json!({"name": "broken", "content": "{% if %}"})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_template")), "{v}");
    let (c, v) = s.get("/v1/prompt-templates").await;
    assert_eq!((c, v["data"].as_array().unwrap().len()), (200, 1));
    let (c, v) = s.get("/v1/prompt-templates/review").await;
    assert_eq!((c, v["name"].as_str()), (200, Some("review")));
    assert_eq!(s.get("/v1/prompt-templates/nope").await.0, 404);
    let (_, other) = s.call(reqwest::Method::GET, "/v1/prompt-templates/review", None, Some("other-org")).await;
    assert_eq!(other["error"]["code"], "template_not_found", "templates are per tenant");

    // A missing variable is a 400 naming it; nothing is created.
    let (c, v) =
        s.post("/v1/runs", json!({"template": "review", "arguments": {"file": "main.rs", "strict": true}})).await;
    assert_eq!(
        (c, v["error"]["code"].as_str(), v["error"]["variable"].as_str()),
        (400, Some("missing_variable"), Some("focus")),
        "{v}"
    );
    assert!(v["error"]["message"].as_str().unwrap().contains("focus"));
    let (c, v) = s.post("/v1/runs", json!({"template": "nope", "arguments": {}})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (404, Some("template_not_found")), "{v}");
    let (c, _) = s.post("/v1/runs", json!({"template": "review", "input": "x"})).await;
    assert_eq!(c, 400);

    let (c, v) = s
        .post(
            "/v1/runs",
            json!({"template": "review", "arguments": {"file": "main.rs", "focus": "safety", "strict": false}}),
        )
        .await;
    assert_eq!(c, 202, "{v}");
    assert_eq!(v["input"], "Review main.rs for safety.");
    assert_eq!(s.wait_run(v["id"].as_str().unwrap()).await["output"], "reviewed");
    assert_eq!(mock.requests()[0]["messages"][1]["content"], "Review main.rs for safety.");

    let (c, v) = s
        .call(reqwest::Method::PUT, "/v1/prompt-templates/review", Some(json!({"content": "Just {{ file }}"})), None)
        .await;
    assert_eq!((c, v["variables"].clone()), (200, json!(["file"])), "{v}");
    let (c, _) = s.call(reqwest::Method::PUT, "/v1/prompt-templates/ghost", Some(json!({"content": "x"})), None).await;
    assert_eq!(c, 404);
    assert_eq!(s.call(reqwest::Method::DELETE, "/v1/prompt-templates/review", None, None).await.0, 204);
    assert_eq!(s.call(reqwest::Method::DELETE, "/v1/prompt-templates/review", None, None).await.0, 404);
}
