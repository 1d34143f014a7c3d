//! Opt-in: a full run against a real model (Gemma 3 270M behind llama.cpp's
//! OpenAI-compatible server). Start it with `scripts/real-model` or point
//! `AGENTD_TEST_LLAMA_URL` at such a server (`http://127.0.0.1:PORT/v1`), then
//! `cargo nextest run --run-ignored only -E 'binary(real_model)'`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use crate::common::{Opts, Server, types};
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs a llama.cpp server: set AGENTD_TEST_LLAMA_URL (see README)"]
async fn a_real_model_completes_a_run_with_a_forced_tool_call() {
    let url = std::env::var("AGENTD_TEST_LLAMA_URL").expect("AGENTD_TEST_LLAMA_URL");
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(
        &cfg,
        format!(
            "default_model = \"gemma\"\n\
             [providers.local]\ntype = \"openai\"\nbase_url = \"{url}\"\ntimeout_secs = 600\n\
             [models.gemma]\nprovider = \"local\"\nmodel = \"gemma-3-270m\"\nmax_tokens = 48\ncontext_window = 2048\n\
             [agents.default]\ntools = [\"echo\"]\nsystem_prompt = \"You are terse.\"\n"
        ),
    )
    .unwrap();
    let s = Server::start_with(Opts { config: Some(&cfg), ..Default::default() });
    // This server never calls a tool on `auto`: force one on the first call.
    let body = json!({
        "input": "Use the echo tool to say hello.",
        "max_steps": 3,
        "tool_choice": {"type": "function", "function": {"name": "echo"}},
    });
    let (c, run) = s.post("/v1/runs", body).await;
    assert_eq!(c, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let done = s.wait_run(&id).await;
    let evs = s.events(&id).await;
    assert_eq!(done["status"], "completed", "{done}\n{:?}", types(&evs));
    let called = evs.iter().find(|e| e["type"] == "tool.called").expect("a tool call");
    assert_eq!(called["data"]["name"], "echo");
    assert!(called["data"]["arguments"].is_object(), "odd whitespace still parses: {}", called["data"]["arguments"]);
    let result = evs.iter().find(|e| e["type"] == "tool.result").unwrap();
    assert_eq!(result["data"]["status"], "ok", "{result}");
    // The second call carried the assistant's tool call back (with "" content: null makes this server answer 500).
    assert!(evs.iter().filter(|e| e["type"] == "llm.completed").count() >= 2);
    assert!(done["usage"]["total_tokens"].as_u64().unwrap() > 0);
    assert_eq!(done["final_profile"], "gemma");
}
