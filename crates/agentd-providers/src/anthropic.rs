//! Anthropic Messages API (`POST {base_url}/v1/messages`): content blocks,
//! `tool_use` / `tool_result`, a top-level system prompt, base64 images, and
//! the streaming events `message_start` … `content_block_delta` (`text_delta`,
//! `input_json_delta`, `thinking_delta`) … `message_stop`.

use std::collections::BTreeMap;
use std::time::Duration;

use agentd_core::{ContentPart, Message, Role, ToolCall, Usage};
use async_trait::async_trait;
use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::http::{self, data_url, http_error, map_send_error, parse_arguments, truncate};
use crate::{ChatRequest, ChatResponse, Delta, DeltaSink, Provider, ProviderError};

/// The API version this adapter speaks.
const VERSION: &str = "2023-06-01";
/// Anthropic requires `max_tokens`; used when the profile sets none.
const DEFAULT_MAX_TOKENS: u32 = 4096;

/// Settings of one Anthropic endpoint.
#[derive(Clone)]
pub struct AnthropicConfig {
    pub base_url: String,
    pub api_key: Option<String>,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub stream: bool,
    /// Checks every address connected to (providers tenants add).
    pub guard: Option<crate::Guard>,
}

impl std::fmt::Debug for AnthropicConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AnthropicConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field("stream", &self.stream)
            .finish()
    }
}

pub struct AnthropicProvider {
    cfg: AnthropicConfig,
    http: reqwest::Client,
}

impl AnthropicProvider {
    pub fn new(cfg: AnthropicConfig) -> Result<Self, ProviderError> {
        let mut headers = cfg.headers.clone();
        headers.push(("anthropic-version".into(), VERSION.into()));
        let secret = cfg.api_key.clone().map(|k| ("x-api-key", k));
        Ok(Self { http: http::client(&headers, secret, cfg.timeout, cfg.guard.as_ref())?, cfg })
    }

    fn url(&self, path: &str) -> String {
        let base = self.cfg.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/v1").unwrap_or(base);
        format!("{base}/v1/{path}")
    }
}

fn block(part: &ContentPart) -> Value {
    match part {
        ContentPart::Text { text } => json!({"type": "text", "text": text}),
        ContentPart::Image { url, .. } => match data_url(url) {
            Some((media, data)) => {
                json!({"type": "image", "source": {"type": "base64", "media_type": media, "data": data}})
            }
            None => json!({"type": "image", "source": {"type": "url", "url": url}}),
        },
    }
}

/// The system prompt and the messages in Messages-API form: roles alternate,
/// tool results travel in user messages, consecutive same-role turns merge.
pub(crate) fn wire(messages: &[Message]) -> (Option<String>, Vec<Value>) {
    let mut system: Vec<String> = vec![];
    let mut out: Vec<Value> = vec![];
    for m in messages {
        let (role, blocks): (&str, Vec<Value>) = match m.role {
            Role::System => {
                system.push(m.text_content());
                continue;
            }
            Role::User => ("user", m.content.iter().map(block).collect()),
            Role::Tool => {
                let content: Vec<Value> = m.content.iter().map(block).collect();
                let mut b = json!({"type": "tool_result", "tool_use_id": m.tool_call_id.clone().unwrap_or_default(), "content": content});
                if content.is_empty() {
                    b["content"] = json!("");
                }
                ("user", vec![b])
            }
            Role::Assistant => {
                let mut blocks: Vec<Value> = vec![];
                // Extended thinking with tools: the signed thinking block must come back first.
                if let (Some(t), Some(sig)) = (&m.thinking, &m.thinking_signature) {
                    blocks.push(json!({"type": "thinking", "thinking": t, "signature": sig}));
                }
                blocks.extend(
                    m.content.iter().filter(|p| !matches!(p, ContentPart::Text { text } if text.is_empty())).map(block),
                );
                for c in &m.tool_calls {
                    let input = if c.arguments.is_object() { c.arguments.clone() } else { json!({}) };
                    blocks.push(json!({"type": "tool_use", "id": c.id, "name": c.name, "input": input}));
                }
                ("assistant", blocks)
            }
        };
        if blocks.is_empty() {
            continue;
        }
        match out.last_mut() {
            Some(last) if last["role"] == role => {
                if let Some(a) = last["content"].as_array_mut() {
                    // Tool results go first in a user turn, as the API expects.
                    let (results, rest): (Vec<Value>, Vec<Value>) =
                        blocks.into_iter().partition(|b| b["type"] == "tool_result");
                    let at = a.iter().take_while(|b| b["type"] == "tool_result").count();
                    for (i, r) in results.into_iter().enumerate() {
                        a.insert(at + i, r);
                    }
                    a.extend(rest);
                }
            }
            _ => out.push(json!({"role": role, "content": blocks})),
        }
    }
    let system = system.into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join("\n\n");
    ((!system.is_empty()).then_some(system), out)
}

fn finish_reason(stop: &str) -> String {
    match stop {
        "tool_use" => "tool_calls".into(),
        "end_turn" | "stop_sequence" => "stop".into(),
        "max_tokens" => "length".into(),
        other => other.into(),
    }
}

fn usage(v: &Value) -> Usage {
    let i = v["input_tokens"].as_u64().unwrap_or(0)
        + v["cache_read_input_tokens"].as_u64().unwrap_or(0)
        + v["cache_creation_input_tokens"].as_u64().unwrap_or(0);
    let o = v["output_tokens"].as_u64().unwrap_or(0);
    Usage { input_tokens: i, output_tokens: o, total_tokens: i + o }
}

/// A whole (non-streamed) message.
pub(crate) fn parse_full(v: &Value) -> Result<ChatResponse, ProviderError> {
    if v["type"] == "error" {
        let msg = v["error"]["message"].as_str().unwrap_or("error");
        return Err(ProviderError::Http { status: 200, message: truncate(msg, 500), retry_after: None });
    }
    let blocks = v["content"].as_array().ok_or_else(|| ProviderError::InvalidResponse("no content blocks".into()))?;
    let (mut text, mut thinking, mut calls, mut signature) = (String::new(), String::new(), vec![], None);
    for b in blocks {
        match b["type"].as_str() {
            Some("text") => text.push_str(b["text"].as_str().unwrap_or_default()),
            Some("thinking") => {
                thinking.push_str(b["thinking"].as_str().unwrap_or_default());
                signature = b["signature"].as_str().map(str::to_string).or(signature);
            }
            Some("tool_use") => calls.push(ToolCall {
                id: b["id"].as_str().unwrap_or_default().to_string(),
                name: b["name"].as_str().unwrap_or_default().to_string(),
                arguments: b["input"].clone(),
            }),
            _ => {}
        }
    }
    Ok(ChatResponse {
        message: assistant(text, thinking, calls, signature),
        usage: usage(&v["usage"]),
        finish_reason: finish_reason(v["stop_reason"].as_str().unwrap_or("end_turn")),
    })
}

fn assistant(text: String, thinking: String, tool_calls: Vec<ToolCall>, signature: Option<String>) -> Message {
    Message {
        role: Role::Assistant,
        content: if text.is_empty() { vec![] } else { vec![ContentPart::text(text)] },
        tool_calls,
        tool_call_id: None,
        thinking: (!thinking.is_empty()).then_some(thinking),
        compaction: None,
        thinking_signature: signature,
    }
}

/// One content block being streamed.
enum Block {
    Text,
    Thinking,
    Tool { id: String, name: String, json: String },
    Other,
}

/// Accumulates streaming events into one message.
#[derive(Default)]
pub(crate) struct StreamState {
    text: String,
    thinking: String,
    signature: String,
    blocks: BTreeMap<u64, Block>,
    usage: Usage,
    stop: Option<String>,
    pub(crate) done: bool,
}

impl StreamState {
    pub(crate) fn apply(&mut self, event: &str, v: &Value, on_delta: DeltaSink<'_>) -> Result<(), ProviderError> {
        let kind = if event.is_empty() || event == "message" { v["type"].as_str().unwrap_or_default() } else { event };
        match kind {
            "message_start" => {
                let u = usage(&v["message"]["usage"]);
                self.usage.input_tokens = u.input_tokens;
                self.usage.output_tokens = u.output_tokens;
            }
            "content_block_start" => {
                let idx = v["index"].as_u64().unwrap_or(0);
                let b = &v["content_block"];
                let block = match b["type"].as_str() {
                    Some("text") => {
                        if let Some(t) = b["text"].as_str().filter(|t| !t.is_empty()) {
                            self.text.push_str(t);
                            on_delta(Delta::Text(t.to_string()));
                        }
                        Block::Text
                    }
                    Some("thinking") => Block::Thinking,
                    Some("tool_use") => Block::Tool {
                        id: b["id"].as_str().unwrap_or_default().to_string(),
                        name: b["name"].as_str().unwrap_or_default().to_string(),
                        json: String::new(),
                    },
                    _ => Block::Other,
                };
                self.blocks.insert(idx, block);
            }
            "content_block_delta" => {
                let idx = v["index"].as_u64().unwrap_or(0);
                let d = &v["delta"];
                match (d["type"].as_str(), self.blocks.get_mut(&idx)) {
                    (Some("text_delta"), _) => {
                        let t = d["text"].as_str().unwrap_or_default();
                        self.text.push_str(t);
                        on_delta(Delta::Text(t.to_string()));
                    }
                    (Some("thinking_delta"), _) => {
                        let t = d["thinking"].as_str().unwrap_or_default();
                        self.thinking.push_str(t);
                        on_delta(Delta::Thinking(t.to_string()));
                    }
                    (Some("signature_delta"), _) => {
                        self.signature.push_str(d["signature"].as_str().unwrap_or_default())
                    }
                    (Some("input_json_delta"), Some(Block::Tool { json, .. })) => {
                        json.push_str(d["partial_json"].as_str().unwrap_or_default());
                    }
                    _ => {}
                }
            }
            "message_delta" => {
                if let Some(s) = v["delta"]["stop_reason"].as_str() {
                    self.stop = Some(s.to_string());
                }
                if let Some(o) = v["usage"]["output_tokens"].as_u64() {
                    self.usage.output_tokens = o;
                }
                if let Some(i) = v["usage"]["input_tokens"].as_u64().filter(|i| *i > 0) {
                    self.usage.input_tokens = i;
                }
            }
            "message_stop" => self.done = true,
            "error" => {
                let msg = v["error"]["message"].as_str().unwrap_or("error in stream");
                let status = if v["error"]["type"] == "overloaded_error" { 529 } else { 500 };
                return Err(ProviderError::Http { status, message: truncate(msg, 500), retry_after: None });
            }
            _ => {}
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> ChatResponse {
        let calls = self
            .blocks
            .into_values()
            .filter_map(|b| match b {
                Block::Tool { id, name, json } => Some(ToolCall { id, name, arguments: parse_arguments(&json) }),
                _ => None,
            })
            .collect();
        let mut usage = self.usage;
        usage.total_tokens = usage.input_tokens + usage.output_tokens;
        ChatResponse {
            message: assistant(self.text, self.thinking, calls, (!self.signature.is_empty()).then_some(self.signature)),
            usage,
            finish_reason: finish_reason(self.stop.as_deref().unwrap_or("end_turn")),
        }
    }
}

#[async_trait]
impl Provider for AnthropicProvider {
    fn kind(&self) -> &'static str {
        "anthropic"
    }

    async fn chat(&self, req: ChatRequest<'_>, on_delta: DeltaSink<'_>) -> Result<ChatResponse, ProviderError> {
        let (system, messages) = wire(req.messages);
        let mut body = json!({
            "model": req.model,
            "messages": messages,
            "max_tokens": req.max_tokens.unwrap_or(DEFAULT_MAX_TOKENS),
            "stream": self.cfg.stream,
        });
        if let Some(s) = system {
            body["system"] = json!(s);
        }
        if !req.tools.is_empty() {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| json!({"name": t.name, "description": t.description, "input_schema": t.input_schema}))
                .collect();
        }
        if let Some(params) = req.params {
            for (k, v) in params {
                body[k] = v.clone();
            }
        }
        let resp = self.http.post(self.url("messages")).json(&body).send().await.map_err(map_send_error)?;
        if !resp.status().is_success() {
            return Err(http_error(resp).await);
        }
        if !self.cfg.stream {
            let v = http::json_body(resp).await?;
            return parse_full(&v);
        }
        let mut events = resp.bytes_stream().eventsource();
        let mut state = StreamState::default();
        while let Some(ev) = events.next().await {
            let ev = ev.map_err(|e| ProviderError::StreamInterrupted(e.to_string()))?;
            let data = ev.data.trim();
            if data.is_empty() {
                continue;
            }
            let v: Value = serde_json::from_str(data)
                .map_err(|e| ProviderError::InvalidResponse(format!("stream event is not JSON: {e}")))?;
            state.apply(&ev.event, &v, on_delta)?;
            if state.done {
                break;
            }
        }
        if !state.done {
            return Err(ProviderError::StreamInterrupted("the stream closed before message_stop".into()));
        }
        Ok(state.finish())
    }

    async fn check(&self) -> Result<String, ProviderError> {
        http::check(&self.http, self.url("models"), &self.cfg.base_url).await
    }
}
