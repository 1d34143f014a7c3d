//! Ollama's native chat API (`POST {base_url}/api/chat`): NDJSON streaming,
//! `tools`, base64 `images`, and `thinking`.

use std::time::Duration;

use agentd_core::{ContentPart, Message, Role, ToolCall, Usage};
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::http::{self, data_url, http_error, map_send_error, truncate};
use crate::{ChatRequest, ChatResponse, Delta, DeltaSink, Provider, ProviderError};

/// Settings of one Ollama server.
#[derive(Debug, Clone)]
pub struct OllamaConfig {
    pub base_url: String,
    pub headers: Vec<(String, String)>,
    pub timeout: Duration,
    pub stream: bool,
    /// Ask thinking models to think (`think: true`).
    pub think: Option<bool>,
    /// Checks every address connected to (providers tenants add).
    pub guard: Option<crate::Guard>,
}

pub struct OllamaProvider {
    cfg: OllamaConfig,
    http: reqwest::Client,
}

impl OllamaProvider {
    pub fn new(cfg: OllamaConfig) -> Result<Self, ProviderError> {
        Ok(Self { http: http::client(&cfg.headers, None, cfg.timeout, cfg.guard.as_ref())?, cfg })
    }

    fn url(&self, path: &str) -> String {
        let base = self.cfg.base_url.trim_end_matches('/');
        let base = base.strip_suffix("/api").unwrap_or(base);
        format!("{base}/api/{path}")
    }
}

/// Parameters Ollama takes under `options` rather than at the top level.
const OPTIONS: &[&str] = &["temperature", "top_p", "top_k", "seed", "stop", "num_ctx", "num_predict", "repeat_penalty"];

/// Our messages in `/api/chat` form (images as bare base64, tool names on results).
pub(crate) fn wire(messages: &[Message]) -> Vec<Value> {
    let mut names = std::collections::HashMap::new();
    let mut out = vec![];
    for m in messages {
        let role = match m.role {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
            Role::Tool => "tool",
        };
        let mut v = json!({"role": role, "content": m.text_content()});
        let images: Vec<&str> = m
            .content
            .iter()
            .filter_map(|p| match p {
                ContentPart::Image { url, .. } => data_url(url).map(|(_, d)| d),
                _ => None,
            })
            .collect();
        if !images.is_empty() {
            v["images"] = json!(images);
        }
        if !m.tool_calls.is_empty() {
            v["tool_calls"] = m
                .tool_calls
                .iter()
                .map(|c| {
                    names.insert(c.id.clone(), c.name.clone());
                    let args = if c.arguments.is_object() { c.arguments.clone() } else { json!({}) };
                    json!({"function": {"name": c.name, "arguments": args}})
                })
                .collect();
        }
        if let Some(name) = m.tool_call_id.as_ref().and_then(|id| names.get(id)) {
            v["tool_name"] = json!(name);
        }
        out.push(v);
    }
    out
}

fn calls_of(msg: &Value) -> Vec<ToolCall> {
    msg["tool_calls"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| {
                    let f = &c["function"];
                    let arguments = match &f["arguments"] {
                        Value::String(s) => http::parse_arguments(s),
                        Value::Null => json!({}),
                        other => other.clone(),
                    };
                    ToolCall {
                        // Ollama gives calls no ids (or only recent versions do): make unique ones.
                        id: c["id"].as_str().map(str::to_string).unwrap_or_else(|| agentd_core::new_id("call")),
                        name: f["name"].as_str().unwrap_or_default().to_string(),
                        arguments,
                    }
                })
                .collect()
        })
        .unwrap_or_default()
}

fn usage(v: &Value) -> Usage {
    let i = v["prompt_eval_count"].as_u64().unwrap_or(0);
    let o = v["eval_count"].as_u64().unwrap_or(0);
    Usage { input_tokens: i, output_tokens: o, total_tokens: i + o }
}

/// Accumulates NDJSON chunks (a non-streamed answer is one such chunk).
#[derive(Default)]
pub(crate) struct StreamState {
    text: String,
    thinking: String,
    calls: Vec<ToolCall>,
    usage: Usage,
    reason: Option<String>,
    pub(crate) done: bool,
}

impl StreamState {
    pub(crate) fn apply(&mut self, v: &Value, on_delta: DeltaSink<'_>) -> Result<(), ProviderError> {
        if let Some(e) = v["error"].as_str() {
            return Err(ProviderError::Http { status: 500, message: truncate(e, 500), retry_after: None });
        }
        if !v.is_object() || (v.get("message").is_none() && v.get("done").is_none()) {
            return Err(ProviderError::InvalidResponse("not an /api/chat chunk".into()));
        }
        let m = &v["message"];
        if let Some(t) = m["thinking"].as_str().filter(|t| !t.is_empty()) {
            self.thinking.push_str(t);
            on_delta(Delta::Thinking(t.to_string()));
        }
        if let Some(t) = m["content"].as_str().filter(|t| !t.is_empty()) {
            self.text.push_str(t);
            on_delta(Delta::Text(t.to_string()));
        }
        self.calls.extend(calls_of(m));
        if v["done"].as_bool() == Some(true) {
            self.done = true;
            self.usage = usage(v);
            self.reason = v["done_reason"].as_str().map(str::to_string);
        }
        Ok(())
    }

    pub(crate) fn finish(self) -> ChatResponse {
        let finish_reason = if !self.calls.is_empty() {
            "tool_calls".to_string()
        } else {
            match self.reason.as_deref() {
                Some("length") => "length".into(),
                _ => "stop".into(),
            }
        };
        ChatResponse {
            message: Message {
                role: Role::Assistant,
                content: if self.text.is_empty() { vec![] } else { vec![ContentPart::text(self.text)] },
                tool_calls: self.calls,
                tool_call_id: None,
                thinking: (!self.thinking.is_empty()).then_some(self.thinking),
                compaction: None,
                thinking_signature: None,
            },
            usage: self.usage,
            finish_reason,
        }
    }
}

#[async_trait]
impl Provider for OllamaProvider {
    fn kind(&self) -> &'static str {
        "ollama"
    }

    async fn chat(&self, req: ChatRequest<'_>, on_delta: DeltaSink<'_>) -> Result<ChatResponse, ProviderError> {
        let mut body = json!({"model": req.model, "messages": wire(req.messages), "stream": self.cfg.stream});
        if !req.tools.is_empty() {
            body["tools"] = req
                .tools
                .iter()
                .map(|t| json!({"type": "function", "function": {"name": t.name, "description": t.description, "parameters": t.input_schema}}))
                .collect();
        }
        if let Some(t) = self.cfg.think {
            body["think"] = json!(t);
        }
        let mut options = serde_json::Map::new();
        if let Some(n) = req.max_tokens {
            options.insert("num_predict".into(), json!(n));
        }
        if let Some(params) = req.params {
            for (k, v) in params {
                if OPTIONS.contains(&k.as_str()) {
                    options.insert(k.clone(), v.clone());
                } else {
                    body[k] = v.clone();
                }
            }
        }
        if !options.is_empty() {
            body["options"] = Value::Object(options);
        }
        let resp = self.http.post(self.url("chat")).json(&body).send().await.map_err(map_send_error)?;
        if !resp.status().is_success() {
            return Err(http_error(resp).await);
        }
        let mut state = StreamState::default();
        if !self.cfg.stream {
            let v = http::json_body(resp).await?;
            state.apply(&v, on_delta)?;
            return Ok(state.finish());
        }
        let mut stream = resp.bytes_stream();
        let mut buf: Vec<u8> = vec![];
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| ProviderError::StreamInterrupted(e.without_url().to_string()))?;
            buf.extend_from_slice(&chunk);
            while let Some(pos) = buf.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buf.drain(..=pos).collect();
                let line = String::from_utf8_lossy(&line);
                if line.trim().is_empty() {
                    continue;
                }
                let v: Value = serde_json::from_str(line.trim())
                    .map_err(|e| ProviderError::InvalidResponse(format!("stream line is not JSON: {e}")))?;
                state.apply(&v, on_delta)?;
            }
            if state.done {
                break;
            }
        }
        if !state.done && !buf.is_empty() {
            let v: Value = serde_json::from_slice(&buf)
                .map_err(|e| ProviderError::InvalidResponse(format!("stream line is not JSON: {e}")))?;
            state.apply(&v, on_delta)?;
        }
        if !state.done {
            return Err(ProviderError::StreamInterrupted("the stream closed before done".into()));
        }
        Ok(state.finish())
    }

    async fn check(&self) -> Result<String, ProviderError> {
        http::check(&self.http, self.url("tags"), &self.cfg.base_url).await
    }
}
