//! Recorded transcripts of the real APIs (from the providers' public docs and
//! SDK test recordings; see fixtures/MANIFEST.json) played over real HTTP to
//! each adapter: what it extracts must match what the manifest says.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use std::sync::{Arc, Mutex};
use std::time::Duration;

use agentd_core::{ContentPart, Message, Role, ToolCall, ToolSpec};
use agentd_providers::{
    AnthropicConfig, AnthropicProvider, ChatRequest, Delta, OllamaConfig, OllamaProvider, OpenAiConfig, OpenAiProvider,
    Provider, ProviderError,
};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures");

/// Serves `body` once per connection with `status` and `content_type`; keeps each request body.
async fn serve(status: u16, content_type: &'static str, body: Vec<u8>) -> (String, Arc<Mutex<Vec<Value>>>) {
    serve_with(status, content_type, "", body, false).await
}

/// Like [`serve`], with extra header lines; `cut` announces more body than it
/// sends and closes the connection (a stream broken mid-way).
async fn serve_with(
    status: u16,
    content_type: &'static str,
    extra: &'static str,
    body: Vec<u8>,
    cut: bool,
) -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(vec![]));
    let seen2 = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let (body, seen) = (body.clone(), seen2.clone());
            tokio::spawn(async move {
                let mut buf = vec![];
                let mut chunk = [0u8; 8192];
                // Read headers, then Content-Length bytes of body.
                let (head_end, len) = loop {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..p]).to_ascii_lowercase();
                        let len = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap_or(0)))
                            .unwrap_or(0);
                        break (p + 4, len);
                    }
                };
                while buf.len() < head_end + len {
                    let n = sock.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                }
                if let Ok(v) = serde_json::from_slice::<Value>(&buf[head_end..]) {
                    seen.lock().unwrap().push(v);
                }
                let announced = if cut { body.len() + 1000 } else { body.len() };
                let head = format!(
                    "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {announced}\r\n{extra}connection: close\r\n\r\n"
                );
                let _ = sock.write_all(head.as_bytes()).await;
                let _ = sock.write_all(&body).await;
            });
        }
    });
    (format!("http://{addr}"), seen)
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(format!("{DIR}/MANIFEST.json")).unwrap()).unwrap()
}

fn provider(kind: &str, base: &str, stream: bool) -> Box<dyn Provider> {
    // reqwest is built without a default TLS crypto backend.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let t = Duration::from_secs(10);
    match kind {
        "openai" => Box::new(
            OpenAiProvider::new(OpenAiConfig {
                base_url: format!("{base}/v1"),
                api_key: Some("sk-test".into()),
                headers: vec![],
                timeout: t,
                stream,
                max_tokens_field: None,
                guard: None,
            })
            .unwrap(),
        ),
        "anthropic" => Box::new(
            AnthropicProvider::new(AnthropicConfig {
                base_url: base.into(),
                api_key: Some("k".into()),
                headers: vec![],
                timeout: t,
                stream,
                guard: None,
            })
            .unwrap(),
        ),
        _ => Box::new(
            OllamaProvider::new(OllamaConfig {
                base_url: base.into(),
                headers: vec![],
                timeout: t,
                stream,
                think: None,
                guard: None,
            })
            .unwrap(),
        ),
    }
}

/// The finish reason our adapters report for a raw one.
fn normalised_finish(kind: &str, raw: &str, has_calls: bool) -> String {
    match (kind, raw) {
        ("anthropic", "end_turn") => "stop".into(),
        ("anthropic", "tool_use") => "tool_calls".into(),
        ("ollama", _) if has_calls => "tool_calls".into(),
        _ => raw.into(),
    }
}

fn conversation() -> Vec<Message> {
    let mut assistant = Message::text(Role::Assistant, "");
    assistant.tool_calls =
        vec![ToolCall { id: "call_1".into(), name: "get_weather".into(), arguments: json!({"city": "Paris"}) }];
    vec![
        Message::text(Role::System, "Be brief."),
        Message {
            role: Role::User,
            content: vec![
                ContentPart::text("What is in this picture, and the weather?"),
                ContentPart::Image { url: "data:image/png;base64,iVBORw0KGgo=".into(), mime_type: None },
            ],
            tool_calls: vec![],
            tool_call_id: None,
            thinking: None,
            compaction: None,
            thinking_signature: None,
        },
        assistant,
        Message::tool_result("call_1", vec![ContentPart::text("sunny, 21 C")]),
    ]
}

#[tokio::test]
async fn every_recorded_transcript_parses_as_documented() {
    let m = manifest();
    let tools = vec![ToolSpec {
        name: "get_weather".into(),
        description: "weather".into(),
        input_schema: json!({"type": "object", "properties": {"city": {"type": "string"}}}),
    }];
    let mut checked = 0;
    for (file, entry) in m.as_object().unwrap() {
        let expect = &entry["expect"];
        if expect.get("error_type").is_some() {
            continue;
        }
        let kind = file.split('/').next().unwrap();
        let stream = !file.ends_with(".json");
        let ctype = if file.ends_with(".sse") {
            "text/event-stream"
        } else if file.ends_with(".ndjson") {
            "application/x-ndjson"
        } else {
            "application/json"
        };
        let body = std::fs::read(format!("{DIR}/{file}")).unwrap();
        let (base, seen) = serve(200, ctype, body).await;
        let p = provider(kind, &base, stream);
        let deltas = Mutex::new(vec![]);
        let sink = |d: Delta| deltas.lock().unwrap().push(d);
        let msgs = conversation();
        let req = ChatRequest { model: "m", messages: &msgs, tools: &tools, max_tokens: Some(256), params: None };
        let r = p.chat(req, &sink).await.unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(r.message.text_content(), expect["text"].as_str().unwrap(), "{file}: text");
        assert_eq!(r.message.thinking.as_deref(), expect["thinking"].as_str(), "{file}: thinking");
        let calls: Vec<(String, Value)> =
            r.message.tool_calls.iter().map(|c| (c.name.clone(), c.arguments.clone())).collect();
        let want: Vec<(String, Value)> = expect["tool_calls"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["name"].as_str().unwrap().to_string(), c["arguments"].clone()))
            .collect();
        assert_eq!(calls, want, "{file}: tool calls");
        for (got, w) in r.message.tool_calls.iter().zip(expect["tool_calls"].as_array().unwrap()) {
            match w["id"].as_str() {
                Some(id) => assert_eq!(got.id, id, "{file}: call id"),
                None => assert!(!got.id.is_empty(), "{file}: a call without an id gets one"),
            }
        }
        let raw = expect["finish"].as_str().unwrap();
        assert_eq!(r.finish_reason, normalised_finish(kind, raw, !want.is_empty()), "{file}: finish");
        if let Some(u) = expect["usage"].as_object() {
            assert_eq!(r.usage.input_tokens, u["input_tokens"].as_u64().unwrap(), "{file}: input tokens");
            assert_eq!(r.usage.output_tokens, u["output_tokens"].as_u64().unwrap(), "{file}: output tokens");
        }
        if stream {
            let d = deltas.lock().unwrap();
            let text: String =
                d.iter().filter_map(|d| if let Delta::Text(t) = d { Some(t.as_str()) } else { None }).collect();
            assert_eq!(text, expect["text"].as_str().unwrap(), "{file}: streamed text deltas");
            if let Some(th) = expect["thinking"].as_str() {
                let got: String =
                    d.iter().filter_map(|d| if let Delta::Thinking(t) = d { Some(t.as_str()) } else { None }).collect();
                assert_eq!(got, th, "{file}: thinking deltas");
            }
        }
        if *file == "anthropic/thinking_stream.sse" {
            assert!(r.message.thinking_signature.as_deref().is_some_and(|s| !s.is_empty()), "{file}: signature kept");
        }
        check_request(kind, &seen.lock().unwrap()[0], stream);
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} transcripts checked");
}

/// What each adapter sent: the provider's own request shape.
fn check_request(kind: &str, req: &Value, stream: bool) {
    assert_eq!(req["stream"], stream);
    match kind {
        "openai" => {
            assert_eq!(req["messages"][0]["role"], "system");
            assert_eq!(req["messages"][1]["content"][1]["image_url"]["url"], "data:image/png;base64,iVBORw0KGgo=");
            assert_eq!(req["messages"][2]["content"], "", "assistant content is \"\", never null");
            assert_eq!(req["messages"][2]["tool_calls"][0]["function"]["arguments"], "{\"city\":\"Paris\"}");
            assert_eq!(req["messages"][3]["tool_call_id"], "call_1");
            assert_eq!(req["tools"][0]["function"]["name"], "get_weather");
            assert_eq!(req["max_tokens"], 256);
        }
        "anthropic" => {
            assert_eq!(req["system"], "Be brief.");
            assert_eq!(req["max_tokens"], 256);
            let m = req["messages"].as_array().unwrap();
            assert_eq!(m.len(), 3, "system lifted out; tool result in a user turn: {req}");
            assert_eq!(
                m[0]["content"][1]["source"],
                json!({"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="})
            );
            assert_eq!(m[1]["content"][0]["type"], "tool_use");
            assert_eq!(m[1]["content"][0]["input"], json!({"city": "Paris"}));
            assert_eq!(
                (m[2]["role"].as_str(), m[2]["content"][0]["type"].as_str()),
                (Some("user"), Some("tool_result"))
            );
            assert_eq!(m[2]["content"][0]["tool_use_id"], "call_1");
            assert_eq!(req["tools"][0]["input_schema"]["type"], "object");
        }
        _ => {
            assert_eq!(req["messages"][1]["images"], json!(["iVBORw0KGgo="]));
            assert_eq!(req["messages"][2]["tool_calls"][0]["function"]["arguments"], json!({"city": "Paris"}));
            assert_eq!(
                (req["messages"][3]["role"].as_str(), req["messages"][3]["tool_name"].as_str()),
                (Some("tool"), Some("get_weather"))
            );
            assert_eq!(req["options"]["num_predict"], 256);
        }
    }
}

#[tokio::test]
async fn provider_error_bodies_become_retryable_errors() {
    let body = std::fs::read(format!("{DIR}/anthropic/error_overloaded.json")).unwrap();
    let (base, _) = serve(529, "application/json", body).await;
    let p = provider("anthropic", &base, false);
    let msgs = vec![Message::text(Role::User, "hi")];
    let req = ChatRequest { model: "m", messages: &msgs, tools: &[], max_tokens: None, params: None };
    let e = p.chat(req.clone(), &|_| {}).await.unwrap_err();
    assert!(matches!(&e, ProviderError::Http { status: 529, message, .. } if message == "Overloaded"), "{e}");
    assert!(e.retryable() && e.may_fail_over());
    let (base, _) = serve(401, "application/json", br#"{"error":"unauthorized"}"#.to_vec()).await;
    let e = provider("ollama", &base, true).chat(req, &|_| {}).await.unwrap_err();
    assert!(!e.retryable() && !e.may_fail_over(), "{e}");
}

#[tokio::test]
async fn every_adapter_classifies_each_error_class() {
    let msgs = vec![Message::text(Role::User, "hi")];
    let req = ChatRequest { model: "m", messages: &msgs, tools: &[], max_tokens: None, params: None };
    for kind in ["openai", "anthropic", "ollama"] {
        // 429 with Retry-After: retryable, and the wait is what the provider asked for.
        let body = br#"{"error": {"message": "slow down", "type": "rate_limit_error"}}"#.to_vec();
        let (base, _) = serve_with(429, "application/json", "retry-after: 7\r\n", body, false).await;
        let e = provider(kind, &base, true).chat(req.clone(), &|_| {}).await.unwrap_err();
        assert!(
            matches!(&e, ProviderError::Http { status: 429, retry_after: Some(d), .. } if d.as_secs() == 7),
            "{kind}: {e:?}"
        );
        assert!(e.retryable(), "{kind}");
        // 500: retryable, may fail over.
        let (base, _) = serve(500, "application/json", br#"{"error": "boom"}"#.to_vec()).await;
        let e = provider(kind, &base, false).chat(req.clone(), &|_| {}).await.unwrap_err();
        assert!(e.retryable() && e.may_fail_over(), "{kind}: {e:?}");
        // 401: neither.
        let (base, _) = serve(401, "application/json", br#"{"error": {"message": "bad key"}}"#.to_vec()).await;
        let e = provider(kind, &base, false).chat(req.clone(), &|_| {}).await.unwrap_err();
        assert!(!e.retryable() && !e.may_fail_over(), "{kind}: {e:?}");
        assert!(e.to_string().contains("bad key"), "{kind}: {e}");
        // A 200 whose body is not JSON: malformed, not retried.
        let (base, _) = serve(200, "application/json", b"{\"choices\": [ oops".to_vec()).await;
        let e = provider(kind, &base, false).chat(req.clone(), &|_| {}).await.unwrap_err();
        assert!(matches!(e, ProviderError::InvalidResponse(_)) && !e.retryable(), "{kind}: {e:?}");
        // A stream cut mid-way after some tokens: interrupted, retryable.
        let (file, ctype) = match kind {
            "openai" => ("openai/text_stream.sse", "text/event-stream"),
            "anthropic" => ("anthropic/text_stream.sse", "text/event-stream"),
            _ => ("ollama/text_stream.ndjson", "application/x-ndjson"),
        };
        let full = std::fs::read(format!("{DIR}/{file}")).unwrap();
        let half = full[..full.len() / 2].to_vec();
        let (base, _) = serve_with(200, ctype, "", half, true).await;
        let seen = Mutex::new(0);
        let e = provider(kind, &base, true).chat(req.clone(), &|_| *seen.lock().unwrap() += 1).await.unwrap_err();
        assert!(matches!(e, ProviderError::StreamInterrupted(_)) && e.retryable(), "{kind}: {e:?}");
    }
}

#[tokio::test]
async fn openai_switches_to_max_completion_tokens_when_told() {
    // First answer: the server wants the other parameter; the adapter switches once.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let bodies = Arc::new(Mutex::new(vec![]));
    let b2 = bodies.clone();
    tokio::spawn(async move {
        let mut n = 0;
        while let Ok((mut sock, _)) = listener.accept().await {
            n += 1;
            let mut buf = vec![0u8; 65536];
            let len = sock.read(&mut buf).await.unwrap_or(0);
            let text = String::from_utf8_lossy(&buf[..len]).to_string();
            if let Some(p) = text.find("\r\n\r\n") {
                b2.lock().unwrap().push(serde_json::from_str::<Value>(&text[p + 4..]).unwrap_or(Value::Null));
            }
            let (status, body) = if n == 1 {
                (
                    400,
                    r#"{"error":{"message":"Unsupported parameter: 'max_tokens' is not supported with this model. Use 'max_completion_tokens' instead."}}"#,
                )
            } else {
                (200, r#"{"choices":[{"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#)
            };
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = sock.write_all(head.as_bytes()).await;
            let _ = sock.write_all(body.as_bytes()).await;
        }
    });
    let p = provider("openai", &format!("http://{addr}"), false);
    let msgs = vec![Message::text(Role::User, "hi")];
    let req = ChatRequest { model: "o-model", messages: &msgs, tools: &[], max_tokens: Some(50), params: None };
    let r = p.chat(req, &|_| {}).await.unwrap();
    assert_eq!(r.message.text_content(), "ok");
    let b = bodies.lock().unwrap();
    assert_eq!((b[0]["max_tokens"].as_u64(), b[0].get("max_completion_tokens").is_none()), (Some(50), true));
    assert_eq!((b[1]["max_completion_tokens"].as_u64(), b[1].get("max_tokens").is_none()), (Some(50), true));
}

#[tokio::test]
async fn anthropic_sends_signed_thinking_back_before_tool_use() {
    let mut a = Message::text(Role::Assistant, "");
    a.thinking = Some("let me check".into());
    a.thinking_signature = Some("sig-123".into());
    a.tool_calls = vec![ToolCall { id: "t1".into(), name: "get_weather".into(), arguments: json!({}) }];
    let msgs =
        vec![Message::text(Role::User, "weather?"), a, Message::tool_result("t1", vec![ContentPart::text("sunny")])];
    let (base, seen) =
        serve(200, "application/json", std::fs::read(format!("{DIR}/anthropic/text.json")).unwrap()).await;
    let p = provider("anthropic", &base, false);
    let req = ChatRequest { model: "m", messages: &msgs, tools: &[], max_tokens: None, params: None };
    p.chat(req, &|_| {}).await.unwrap();
    let body = seen.lock().unwrap()[0].clone();
    let blocks = &body["messages"][1]["content"];
    assert_eq!(blocks[0], json!({"type": "thinking", "thinking": "let me check", "signature": "sig-123"}));
    assert_eq!(blocks[1]["type"], "tool_use");
}
