//! A mock OpenAI-compatible chat-completions server on loopback, playing
//! scripted turns (or an automatic tool-round pattern) for tests and benches.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bytes::Bytes;
use serde_json::{Value, json};

/// One scripted answer.
#[derive(Debug, Clone)]
pub enum Turn {
    /// A text answer, streamed in the given chunks.
    Text(Vec<String>),
    /// Reasoning chunks, then text chunks.
    Thinking { thinking: Vec<String>, text: Vec<String> },
    /// Tool calls `(name, arguments)` in one assistant turn.
    ToolCalls(Vec<(String, Value)>),
    /// Waits, then answers with text (a slow model).
    Slow(Duration, String),
    /// An HTTP error status with a JSON error body.
    Status(u16, String),
    /// 429 with a `Retry-After` header (seconds).
    RateLimited(u64),
    /// A 200 answer whose body (or first stream chunk) is not JSON.
    InvalidJson,
    /// Streams these text chunks, then closes the connection mid-answer.
    CutStream(Vec<String>),
    /// Text chunks streamed with this pause before each (a model typing).
    Paced(Duration, Vec<String>),
    /// This many chunks, a pause before each, each `[t=<µs since the epoch>] `
    /// stamped as it is sent: for measuring how late tokens reach a client.
    Stamped(Duration, usize),
}

impl Turn {
    pub fn text(s: &str) -> Self {
        Turn::Text(vec![s.to_string()])
    }

    pub fn tool(name: &str, args: Value) -> Self {
        Turn::ToolCalls(vec![(name.to_string(), args)])
    }
}

struct MockState {
    script: Mutex<VecDeque<Turn>>,
    requests: Mutex<Vec<Value>>,
    auto_rounds: usize,
    auto_tool: (String, Value),
    latency: Duration,
    /// The `authorization` header of each chat request.
    authorizations: Mutex<Vec<Option<String>>>,
    calls: AtomicU64,
    ids: AtomicU64,
    busy_nanos: AtomicU64,
    /// Title requests (kept apart from `requests`) and the title they get.
    titles: Mutex<Vec<Value>>,
    title: String,
    /// Stateless answers chosen by the conversation's first user message.
    rules: Mutex<Vec<(String, Vec<Turn>)>>,
}

/// A running mock server; stops when dropped.
pub struct MockOpenAi {
    /// Base URL to use as `OPENAI_BASE_URL` (ends in `/v1`).
    pub base_url: String,
    state: Arc<MockState>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockOpenAi {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl MockOpenAi {
    /// Starts a server that plays `script` in order; when the script is
    /// empty it answers with `auto_rounds` rounds of `echo` calls, then "done".
    pub async fn start(script: Vec<Turn>, auto_rounds: usize) -> std::io::Result<Self> {
        Self::start_with_latency(script, auto_rounds, Duration::ZERO).await
    }

    /// Like [`MockOpenAi::start`], but every answer waits `latency` first (a model's think time).
    pub async fn start_with_latency(script: Vec<Turn>, auto_rounds: usize, latency: Duration) -> std::io::Result<Self> {
        Self::start_full(script, auto_rounds, ("echo", json!({})), latency).await
    }

    /// The automatic pattern calls `tool` with `args` (plus `"round": n`) for `auto_rounds` rounds.
    pub async fn start_full(
        script: Vec<Turn>,
        auto_rounds: usize,
        tool: (&str, Value),
        latency: Duration,
    ) -> std::io::Result<Self> {
        let state = Arc::new(MockState {
            script: Mutex::new(script.into()),
            requests: Mutex::new(vec![]),
            titles: Mutex::new(vec![]),
            title: "A mock session title".into(),
            rules: Mutex::new(vec![]),
            auto_rounds,
            auto_tool: (tool.0.to_string(), tool.1),
            latency,
            authorizations: Mutex::new(vec![]),
            calls: AtomicU64::new(0),
            ids: AtomicU64::new(0),
            busy_nanos: AtomicU64::new(0),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/echo", post(echo))
            // `/redirect?to=URL`: a 302 to anywhere (for the egress guard's hop checks).
            .route(
                "/redirect",
                get(|q: axum::extract::Query<std::collections::HashMap<String, String>>| async move {
                    let to = q.get("to").cloned().unwrap_or_default();
                    (axum::http::StatusCode::FOUND, [(axum::http::header::LOCATION, to)])
                }),
            )
            .route(
                "/v1/models",
                get(|| async { Json(json!({"object": "list", "data": [{"id": "mock-model", "object": "model"}]})) }),
            )
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(Self { base_url: format!("http://{addr}/v1"), state, task })
    }

    /// Adds turns to the end of the script.
    pub fn push(&self, turns: impl IntoIterator<Item = Turn>) {
        lock(&self.state.script).extend(turns);
    }

    /// Answers conversations whose first user message contains `when` with
    /// `turns[n]`, n = assistant messages since the last user message; past
    /// the end, "done: {tool}". `{tool}` in a text turn is the last tool
    /// result. Stateless, so crashed, resumed and concurrent runs all get
    /// consistent answers; checked before the script.
    pub fn rule(&self, when: &str, turns: Vec<Turn>) {
        lock(&self.state.rules).push((when.to_string(), turns));
    }

    /// Every request body received so far.
    pub fn requests(&self) -> Vec<Value> {
        lock(&self.state.requests).clone()
    }

    /// The session-title requests, in order.
    pub fn title_requests(&self) -> Vec<Value> {
        lock(&self.state.titles).clone()
    }

    /// The `authorization` header each chat request came with, in order.
    pub fn authorizations(&self) -> Vec<Option<String>> {
        lock(&self.state.authorizations).clone()
    }

    /// Number of chat requests served.
    pub fn calls(&self) -> u64 {
        self.state.calls.load(Ordering::Relaxed)
    }

    /// Total time spent inside the handler building answers.
    pub fn busy(&self) -> Duration {
        Duration::from_nanos(self.state.busy_nanos.load(Ordering::Relaxed))
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The automatic pattern: the auto tool until `rounds` tool results follow
/// the last user message, then "done". Stateless, so resumed runs and
/// concurrent runs get consistent answers. Returns the round number too.
fn auto_turn(body: &Value, rounds: usize, tool: &(String, Value)) -> (Turn, usize) {
    let msgs = body["messages"].as_array().cloned().unwrap_or_default();
    let done = msgs.iter().rev().take_while(|m| m["role"] != "user").filter(|m| m["role"] == "tool").count();
    if done < rounds {
        let mut args = tool.1.clone();
        if let Some(o) = args.as_object_mut() {
            o.insert("round".into(), json!(done + 1));
        }
        (Turn::tool(&tool.0, args), done + 1)
    } else {
        (Turn::text("done"), done + 1)
    }
}

/// The turn a rule gives this request, with the id base of its round.
fn ruled_turn(body: &Value, rules: &[(String, Vec<Turn>)]) -> Option<(Turn, String)> {
    let msgs = body["messages"].as_array()?;
    let text = |m: &Value| match &m["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts.iter().filter_map(|p| p["text"].as_str()).collect::<Vec<_>>().concat(),
        _ => String::new(),
    };
    let first = msgs.iter().find(|m| m["role"] == "user").map(text)?;
    let (_, turns) = rules.iter().find(|(when, _)| first.contains(when.as_str()))?;
    let round = msgs.iter().rev().take_while(|m| m["role"] != "user").filter(|m| m["role"] == "assistant").count();
    let last_tool = msgs.iter().rev().find(|m| m["role"] == "tool").map(text).unwrap_or_default();
    let turn = match turns.get(round).cloned() {
        Some(Turn::Text(chunks)) => Turn::Text(chunks.iter().map(|c| c.replace("{tool}", &last_tool)).collect()),
        Some(t) => t,
        None => Turn::text(&format!("done: {last_tool}")),
    };
    Some((turn, format!("r{round}")))
}

/// Answers what it was sent: the JSON body and the headers that matter to tests.
async fn echo(headers: axum::http::HeaderMap, Json(body): Json<Value>) -> Json<Value> {
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    Json(json!({
        "body": body,
        "authorization": h("authorization"),
        "idempotency_key": h("idempotency-key"),
        "x_plain": h("x-plain"),
    }))
}

fn chunk(delta: Value, finish: Option<&str>) -> Value {
    json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "model": "mock-model",
           "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
}

fn sse(v: &Value) -> Bytes {
    Bytes::from(format!("data: {v}\n\n"))
}

const USAGE: fn() -> Value = || json!({"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15});

async fn chat(State(st): State<Arc<MockState>>, headers: axum::http::HeaderMap, Json(body): Json<Value>) -> Response {
    // Session titles are answered apart: they neither take a scripted turn
    // nor count as a call of the conversation, and cost nothing.
    if is_title_request(&body) {
        lock(&st.titles).push(body.clone());
        let stream = body["stream"].as_bool().unwrap_or(false);
        return answer(Turn::text(&st.title), stream, "title", false).await;
    }
    let started = Instant::now();
    st.calls.fetch_add(1, Ordering::Relaxed);
    let auth = headers.get("authorization").and_then(|v| v.to_str().ok()).map(str::to_string);
    lock(&st.authorizations).push(auth);
    lock(&st.requests).push(body.clone());
    // Like the real API: every tool call needs its result before the next message.
    if let Some(missing) = unanswered_tool_call(&body) {
        let msg = format!(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each \
             'tool_call_id'. The following tool_call_ids did not have response messages: {missing}"
        );
        return (StatusCode::BAD_REQUEST, Json(json!({"error": {"message": msg, "type": "invalid_request_error"}})))
            .into_response();
    }
    let ruled = ruled_turn(&body, &lock(&st.rules));
    let scripted = if ruled.is_some() { None } else { lock(&st.script).pop_front() };
    // Call ids: unique per request for scripted turns, per round for the auto
    // pattern (so a re-asked round gets the same ids).
    let (turn, id_base) = match (ruled, scripted) {
        (Some(r), _) => r,
        (None, Some(t)) => (t, format!("s{}", st.ids.fetch_add(1, Ordering::Relaxed))),
        (None, None) => {
            let (t, round) = auto_turn(&body, st.auto_rounds, &st.auto_tool);
            (t, format!("r{round}"))
        }
    };
    let stream = body["stream"].as_bool().unwrap_or(false);
    if !st.latency.is_zero() {
        tokio::time::sleep(st.latency).await;
    }
    let resp = answer(turn, stream, &id_base, true).await;
    st.busy_nanos.fetch_add(started.elapsed().as_nanos() as u64, Ordering::Relaxed);
    resp
}

/// A streamed answer of `n` chunks stamped with the time each leaves.
fn stamped(pace: Duration, n: usize) -> Response {
    use futures::StreamExt;
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default().as_micros();
    let head = futures::stream::iter([sse(&chunk(json!({"role": "assistant", "content": ""}), None))]);
    let chunks = futures::stream::iter(0..n).then(move |_| async move {
        tokio::time::sleep(pace).await;
        sse(&chunk(json!({"content": format!("[t={}] ", now())}), None))
    });
    let tail = futures::stream::iter([
        sse(&chunk(json!({}), Some("stop"))),
        sse(&json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "choices": [], "usage": USAGE()})),
        Bytes::from_static(b"data: [DONE]\n\n"),
    ]);
    let body = head.chain(chunks).chain(tail).map(Ok::<_, Infallible>);
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(body)).into_response()
}

/// A request for a session's title (agentd's title prompt as the system message).
fn is_title_request(body: &Value) -> bool {
    body["messages"][0]["content"].as_str().is_some_and(|c| c.starts_with("Write a title of at most six words"))
}

/// The first tool call id of an assistant message that no later tool message answers.
fn unanswered_tool_call(body: &Value) -> Option<String> {
    let msgs = body["messages"].as_array()?;
    for (i, m) in msgs.iter().enumerate() {
        for call in m["tool_calls"].as_array().into_iter().flatten() {
            let id = call["id"].as_str().unwrap_or_default();
            let answered = msgs[i + 1..].iter().any(|r| r["role"] == "tool" && r["tool_call_id"] == id);
            if !answered {
                return Some(id.to_string());
            }
        }
    }
    None
}

async fn answer(turn: Turn, stream: bool, id_base: &str, with_usage: bool) -> Response {
    let mut pace = Duration::ZERO;
    let (text, thinking, calls): (Vec<String>, Vec<String>, Vec<(String, Value)>) = match turn {
        Turn::Status(code, msg) => {
            let status = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return (status, Json(json!({"error": {"message": msg, "type": "server_error"}}))).into_response();
        }
        Turn::RateLimited(secs) => {
            let body = Json(json!({"error": {"message": "rate limited", "type": "rate_limit_error"}}));
            return (StatusCode::TOO_MANY_REQUESTS, [(header::RETRY_AFTER, secs.to_string())], body).into_response();
        }
        Turn::InvalidJson => {
            let body = if stream { "data: {this is not json\n\n" } else { "{\"choices\": [ oops" };
            let ct = if stream { "text/event-stream" } else { "application/json" };
            return ([(header::CONTENT_TYPE, ct)], body).into_response();
        }
        Turn::CutStream(chunks) => {
            let frames: Vec<Result<Bytes, Infallible>> =
                chunks.iter().map(|c| Ok(sse(&chunk(json!({"content": c}), None)))).collect();
            return ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(futures::stream::iter(frames)))
                .into_response();
        }
        Turn::Slow(d, t) => {
            tokio::time::sleep(d).await;
            (vec![t], vec![], vec![])
        }
        Turn::Text(t) => (t, vec![], vec![]),
        Turn::Stamped(pace, n) if stream => return stamped(pace, n),
        // Not streamed, nothing arrives early: one answer, unstamped.
        Turn::Stamped(_, n) => (vec!["[t=0] ".into(); n], vec![], vec![]),
        Turn::Paced(d, t) => {
            pace = d;
            (t, vec![], vec![])
        }
        Turn::Thinking { thinking, text } => (text, thinking, vec![]),
        Turn::ToolCalls(c) => (vec![], vec![], c),
    };
    let finish = if calls.is_empty() { "stop" } else { "tool_calls" };
    let call_id = |i: usize| format!("call_{id_base}_{i}");
    if !stream {
        let tool_calls: Vec<Value> = calls
            .iter()
            .enumerate()
            .map(|(i, (n, a))| json!({"id": call_id(i), "type": "function", "function": {"name": n, "arguments": a.to_string()}}))
            .collect();
        let mut msg = json!({"role": "assistant", "content": text.concat()});
        if !tool_calls.is_empty() {
            msg["tool_calls"] = Value::Array(tool_calls);
        }
        if !thinking.is_empty() {
            msg["reasoning_content"] = json!(thinking.concat());
        }
        return Json(json!({"id": "chatcmpl-mock", "object": "chat.completion", "model": "mock-model",
            "choices": [{"index": 0, "message": msg, "finish_reason": finish}],
            "usage": if with_usage { USAGE() } else { Value::Null }}))
        .into_response();
    }
    let mut frames = vec![sse(&chunk(json!({"role": "assistant", "content": ""}), None))];
    frames.extend(thinking.iter().map(|t| sse(&chunk(json!({"reasoning_content": t}), None))));
    frames.extend(text.iter().map(|t| sse(&chunk(json!({"content": t}), None))));
    for (i, (n, a)) in calls.iter().enumerate() {
        // Arguments arrive in two pieces, as real servers split them.
        let args = a.to_string();
        let (head, tail) = args.split_at(args.len() / 2);
        frames.push(sse(&chunk(
            json!({"tool_calls": [{"index": i, "id": call_id(i), "type": "function", "function": {"name": n, "arguments": head}}]}),
            None,
        )));
        frames.push(sse(&chunk(json!({"tool_calls": [{"index": i, "function": {"arguments": tail}}]}), None)));
    }
    frames.push(sse(&chunk(json!({}), Some(finish))));
    if with_usage {
        frames.push(sse(
            &json!({"id": "chatcmpl-mock", "object": "chat.completion.chunk", "choices": [], "usage": USAGE()}),
        ));
    }
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    use futures::StreamExt;
    let body = futures::stream::iter(frames).then(move |f| async move {
        if !pace.is_zero() {
            tokio::time::sleep(pace).await;
        }
        Ok::<_, Infallible>(f)
    });
    ([(header::CONTENT_TYPE, "text/event-stream")], Body::from_stream(body)).into_response()
}
