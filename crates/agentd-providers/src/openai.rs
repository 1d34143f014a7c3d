//! OpenAI-compatible chat completions (`POST {base_url}/chat/completions`),
//! streaming (SSE) and non-streaming, with tool calls.

use std::collections::BTreeMap;
use std::time::Duration;

use agentd_core::{ContentPart, Message, Role, ToolCall, Usage};
use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use std::sync::atomic::{AtomicBool, Ordering};

use crate::http::{self, http_error, map_send_error, parse_arguments, truncate};
use crate::{ChatRequest, ChatResponse, Delta, DeltaSink, Provider, ProviderError};

/// Settings of one OpenAI-compatible endpoint.
#[derive(Clone)]
pub struct OpenAiConfig {
    pub base_url: String,
    pub api_key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub stream: bool,
    /// `max_tokens` or `max_completion_tokens` (default: the latter for api.openai.com only).
    pub max_tokens_field: Option<String>,
    /// Checks every address connected to (providers tenants add).
    pub guard: Option<crate::Guard>,
}

impl std::fmt::Debug for OpenAiConfig {
    // Hand-written so the key never reaches a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenAiConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("timeout", &self.timeout)
            .field("stream", &self.stream)
            .finish()
    }
}

/// A client for one OpenAI-compatible endpoint.
pub struct OpenAiProvider {
    cfg: OpenAiConfig,
    http: reqwest::Client,
    /// Send `max_completion_tokens` (newer OpenAI models) instead of `max_tokens`;
    /// flipped once if the server refuses the one we sent.
    new_field: AtomicBool,
}

impl OpenAiProvider {
    pub fn new(cfg: OpenAiConfig) -> Result<Self, ProviderError> {
        let secret = cfg.api_key.as_ref().map(|k| ("authorization", format!("Bearer {k}")));
        let http = http::client(&cfg.headers, secret, cfg.timeout, cfg.guard.as_ref())?;
        let completion_field = cfg.max_tokens_field.clone().map(|f| f == "max_completion_tokens");
        let official = cfg.base_url.contains("api.openai.com");
        Ok(Self { http, new_field: AtomicBool::new(completion_field.unwrap_or(official)), cfg })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.cfg.base_url.trim_end_matches('/'), path)
    }
}

fn content_json(parts: &[ContentPart]) -> Value {
    if parts.iter().all(|p| matches!(p, ContentPart::Text { .. })) {
        let text: String = parts
            .iter()
            .filter_map(|p| match p {
                ContentPart::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        return Value::String(text);
    }
    Value::Array(
        parts
            .iter()
            .map(|p| match p {
                ContentPart::Text { text } => json!({"type": "text", "text": text}),
                ContentPart::Image { url, .. } => json!({"type": "image_url", "image_url": {"url": url}}),
            })
            .collect(),
    )
}

/// Our messages in the chat-completions wire format.
pub(crate) fn wire_messages(messages: &[Message]) -> Vec<Value> {
    messages
        .iter()
        .map(|m| match m.role {
            Role::System => json!({"role": "system", "content": content_json(&m.content)}),
            Role::User => json!({"role": "user", "content": content_json(&m.content)}),
            Role::Tool => json!({
                "role": "tool",
                "tool_call_id": m.tool_call_id.clone().unwrap_or_default(),
                "content": m.text_content(),
            }),
            Role::Assistant => {
                // Some servers reject `null` content; an empty string is accepted everywhere.
                let mut v = json!({"role": "assistant", "content": m.text_content()});
                if !m.tool_calls.is_empty() {
                    v["tool_calls"] = m
                        .tool_calls
                        .iter()
                        .map(|c| {
                            let args = match &c.arguments {
                                Value::String(s) => s.clone(),
                                other => other.to_string(),
                            };
                            json!({"id": c.id, "type": "function", "function": {"name": c.name, "arguments": args}})
                        })
                        .collect();
                }
                v
            }
        })
        .collect()
}

fn parse_usage(v: &Value) -> Option<Usage> {
    if !v.is_object() {
        return None;
    }
    let i = v["prompt_tokens"].as_u64().unwrap_or(0);
    let o = v["completion_tokens"].as_u64().unwrap_or(0);
    Some(Usage { input_tokens: i, output_tokens: o, total_tokens: v["total_tokens"].as_u64().unwrap_or(i + o) })
}

/// Accumulates streamed chunks into one message.
#[derive(Default)]
struct StreamState {
    text: String,
    thinking: String,
    calls: BTreeMap<u64, (String, String, String)>,
    finish_reason: Option<String>,
    usage: Option<Usage>,
}

impl StreamState {
    fn apply(&mut self, chunk: &Value, on_delta: DeltaSink<'_>) -> Result<(), ProviderError> {
        if chunk.get("error").is_some() {
            let msg = chunk["error"]["message"].as_str().unwrap_or("error in stream");
            return Err(ProviderError::Http { status: 200, message: truncate(msg, 500), retry_after: None });
        }
        if let Some(u) = parse_usage(&chunk["usage"]) {
            self.usage = Some(u);
        }
        let Some(choice) = chunk["choices"].get(0) else {
            return Ok(());
        };
        let delta = &choice["delta"];
        if let Some(t) = delta["content"].as_str().filter(|t| !t.is_empty()) {
            self.text.push_str(t);
            on_delta(Delta::Text(t.to_string()));
        }
        for key in ["reasoning_content", "reasoning"] {
            if let Some(t) = delta[key].as_str().filter(|t| !t.is_empty()) {
                self.thinking.push_str(t);
                on_delta(Delta::Thinking(t.to_string()));
            }
        }
        if let Some(calls) = delta["tool_calls"].as_array() {
            for (pos, c) in calls.iter().enumerate() {
                let idx = c["index"].as_u64().unwrap_or(pos as u64);
                let entry = self.calls.entry(idx).or_default();
                if let Some(id) = c["id"].as_str() {
                    entry.0 = id.to_string();
                }
                if let Some(n) = c["function"]["name"].as_str() {
                    // OpenAI sends the name once; some servers (llama.cpp's Python
                    // server) repeat the whole name in every chunk.
                    if entry.1.is_empty() || n.starts_with(entry.1.as_str()) {
                        entry.1 = n.to_string();
                    } else if n != entry.1 {
                        entry.1.push_str(n);
                    }
                }
                if let Some(a) = c["function"]["arguments"].as_str() {
                    entry.2.push_str(a);
                }
            }
        }
        if let Some(f) = choice["finish_reason"].as_str() {
            self.finish_reason = Some(f.to_string());
        }
        Ok(())
    }

    fn finish(self) -> ChatResponse {
        let tool_calls = self
            .calls
            .into_iter()
            .map(|(i, (id, name, args))| ToolCall {
                id: if id.is_empty() { format!("call_{i}") } else { id },
                name,
                arguments: parse_arguments(&args),
            })
            .collect();
        ChatResponse {
            message: Message {
                role: Role::Assistant,
                content: if self.text.is_empty() { vec![] } else { vec![ContentPart::text(self.text)] },
                tool_calls,
                tool_call_id: None,
                thinking: (!self.thinking.is_empty()).then_some(self.thinking),
                compaction: None,
                thinking_signature: None,
            },
            usage: self.usage.unwrap_or_default(),
            finish_reason: self.finish_reason.unwrap_or_else(|| "stop".into()),
        }
    }
}

fn parse_full(v: &Value) -> Result<ChatResponse, ProviderError> {
    let choice = v["choices"].get(0).ok_or_else(|| ProviderError::InvalidResponse("no choices in response".into()))?;
    let m = &choice["message"];
    if !m.is_object() {
        return Err(ProviderError::InvalidResponse("choice has no message".into()));
    }
    let text = m["content"].as_str().unwrap_or_default().to_string();
    let thinking = m["reasoning_content"].as_str().or(m["reasoning"].as_str()).map(str::to_string);
    let tool_calls = m["tool_calls"]
        .as_array()
        .map(|a| {
            a.iter()
                .enumerate()
                .map(|(i, c)| ToolCall {
                    id: c["id"].as_str().map(str::to_string).unwrap_or_else(|| format!("call_{i}")),
                    name: c["function"]["name"].as_str().unwrap_or_default().to_string(),
                    arguments: parse_arguments(c["function"]["arguments"].as_str().unwrap_or_default()),
                })
                .collect()
        })
        .unwrap_or_default();
    Ok(ChatResponse {
        message: Message {
            role: Role::Assistant,
            content: if text.is_empty() { vec![] } else { vec![ContentPart::text(text)] },
            tool_calls,
            tool_call_id: None,
            thinking,
            compaction: None,
            thinking_signature: None,
        },
        usage: parse_usage(&v["usage"]).unwrap_or_default(),
        finish_reason: choice["finish_reason"].as_str().unwrap_or("stop").to_string(),
    })
}

#[async_trait]
impl Provider for OpenAiProvider {
    fn kind(&self) -> &'static str {
        "openai"
    }

    async fn chat(&self, req: ChatRequest<'_>, on_delta: DeltaSink<'_>) -> Result<ChatResponse, ProviderError> {
        let mut body = json!({
            "model": req.model,
            "messages": wire_messages(req.messages),
            "stream": self.cfg.stream,
        });
        if self.cfg.stream {
            body["stream_options"] = json!({"include_usage": true});
        }
        if !req.tools.is_empty() {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}))
                .collect();
        }
        if let Some(params) = req.params {
            for (k, v) in params {
                body[k] = v.clone();
            }
        }
        let mut switched = false;
        let resp = loop {
            let (field, other) = if self.new_field.load(Ordering::Relaxed) {
                ("max_completion_tokens", "max_tokens")
            } else {
                ("max_tokens", "max_completion_tokens")
            };
            if let Some(obj) = body.as_object_mut() {
                obj.remove(other);
                obj.remove(field);
            }
            if let Some(n) = req.max_tokens {
                body[field] = json!(n);
            }
            let resp = self.http.post(self.url("chat/completions")).json(&body).send().await.map_err(map_send_error)?;
            if resp.status().is_success() {
                break resp;
            }
            let err = http_error(resp).await;
            // A server that wants the other name for the output limit says so in a 400: switch once.
            let wants_other = matches!(&err, ProviderError::Http { status: 400, message, .. }
                if message.contains(field) && message.contains("not supported") || message.contains(&format!("Use '{other}'")));
            if req.max_tokens.is_some() && wants_other && !switched {
                switched = true;
                self.new_field.fetch_xor(true, Ordering::Relaxed);
                continue;
            }
            return Err(err);
        };
        if !self.cfg.stream {
            let v = http::json_body(resp).await?;
            return parse_full(&v);
        }
        let mut events = resp.bytes_stream().eventsource();
        let mut state = StreamState::default();
        let mut done = false;
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| ProviderError::StreamInterrupted(e.to_string()))?;
            let data = ev.data.trim();
            if data == "[DONE]" {
                done = true;
                break;
            }
            if data.is_empty() {
                continue;
            }
            let chunk: Value = serde_json::from_str(data)
                .map_err(|e| ProviderError::InvalidResponse(format!("stream chunk is not JSON: {e}")))?;
            state.apply(&chunk, on_delta)?;
        }
        if !done && state.finish_reason.is_none() {
            return Err(ProviderError::StreamInterrupted("the stream closed before the answer was complete".into()));
        }
        Ok(state.finish())
    }

    async fn check(&self) -> Result<String, ProviderError> {
        http::check(&self.http, self.url("models"), &self.cfg.base_url).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_chunks_accumulate_text_thinking_and_tool_calls() {
        let mut st = StreamState::default();
        let seen = std::sync::Mutex::new(vec![]);
        let sink = |d: Delta| seen.lock().unwrap().push(d);
        let chunks = [
            json!({"choices":[{"delta":{"reasoning_content":"hmm"}}]}),
            json!({"choices":[{"delta":{"content":"Hel"}}]}),
            json!({"choices":[{"delta":{"content":"lo"}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"c1","function":{"name":"echo","arguments":"{\"a\""}}]}}]}),
            json!({"choices":[{"delta":{"tool_calls":[{"index":0,"function":{"arguments":":1}"}}]}}]}),
            json!({"choices":[{"delta":{},"finish_reason":"tool_calls"}]}),
            json!({"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}}),
        ];
        for c in &chunks {
            st.apply(c, &sink).unwrap();
        }
        let r = st.finish();
        assert_eq!(r.message.text_content(), "Hello");
        assert_eq!(r.message.thinking.as_deref(), Some("hmm"));
        assert_eq!(r.message.tool_calls[0].arguments, json!({"a": 1}));
        assert_eq!(r.usage.total_tokens, 5);
        assert_eq!(r.finish_reason, "tool_calls");
        assert_eq!(seen.lock().unwrap()[0], Delta::Thinking("hmm".into()));
    }

    #[test]
    fn a_name_repeated_in_every_chunk_is_kept_once() {
        let mut st = StreamState::default();
        for args in ["{\"a\"", ": 1}"] {
            let c = json!({"choices":[{"delta":{"tool_calls":[{"index":0,"id":"x","function":{"name":"echo","arguments":args}}]}}]});
            st.apply(&c, &|_| {}).unwrap();
        }
        let r = st.finish();
        assert_eq!(r.message.tool_calls[0].name, "echo");
        assert_eq!(r.message.tool_calls[0].arguments, json!({"a": 1}));
    }

    #[test]
    fn assistant_tool_calls_serialise_arguments_as_strings() {
        let m = Message {
            role: Role::Assistant,
            content: vec![],
            tool_calls: vec![ToolCall { id: "c".into(), name: "echo".into(), arguments: json!({"x": 1}) }],
            tool_call_id: None,
            thinking: None,
            compaction: None,
            thinking_signature: None,
        };
        let w = wire_messages(&[m]);
        assert_eq!(w[0]["content"], "");
        assert_eq!(w[0]["tool_calls"][0]["function"]["arguments"], "{\"x\":1}");
    }

    #[test]
    fn full_response_without_choices_is_invalid() {
        assert!(matches!(parse_full(&json!({"foo": 1})), Err(ProviderError::InvalidResponse(_))));
    }
}
