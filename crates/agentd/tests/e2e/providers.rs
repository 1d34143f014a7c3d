//! Resilience against real HTTP mocks: retries per error class, partial
//! streams, and failover along a profile's fallback list.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::path::PathBuf;

use crate::common::{Opts, Server, types};
use agentd_testkit::{MockOpenAi, Turn};
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
            // 5: retries run out (three attempts by default).
            Turn::Status(503, "first outage".into()),
            Turn::Status(503, "second outage".into()),
            Turn::Status(503, "third outage".into()),
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
    assert_eq!(of_type(&evs, "llm.retry").len(), 2, "max_retries defaults to 2");
    assert!(done["error"]["message"].as_str().unwrap().contains("third outage"), "{done}");
    assert_eq!(of_type(&evs, "llm.failed")[0]["data"]["status"], 503);
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
         [providers.primary]\nbase_url = \"{}\"\nretry_base_ms = 10\n\
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

fn window_config(mock: &MockOpenAi, window: u64, keep: usize) -> String {
    format!(
        "default_model = \"small\"\n[providers.p]\nbase_url = \"{}\"\nmax_retries = 0\n\
         [agents.default]\ntools = []\n[models.small]\nprovider = \"p\"\nmodel = \"tiny-model\"\ncontext_window = {window}\nkeep_turns = {keep}\nmax_tokens = 64\n",
        mock.base_url
    )
}

fn texts(req: &Value) -> Vec<String> {
    req["messages"].as_array().unwrap().iter().map(|m| m["content"].as_str().unwrap_or_default().to_string()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_long_session_is_compacted_to_fit_the_window() {
    let mock = MockOpenAi::start(
        vec![
            Turn::text("answer one"),
            Turn::text("SUMMARY: the user described the alpha project."),
            Turn::text("answer two"),
            Turn::text("answer three"),
        ],
        0,
    )
    .await
    .unwrap();
    let (_d, cfg) = config(&window_config(&mock, 700, 2));
    let data = tempfile::tempdir().unwrap();
    let opts = || Opts { config: Some(&cfg), data_dir: Some(data.path()), ..Default::default() };
    let s = Server::start_with(opts());
    let first = format!("ALPHA {}", "the alpha project needs care. ".repeat(29));
    let second = format!("BETA {}", "now about beta. ".repeat(50));
    let (_, r1) = s.post("/v1/runs", json!({"input": first})).await;
    let sid = r1["session_id"].as_str().unwrap().to_string();
    assert_eq!(s.wait_run(r1["id"].as_str().unwrap()).await["output"], "answer one");
    let (_, r2) = s.post("/v1/runs", json!({"input": second, "session_id": sid})).await;
    let id2 = r2["id"].as_str().unwrap().to_string();
    let done = s.wait_run(&id2).await;
    assert_eq!(done["output"], "answer two", "{done}");
    let evs = s.events(&id2).await;
    let c = of_type(&evs, "context.compacted");
    assert_eq!(c.len(), 1, "{evs:?}");
    let (before, after) =
        (c[0]["data"]["before_tokens"].as_u64().unwrap(), c[0]["data"]["after_tokens"].as_u64().unwrap());
    assert!(after < before && after < 700, "{}", c[0]);
    assert_eq!(c[0]["data"]["method"], "summary");
    // The summariser was asked with the older turn; the next request has the summary and the recent turns verbatim.
    let reqs = mock.requests();
    assert!(texts(&reqs[1]).concat().contains("ALPHA"), "the summariser saw the old turn");
    let main = texts(&reqs[2]);
    assert!(main.iter().any(|t| t.contains("SUMMARY: the user described the alpha project.")), "{main:?}");
    assert!(!main.iter().any(|t| t.contains("ALPHA")), "the old turn is gone: {main:?}");
    assert_eq!(main.last().unwrap(), &second, "the latest turn is kept verbatim");
    assert!(main.iter().any(|t| t == "answer one"), "the last exchanges stay: {main:?}");
    s.stop();

    // After a restart the session still starts from the summary (it is in the journal).
    let s = Server::start_with(opts());
    let (_, r3) = s.post("/v1/runs", json!({"input": "and gamma?", "session_id": sid})).await;
    assert_eq!(s.wait_run(r3["id"].as_str().unwrap()).await["output"], "answer three");
    let last = texts(mock.requests().last().unwrap());
    assert!(last.iter().any(|t| t.contains("SUMMARY:")) && !last.iter().any(|t| t.contains("ALPHA")), "{last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn overflow_errors_compact_harder_and_the_summariser_falls_back_to_truncation() {
    let mock = MockOpenAi::start(
        vec![
            Turn::text("first"),
            Turn::text("second"),
            // Our count says it fits; the provider disagrees once.
            Turn::Status(400, "This model's maximum context length is 512 tokens. Please reduce the length.".into()),
            Turn::text("SUMMARY of one and two"),
            Turn::text("fitted"),
        ],
        0,
    )
    .await
    .unwrap();
    let (_d, cfg) = config(&window_config(&mock, 4000, 4));
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let (_, r1) = s.post("/v1/runs", json!({"input": "one"})).await;
    let sid = r1["session_id"].as_str().unwrap().to_string();
    s.wait_run(r1["id"].as_str().unwrap()).await;
    let (_, r2) = s.post("/v1/runs", json!({"input": "two", "session_id": sid})).await;
    s.wait_run(r2["id"].as_str().unwrap()).await;
    let (_, r3) = s.post("/v1/runs", json!({"input": "three", "session_id": sid})).await;
    let id3 = r3["id"].as_str().unwrap().to_string();
    let done = s.wait_run(&id3).await;
    assert_eq!(done["output"], "fitted", "{done}");
    let evs = s.events(&id3).await;
    let c = of_type(&evs, "context.compacted");
    assert_eq!(c.len(), 1, "{evs:?}");
    assert_eq!(c[0]["data"]["method"], "summary");
    let retry = of_type(&evs, "llm.retry");
    assert_eq!((retry.len(), retry[0]["data"]["status"].as_u64()), (1, Some(400)), "the refusal is journaled: {evs:?}");
    let last = texts(mock.requests().last().unwrap());
    assert!(!last.iter().any(|t| t == "one" || t == "two"), "compacted harder: only the last exchange stays: {last:?}");
    assert!(last.iter().any(|t| t.contains("SUMMARY of one and two")));
    assert_eq!(last.last().unwrap(), "three");

    // When even the summariser's input would not fit, the transcript is shortened without a model call.
    let mock = MockOpenAi::start(vec![Turn::text("a1"), Turn::text("a2")], 0).await.unwrap();
    let (_d2, cfg) = config(&window_config(&mock, 300, 1));
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let long = format!("GAMMA {}", "a long story about gamma rays. ".repeat(20));
    let (_, r1) = s.post("/v1/runs", json!({"input": long})).await;
    let sid = r1["session_id"].as_str().unwrap().to_string();
    s.wait_run(r1["id"].as_str().unwrap()).await;
    let (_, r2) = s.post("/v1/runs", json!({"input": "next", "session_id": sid})).await;
    let id2 = r2["id"].as_str().unwrap().to_string();
    assert_eq!(s.wait_run(&id2).await["output"], "a2");
    let c = s.events(&id2).await.into_iter().find(|e| e["type"] == "context.compacted").expect("compacted");
    assert_eq!(c["data"]["method"], "truncation", "{c}");
    assert_eq!(mock.calls(), 2, "no summariser call");
    let last = texts(mock.requests().last().unwrap());
    assert_eq!(last.last().unwrap(), "next");
    assert!(last.concat().len() < long.len(), "{last:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn images_reach_models_that_take_them_and_text_only_profiles_refuse_them() {
    let mock = MockOpenAi::start(vec![Turn::text("a red pixel")], 0).await.unwrap();
    let text = format!(
        "default_model = \"vision\"\n[providers.p]\nbase_url = \"{}\"\n\
         [models.vision]\nprovider = \"p\"\nmodel = \"v1\"\n\
         [models.plain]\nprovider = \"p\"\nmodel = \"t1\"\ninput = [\"text\"]\n",
        mock.base_url
    );
    let (_d, cfg) = config(&text);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let png = "data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg==";
    let (c, v) = s.post("/v1/runs", json!({"input": "what is this?", "model": "plain", "images": [png]})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("images_not_supported")), "{v}");
    assert!(v["error"]["message"].as_str().unwrap().contains("plain"));
    let (c, v) = s.post("/v1/runs", json!({"input": "x", "images": ["data:image/png;base64,@@@@"]})).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_image")), "{v}");
    let (c, v) = s.post("/v1/runs", json!({"input": "x", "images": ["file:///etc/passwd"]})).await;
    assert_eq!(c, 400, "{v}");
    assert_eq!(mock.calls(), 0, "refused requests never reach the model");

    let (c, r) = s.post("/v1/runs", json!({"input": "what is this?", "images": [png]})).await;
    assert_eq!(c, 202, "{r}");
    let done = s.wait_run(r["id"].as_str().unwrap()).await;
    assert_eq!(done["output"], "a red pixel");
    let user = &mock.requests()[0]["messages"][1];
    assert_eq!(user["content"][0]["text"], "what is this?");
    assert_eq!(user["content"][1]["image_url"]["url"], png);
    // The session keeps the image with the message.
    let (_, ses) = s.get(&format!("/v1/sessions/{}", done["session_id"].as_str().unwrap())).await;
    assert_eq!(ses["messages"][0]["content"][1]["type"], "image", "{ses}");
}

#[tokio::test(flavor = "multi_thread")]
async fn usage_and_cost_per_call_run_and_session() {
    // The mock reports 10 input and 5 output tokens per answer.
    let mock =
        MockOpenAi::start(vec![Turn::tool("echo", json!({"text": "x"})), Turn::text("one"), Turn::text("two")], 0)
            .await
            .unwrap();
    let text = format!(
        "default_model = \"priced\"\n[providers.p]\nbase_url = \"{}\"\n\
         [models.priced]\nprovider = \"p\"\nmodel = \"m\"\nprice = {{ input_per_mtok = 3.0, output_per_mtok = 15.0 }}\n\
         [models.free]\nprovider = \"p\"\nmodel = \"m\"\n",
        mock.base_url
    );
    let (_d, cfg) = config(&text);
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    let (_, r1) = s.post("/v1/runs", json!({"input": "a"})).await;
    let done = s.wait_run(r1["id"].as_str().unwrap()).await;
    let per_call = (10.0 * 3.0 + 5.0 * 15.0) / 1e6;
    assert_eq!(done["usage"], json!({"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}));
    assert!((done["cost_usd"].as_f64().unwrap() - 2.0 * per_call).abs() < 1e-12, "{done}");
    let evs = s.events(r1["id"].as_str().unwrap()).await;
    let calls = of_type(&evs, "llm.completed");
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["data"]["usage"]["total_tokens"], 15);
    assert!((calls[0]["data"]["cost_usd"].as_f64().unwrap() - per_call).abs() < 1e-12);
    let sid = done["session_id"].as_str().unwrap();
    let (_, r2) = s.post("/v1/runs", json!({"input": "b", "session_id": sid, "model": "free"})).await;
    let free = s.wait_run(r2["id"].as_str().unwrap()).await;
    assert!(free["cost_usd"].is_null(), "no price, no cost: {free}");
    let (_, ses) = s.get(&format!("/v1/sessions/{sid}")).await;
    assert_eq!(ses["usage"]["total_tokens"], 45);
    assert!((ses["cost_usd"].as_f64().unwrap() - 2.0 * per_call).abs() < 1e-12, "{ses}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_agent_takes_its_system_prompt_from_a_template() {
    let mock = MockOpenAi::start(vec![Turn::text("hello from Ada")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let tpl = json!({"name": "persona", "content": "You are {{ name }}, an expert in {{ topic }}."});
    assert_eq!(s.post("/v1/prompt-templates", tpl).await.0, 201);
    let (c, v) = s.post("/v1/agents", json!({"name": "expert", "system_template": "persona"})).await;
    assert_eq!(c, 201, "{v}");
    let (c, v) = s.post("/v1/runs", json!({"input": "hi", "agent": "expert", "arguments": {"name": "Ada"}})).await;
    assert_eq!((c, v["error"]["variable"].as_str()), (400, Some("topic")), "{v}");
    let body = json!({"input": "hi", "agent": "expert", "arguments": {"name": "Ada", "topic": "maths"}});
    let (c, r) = s.post("/v1/runs", body).await;
    assert_eq!(c, 202, "{r}");
    assert_eq!(s.wait_run(r["id"].as_str().unwrap()).await["output"], "hello from Ada");
    let system = mock.requests()[0]["messages"][0]["content"].as_str().unwrap().to_string();
    assert!(system.starts_with("You are Ada, an expert in maths."), "{system}");
}
