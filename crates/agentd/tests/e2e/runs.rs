//! Black-box tests of the run loop over HTTP: the real binary, a mock
//! OpenAI-compatible server playing the model.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use crate::common;

use crate::common::{Server, frames, types};
use agentd_testkit::{MockOpenAi, Turn};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn plain_answer_is_journaled_and_derived() {
    let mock = MockOpenAi::start(vec![Turn::text("Hello there")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (code, run) = s.post("/v1/runs", json!({"input": "hi", "model": "openai/gpt-4o-mini"})).await;
    assert_eq!(code, 202, "{run}");
    assert!(["queued", "running"].contains(&run["status"].as_str().unwrap()), "{run}");
    let id = run["id"].as_str().unwrap();
    let done = s.wait_run(id).await;
    assert_eq!(done["status"], "completed");
    assert_eq!(done["output"], "Hello there");
    assert_eq!(done["usage"]["total_tokens"], 15);
    assert!(done["error"].is_null());
    assert!(done["created_at"].is_string());

    let evs = s.events(id).await;
    assert_eq!(
        types(&evs),
        [
            "run.created",
            "run.started",
            "step.started",
            "llm.completed",
            "step.completed",
            "session.titled",
            "run.completed"
        ]
    );
    let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=7).collect::<Vec<_>>(), "seq is gap-free from 1");
    assert_eq!(evs[3]["data"]["message"]["content"][0]["text"], "Hello there");

    // The model saw the system prompt and the input; the session holds the exchange.
    let req = &mock.requests()[0];
    assert_eq!(req["model"], "gpt-4o-mini");
    assert_eq!(req["messages"][0]["role"], "system");
    assert_eq!(req["messages"][1]["content"], "hi");
    let (code, ses) = s.get(&format!("/v1/sessions/{}", done["session_id"].as_str().unwrap())).await;
    assert_eq!(code, 200);
    let roles: Vec<&str> = ses["messages"].as_array().unwrap().iter().map(|m| m["role"].as_str().unwrap()).collect();
    assert_eq!(roles, ["user", "assistant"]);

    // The first exchange titled the session: the model saw the question and the answer.
    assert_eq!(ses["title"], "A mock session title");
    let asked = mock.title_requests();
    assert_eq!(asked.len(), 1);
    let exchange = asked[0]["messages"][1]["content"].as_str().unwrap();
    assert!(exchange.contains("User: hi") && exchange.contains("Assistant: Hello there"), "{exchange}");
    // Later exchanges, and sessions someone titled, keep their title.
    let session = done["session_id"].as_str().unwrap();
    let (_, next) = s.post("/v1/runs", json!({"input": "again", "session_id": session})).await;
    s.wait_run(next["id"].as_str().unwrap()).await;
    let (_, named) = s.post("/v1/sessions", json!({"title": "my own title"})).await;
    let (_, run) = s.post("/v1/runs", json!({"input": "hello", "session_id": named["id"]})).await;
    s.wait_run(run["id"].as_str().unwrap()).await;
    assert_eq!(mock.title_requests().len(), 1, "no other title asked for");
    let (_, named) = s.get(&format!("/v1/sessions/{}", named["id"].as_str().unwrap())).await;
    assert_eq!(named["title"], "my own title");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_model_titles_off_a_session_keeps_its_first_words() {
    let mock = MockOpenAi::start(vec![Turn::text("ok")], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[sessions]\nmodel_titles = false\n").unwrap();
    let s = Server::start_with(common::Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, run) = s.post("/v1/runs", json!({"input": "please summarise the quarterly report for me today"})).await;
    let done = s.wait_run(run["id"].as_str().unwrap()).await;
    let (_, ses) = s.get(&format!("/v1/sessions/{}", done["session_id"].as_str().unwrap())).await;
    assert_eq!(ses["title"], "please summarise the quarterly report for me today");
    assert!(mock.title_requests().is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn three_rounds_of_tool_calls_then_answer() {
    let mock = MockOpenAi::start(
        vec![
            Turn::tool("echo", json!({"round": 1})),
            Turn::tool("echo", json!({"round": 2})),
            Turn::tool("current_time", json!({})),
            Turn::text("all done"),
        ],
        0,
    )
    .await
    .unwrap();
    let s = Server::start(&mock.base_url);
    let (_, run) = s.post("/v1/runs", json!({"input": "go"})).await;
    let done = s.wait_run(run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output"], "all done");
    let evs = s.events(run["id"].as_str().unwrap()).await;
    let results: Vec<&Value> = evs.iter().filter(|e| e["type"] == "tool.result").collect();
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r["data"]["is_error"] == false), "{results:?}");
    assert_eq!(evs.iter().filter(|e| e["type"] == "step.started").count(), 4);
    assert_eq!(mock.calls(), 4);
    // Each tool result went back to the model: echo's output is its arguments.
    let last = &mock.requests()[3];
    let tool_msgs: Vec<&Value> = last["messages"].as_array().unwrap().iter().filter(|m| m["role"] == "tool").collect();
    assert_eq!(tool_msgs.len(), 3);
    let first: Value = serde_json::from_str(tool_msgs[0]["content"].as_str().unwrap()).unwrap();
    assert_eq!(first, json!({"round": 1}));
    let time: Value = serde_json::from_str(tool_msgs[2]["content"].as_str().unwrap()).unwrap();
    assert!(time["utc"].is_string());
    // The tools were offered to the model.
    let names: Vec<&str> =
        last["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"echo") && names.contains(&"current_time"));
}

#[tokio::test(flavor = "multi_thread")]
async fn two_tool_calls_in_one_turn() {
    let mock = MockOpenAi::start(
        vec![
            Turn::ToolCalls(vec![("echo".into(), json!({"a": 1})), ("echo".into(), json!({"b": 2}))]),
            Turn::text("ok"),
        ],
        0,
    )
    .await
    .unwrap();
    let s = Server::start(&mock.base_url);
    let (_, run) = s.post("/v1/runs", json!({"input": "two"})).await;
    let id = run["id"].as_str().unwrap();
    assert_eq!(s.wait_run(id).await["status"], "completed");
    let evs = s.events(id).await;
    let called: Vec<&Value> = evs.iter().filter(|e| e["type"] == "tool.called").collect();
    assert_eq!(called.len(), 2);
    let ids: Vec<&str> = called.iter().map(|e| e["data"]["call_id"].as_str().unwrap()).collect();
    assert_ne!(ids[0], ids[1]);
    // Both calls were started before either result was recorded (one turn, run together).
    let t = types(&evs);
    let last_start = t.iter().rposition(|x| x == "tool.started").unwrap();
    let first_result = t.iter().position(|x| x == "tool.result").unwrap();
    assert!(last_start < first_result, "{t:?}");
    assert_eq!(mock.calls(), 2);
    let second = &mock.requests()[1];
    let answered: Vec<&str> = second["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "tool")
        .map(|m| m["tool_call_id"].as_str().unwrap())
        .collect();
    assert_eq!(answered.len(), 2);
    for id in ids {
        assert!(answered.contains(&id));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streamed_deltas_arrive_in_order_over_sse() {
    let chunks: Vec<String> = ["one ", "two ", "three ", "four ", "five"].iter().map(|s| s.to_string()).collect();
    let mock =
        MockOpenAi::start(vec![Turn::Thinking { thinking: vec!["let me ".into(), "think".into()], text: chunks }], 0)
            .await
            .unwrap();
    let s = Server::start(&mock.base_url);
    let resp =
        s.req(reqwest::Method::POST, "/v1/runs").json(&json!({"input": "count", "stream": true})).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/event-stream"));
    let run_id = resp.headers()["x-run-id"].to_str().unwrap().to_string();
    let fr = frames(resp).await;
    assert_eq!(fr[0].event, "run.created");
    assert_eq!(fr[0].id, "1");
    assert_eq!(fr[0].data["run_id"], run_id.as_str());
    assert_eq!(fr[0].data["seq"], 1);
    let deltas: Vec<&common::Frame> = fr.iter().filter(|f| f.event == "llm.delta").collect();
    assert!(deltas.iter().all(|f| f.id.is_empty()), "delta frames carry no id");
    let text: String = deltas.iter().filter_map(|f| f.data["text"].as_str()).collect();
    assert_eq!(text, "one two three four five");
    let thinking: String = deltas.iter().filter_map(|f| f.data["thinking"].as_str()).collect();
    assert_eq!(thinking, "let me think");
    // Deltas come before the stored llm.completed, and the stream ends at run.completed.
    let first_delta = fr.iter().position(|f| f.event == "llm.delta").unwrap();
    let completed = fr.iter().position(|f| f.event == "llm.completed").unwrap();
    assert!(first_delta < completed);
    assert_eq!(fr.last().unwrap().event, "run.completed");
    let ids: Vec<i64> = fr.iter().filter(|f| !f.id.is_empty()).map(|f| f.id.parse().unwrap()).collect();
    assert_eq!(ids, (1..=ids.len() as i64).collect::<Vec<_>>());
    assert_eq!(s.wait_run(&run_id).await["output"], "one two three four five");
}

#[tokio::test(flavor = "multi_thread")]
async fn last_event_id_resume_skips_what_was_seen() {
    let mock = MockOpenAi::start(vec![Turn::tool("echo", json!({"x": 1})), Turn::text("fin")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (_, run) = s.post("/v1/runs", json!({"input": "x"})).await;
    let id = run["id"].as_str().unwrap();
    s.wait_run(id).await;
    let all = s.events(id).await;
    let resp = s
        .req(reqwest::Method::GET, &format!("/v1/runs/{id}/events"))
        .header("accept", "text/event-stream")
        .header("last-event-id", "4")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let fr = frames(resp).await;
    let ids: Vec<i64> = fr.iter().map(|f| f.id.parse().unwrap()).collect();
    assert_eq!(ids.first(), Some(&5));
    assert_eq!(ids.len(), all.len() - 4);
    assert_eq!(fr.last().unwrap().event, "run.completed");
    // The frame's data is the whole event object.
    assert_eq!(fr[0].data["seq"], 5);
    assert_eq!(fr[0].data["type"], all[4]["type"]);
    // `after` works the same without the header.
    let resp = s
        .req(reqwest::Method::GET, &format!("/v1/runs/{id}/events?after=6"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(frames(resp).await[0].id, "7");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_pagination_and_type_filter() {
    let mock = MockOpenAi::start(vec![Turn::tool("echo", json!({})), Turn::text("x")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (_, run) = s.post("/v1/runs", json!({"input": "x"})).await;
    let id = run["id"].as_str().unwrap();
    s.wait_run(id).await;
    let (_, p1) = s.get(&format!("/v1/runs/{id}/events?limit=3")).await;
    assert_eq!(p1["data"].as_array().unwrap().len(), 3);
    assert_eq!(p1["next_cursor"], 3);
    let (_, p2) = s.get(&format!("/v1/runs/{id}/events?after=3&limit=1000")).await;
    assert_eq!(p2["data"][0]["seq"], 4);
    assert!(p2["next_cursor"].is_null());
    let (_, f) = s.get(&format!("/v1/runs/{id}/events?type=tool.called,tool.result")).await;
    assert_eq!(types(f["data"].as_array().unwrap()), ["tool.called", "tool.result"]);
    let (code, e) = s.get(&format!("/v1/runs/{id}/events?limit=abc")).await;
    assert_eq!((code, e["error"]["code"].as_str()), (400, Some("invalid_query")));
}

#[tokio::test(flavor = "multi_thread")]
async fn cancel_during_slow_llm_call() {
    let mock =
        MockOpenAi::start(vec![Turn::Slow(std::time::Duration::from_secs(60), "too late".into())], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (_, run) = s.post("/v1/runs", json!({"input": "slow"})).await;
    let id = run["id"].as_str().unwrap();
    s.wait_event(id, "step.started").await;
    let (code, c) = s.post(&format!("/v1/runs/{id}/cancel"), json!({"reason": "user pressed stop"})).await;
    assert_eq!(code, 200, "{c}");
    assert_eq!(c["status"], "cancelled");
    let evs = s.events(id).await;
    assert_eq!(evs.last().unwrap()["type"], "run.cancelled");
    assert_eq!(evs.last().unwrap()["data"]["reason"], "user pressed stop");
    assert!(!types(&evs).contains(&"llm.completed".to_string()));
    let (code, again) = s.post(&format!("/v1/runs/{id}/cancel"), json!({})).await;
    assert_eq!(code, 409);
    assert_eq!(again["error"]["code"], "run_already_finished");
    // The SSE stream of a cancelled run ends at run.cancelled.
    let resp = s
        .req(reqwest::Method::GET, &format!("/v1/runs/{id}/events"))
        .header("accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(frames(resp).await.last().unwrap().event, "run.cancelled");
    // Nothing more is journaled afterwards.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(s.events(id).await.len(), evs.len());
}

#[tokio::test(flavor = "multi_thread")]
async fn max_steps_exceeded_fails_clearly() {
    // The mock calls `echo` forever (100 rounds) when its script is empty.
    let mock = MockOpenAi::start(vec![], 100).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (_, run) = s.post("/v1/runs", json!({"input": "loop", "max_steps": 2})).await;
    let done = s.wait_run(run["id"].as_str().unwrap()).await;
    assert_eq!(done["status"], "failed");
    assert_eq!(done["error"]["code"], "max_steps_exceeded");
    assert!(done["error"]["message"].as_str().unwrap().contains('2'));
    let evs = s.events(run["id"].as_str().unwrap()).await;
    assert_eq!(evs.iter().filter(|e| e["type"] == "llm.completed").count(), 2);
    assert_eq!(evs.last().unwrap()["type"], "run.failed");
    assert_eq!(mock.calls(), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn everything_reads_back_unchanged_after_restart() {
    let mock =
        MockOpenAi::start(vec![Turn::tool("echo", json!({"k": "v"})), Turn::text("persisted")], 0).await.unwrap();
    let mut s = Server::start(&mock.base_url);
    let tmp = s.take_tmp();
    let data_dir = s.data_dir.clone();
    let (_, run) = s.post("/v1/runs", json!({"input": "remember"})).await;
    let id = run["id"].as_str().unwrap().to_string();
    let before_run = s.wait_run(&id).await;
    let sid = before_run["session_id"].as_str().unwrap().to_string();
    let before_events = s.events(&id).await;
    let (_, before_session) = s.get(&format!("/v1/sessions/{sid}")).await;
    let (_, before_list) = s.get(&format!("/v1/sessions/{sid}/runs")).await;
    s.stop();

    let s2 = Server::start_with(common::Opts {
        mock: Some(&mock.base_url),
        data_dir: Some(&data_dir),
        ..Default::default()
    });
    assert_eq!(s2.get(&format!("/v1/runs/{id}")).await.1, before_run);
    assert_eq!(s2.events(&id).await, before_events);
    assert_eq!(s2.get(&format!("/v1/sessions/{sid}")).await.1, before_session);
    assert_eq!(s2.get(&format!("/v1/sessions/{sid}/runs")).await.1, before_list);
    // A follow-up run in the same session sees the earlier exchange.
    mock.push([Turn::text("second")]);
    let (_, r2) = s2.post("/v1/runs", json!({"input": "again", "session_id": sid})).await;
    assert_eq!(s2.wait_run(r2["id"].as_str().unwrap()).await["status"], "completed");
    let msgs = mock.requests().last().unwrap()["messages"].as_array().unwrap().clone();
    assert_eq!(msgs[1]["content"], "remember");
    assert_eq!(msgs.last().unwrap()["content"], "again");
    drop(tmp);
}

#[tokio::test(flavor = "multi_thread")]
async fn run_cut_off_by_a_crash_resumes_on_next_start() {
    let mock =
        MockOpenAi::start(vec![Turn::Slow(std::time::Duration::from_secs(60), "never".into())], 0).await.unwrap();
    let mut s = Server::start(&mock.base_url);
    let tmp = s.take_tmp();
    let data_dir = s.data_dir.clone();
    let (_, run) = s.post("/v1/runs", json!({"input": "slow"})).await;
    let id = run["id"].as_str().unwrap().to_string();
    s.wait_event(&id, "step.started").await;
    // The slow answer must be the one the crash cuts off: wait until the call reached the mock
    // (under load it can still be on its way when step.started is journaled).
    for _ in 0..1000 {
        if mock.calls() >= 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(mock.calls(), 1, "the model call never reached the mock");
    drop(s); // SIGKILL: no chance to clean up

    // On the next start the LLM call without its answer is asked again (the
    // mock answers "done" once its script is used up).
    let s2 = Server::start_with(common::Opts {
        mock: Some(&mock.base_url),
        data_dir: Some(&data_dir),
        ..Default::default()
    });
    let r = s2.wait_run(&id).await;
    assert_eq!(r["status"], "completed", "{r}");
    assert_eq!(r["output"], "done");
    let evs = s2.events(&id).await;
    let seqs: Vec<i64> = evs.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert_eq!(seqs, (1..=evs.len() as i64).collect::<Vec<_>>(), "gap-free");
    let resumed = evs.iter().find(|e| e["type"] == "run.resumed").expect("run.resumed");
    assert_eq!(resumed["data"]["from_seq"], 3);
    assert!(resumed["data"]["node"].is_string());
    assert_eq!(
        types(&evs),
        [
            "run.created",
            "run.started",
            "step.started",
            "run.resumed",
            "step.started",
            "llm.completed",
            "step.completed",
            "session.titled",
            "run.completed"
        ]
    );
    assert_eq!(mock.calls(), 2);
    drop(tmp);
}

#[tokio::test(flavor = "multi_thread")]
async fn non_streaming_provider_mode_works() {
    let mock = MockOpenAi::start(vec![Turn::tool("echo", json!({"n": 1})), Turn::text("plain json")], 0).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    let text = format!(
        "[providers.batch]\ntype = \"openai\"\nbase_url = \"{}\"\nstream = false\napi_key_env = \"BATCH_KEY\"\n",
        mock.base_url
    );
    std::fs::write(&cfg, text).unwrap();
    let s = Server::start_with(common::Opts { config: Some(&cfg), ..Default::default() });
    let (c, run) = s.post("/v1/runs", json!({"input": "x", "model": "batch/some-model"})).await;
    assert_eq!(c, 202, "{run}");
    let done = s.wait_run(run["id"].as_str().unwrap()).await;
    assert_eq!(done["output"], "plain json", "{done}");
    assert!(mock.requests().iter().all(|r| r["stream"] == false));
    assert_eq!(mock.requests()[0]["model"], "some-model");
}

/// `GET /v1/events`: one stream of the tenant's run lifecycle events (with
/// each run's session), nothing of another tenant's, resumable by
/// `Last-Event-ID` without repeats, and the same events as JSON.
#[tokio::test(flavor = "multi_thread")]
async fn the_tenant_feed_streams_lifecycle_events_and_resumes() {
    use crate::common::frames_until;
    let mock = MockOpenAi::start(vec![Turn::text("one"), Turn::text("two")], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let open = |org: &'static str, last: Option<String>| {
        let s = &s;
        async move {
            let mut r =
                s.req(reqwest::Method::GET, "/v1/events").header("accept", "text/event-stream").header("x-org-id", org);
            if let Some(l) = last {
                r = r.header("last-event-id", l);
            }
            let resp = r.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp
        }
    };
    let acme = open("acme", None).await;
    let globex = open("globex", None).await;
    let (c, run) = s.call(reqwest::Method::POST, "/v1/runs", Some(json!({"input": "hi"})), Some("acme")).await;
    assert_eq!(c, 202, "{run}");
    let id = run["id"].as_str().unwrap().to_string();
    let session = run["session_id"].as_str().unwrap().to_string();
    let ended = |f: &[common::Frame]| f.iter().any(|f| f.event == "run.completed");
    let (got, _) = frames_until(acme, ended).await;
    let kinds: Vec<&str> = got.iter().map(|f| f.event.as_str()).collect();
    // The session's first exchange titles it: the feed carries that too.
    assert_eq!(kinds, ["run.created", "run.started", "session.titled", "run.completed"], "{got:?}");
    assert!(got.iter().all(|f| f.data["run_id"] == id.as_str() && f.data["session_id"] == session.as_str()));
    assert!(got.iter().all(|f| f.id == f.data["id"].as_str().unwrap()));

    // globex's stream carries its own run only.
    let (c, theirs) = s.call(reqwest::Method::POST, "/v1/runs", Some(json!({"input": "yo"})), Some("globex")).await;
    assert_eq!(c, 202);
    let (g, _) = frames_until(globex, ended).await;
    assert!(!g.is_empty() && g.iter().all(|f| f.data["run_id"] == theirs["id"]), "{g:?}");

    // Resuming after the first frame gives the rest, once each.
    let resumed = open("acme", Some(got[0].id.clone())).await;
    let (again, _) = frames_until(resumed, ended).await;
    assert_eq!(
        again.iter().map(|f| f.id.clone()).collect::<Vec<_>>(),
        got[1..].iter().map(|f| f.id.clone()).collect::<Vec<_>>()
    );

    // As JSON: the same events, in order.
    let (c, page) = s.call(reqwest::Method::GET, "/v1/events", None, Some("acme")).await;
    assert_eq!(c, 200);
    let ids: Vec<&str> = page["data"].as_array().unwrap().iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, got.iter().map(|f| f.id.as_str()).collect::<Vec<_>>());
    let (c, v) = s.call(reqwest::Method::GET, "/v1/events?after=nonsense", None, Some("acme")).await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_last_event_id")));
}

/// `GET /v1/runs/{id}/context?step=N` rebuilds what the model was sent at
/// each step: the same messages (roles and text) the provider received,
/// the tools, and tokens per part.
#[tokio::test(flavor = "multi_thread")]
async fn the_context_route_shows_what_the_model_saw() {
    let mock = MockOpenAi::start(
        vec![Turn::text("first answer"), Turn::tool("echo", json!({"x": 1})), Turn::text("second")],
        0,
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("agentd.toml");
    std::fs::write(&cfg, "[agents.default]\nsystem_prompt = \"You are terse.\"\n").unwrap();
    let s = Server::start_with(common::Opts { mock: Some(&mock.base_url), config: Some(&cfg), ..Default::default() });
    let (_, first) = s.post("/v1/runs", json!({"input": "hello"})).await;
    s.wait_run(first["id"].as_str().unwrap()).await;
    let sid = first["session_id"].as_str().unwrap();
    let (_, run) = s.post("/v1/runs", json!({"input": "use a tool", "session_id": sid})).await;
    let id = run["id"].as_str().unwrap().to_string();
    s.wait_run(&id).await;
    let sent = mock.requests();
    assert_eq!(sent.len(), 3);
    for (step, request) in [(1, &sent[1]), (2, &sent[2])] {
        let (c, ctx) = s.get(&format!("/v1/runs/{id}/context?step={step}")).await;
        assert_eq!(c, 200, "{ctx}");
        let ours: Vec<(String, String)> = ctx["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| {
                let text: String = m["content"].as_array().unwrap().iter().filter_map(|p| p["text"].as_str()).collect();
                (m["role"].as_str().unwrap().to_string(), text)
            })
            .collect();
        let theirs: Vec<(String, String)> = request["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| (m["role"].as_str().unwrap().to_string(), m["content"].as_str().unwrap_or_default().to_string()))
            .collect();
        assert_eq!(ours, theirs, "step {step}: the rebuilt messages are the ones sent");
        let tools: Vec<&str> = ctx["tools"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
        let sent_tools: Vec<&str> =
            request["tools"].as_array().unwrap().iter().map(|t| t["function"]["name"].as_str().unwrap()).collect();
        assert_eq!(tools, sent_tools);
        let tk = &ctx["tokens"];
        assert!(
            tk["system_prompt"].as_u64().unwrap() > 0
                && tk["tools"].as_u64().unwrap() > 0
                && tk["history"].as_u64().unwrap() > 0,
            "{tk}"
        );
        assert!(
            tk["total"].as_u64().unwrap() >= tk["system_prompt"].as_u64().unwrap() + tk["history"].as_u64().unwrap()
        );
        assert_eq!(ctx["model"], "gpt-4o-mini");
    }
    assert!(s.get(&format!("/v1/runs/{id}/context?step=9")).await.0 == 404);
    let (c, _) = s.call(reqwest::Method::GET, &format!("/v1/runs/{id}/context"), None, Some("globex")).await;
    assert_eq!(c, 404, "another tenant's run");
}

/// The runs list filters by agent, model and time range too.
#[tokio::test(flavor = "multi_thread")]
async fn runs_filter_by_agent_model_and_time() {
    let mock = MockOpenAi::start(vec![], 0).await.unwrap();
    let s = Server::start(&mock.base_url);
    let (_, a) = s.post("/v1/runs", json!({"input": "one"})).await;
    let (_, b) = s.post("/v1/runs", json!({"input": "two", "model": "openai/other-model"})).await;
    s.wait_run(a["id"].as_str().unwrap()).await;
    s.wait_run(b["id"].as_str().unwrap()).await;
    let ids = |v: &Value| {
        v["data"].as_array().unwrap().iter().map(|r| r["id"].as_str().unwrap().to_string()).collect::<Vec<_>>()
    };
    let (_, v) = s.get("/v1/runs?model=openai/other-model").await;
    assert_eq!(ids(&v), [b["id"].as_str().unwrap()]);
    let (_, v) = s.get("/v1/runs?agent=default&from=2000-01-01").await;
    assert_eq!(ids(&v).len(), 2);
    let (_, v) = s.get("/v1/runs?to=2000-01-01T00:00:00Z").await;
    assert!(ids(&v).is_empty());
    let (_, v) = s.get("/v1/runs?agent=nobody").await;
    assert!(ids(&v).is_empty());
    let (c, v) = s.get("/v1/runs?from=yesterday").await;
    assert_eq!((c, v["error"]["code"].as_str()), (400, Some("invalid_request")));
}
