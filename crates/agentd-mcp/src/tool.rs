//! An MCP server's tool as an agentd [`Tool`].

use std::sync::Arc;
use std::time::Duration;

use agentd_core::{ContentPart, ToolSpec};
use agentd_tools::{Tool, ToolContext, ToolOutput};
use async_trait::async_trait;
use rmcp::model::{CallToolRequestParams, CallToolResponse, Tool as McpToolDef};
use serde_json::Value;

use crate::{Server, ServerState};

/// Most text kept from one result (the journal's limit); the model sees
/// less (the run loop cuts what it hands on).
const MAX_TEXT: usize = 1024 * 1024;

/// `mcp__<server>__<tool>`.
pub struct McpTool {
    server: Arc<Server>,
    def: McpToolDef,
}

impl McpTool {
    pub(crate) fn new(server: Arc<Server>, def: McpToolDef) -> Self {
        Self { server, def }
    }
}

/// MCP content blocks as agentd content parts (via the wire format, which is
/// stable where the SDK's types are not).
fn to_parts(result: &Value) -> Vec<ContentPart> {
    let mut out = vec![];
    for c in result["content"].as_array().into_iter().flatten() {
        match c["type"].as_str() {
            Some("text") => out.push(ContentPart::text(c["text"].as_str().unwrap_or_default())),
            Some("image") => {
                let mime = c["mimeType"].as_str().unwrap_or("image/png").to_string();
                let url = format!("data:{mime};base64,{}", c["data"].as_str().unwrap_or_default());
                out.push(ContentPart::Image { url, mime_type: Some(mime) });
            }
            Some("resource") => {
                let r = &c["resource"];
                let uri = r["uri"].as_str().unwrap_or_default();
                match r["text"].as_str() {
                    Some(t) => out.push(ContentPart::text(format!("[resource {uri}]\n{t}"))),
                    None => out.push(ContentPart::text(format!("[binary resource {uri}]"))),
                }
            }
            Some("resource_link") => {
                out.push(ContentPart::text(format!("[resource link {}]", c["uri"].as_str().unwrap_or_default())))
            }
            _ => out.push(ContentPart::text(c.to_string())),
        }
    }
    if out.is_empty() && !result["structuredContent"].is_null() {
        out.push(ContentPart::text(result["structuredContent"].to_string()));
    }
    let mut budget = MAX_TEXT;
    for p in &mut out {
        if let ContentPart::Text { text } = p {
            if text.len() > budget {
                *text = agentd_core::text::truncate(text, budget, "\n[… result truncated]");
            }
            budget = budget.saturating_sub(text.len());
        }
    }
    out
}

#[async_trait]
impl Tool for McpTool {
    fn spec(&self) -> ToolSpec {
        // What a server says about its tools is untrusted: secrets are masked
        // before it reaches a model, the API or the journal.
        let mut input_schema = Value::Object((*self.def.input_schema).clone());
        agentd_core::redact::redact_value(&mut input_schema);
        ToolSpec {
            name: format!("mcp__{}__{}", self.server.name, self.def.name),
            description: agentd_core::redact::redact(self.def.description.as_deref().unwrap_or_default()).into_owned(),
            input_schema,
        }
    }

    fn idempotent(&self) -> bool {
        self.def.annotations.as_ref().and_then(|a| a.idempotent_hint).unwrap_or(false)
    }

    fn fence(&self) -> Value {
        let c = &self.server.config;
        match (&c.command, c.sandbox) {
            (Some(_), true) => serde_json::json!({"adapter": "bubblewrap", "mode": "restricted", "network": c.network}),
            (Some(_), false) => serde_json::json!({"adapter": "none", "mode": "none", "network": true}),
            (None, _) => serde_json::json!({"adapter": "remote", "mode": "none", "network": true}),
        }
    }

    /// The server's annotations, with the operator's `tool_hints` (by tool-name glob) laid over them.
    fn annotations(&self) -> Option<Value> {
        let mut v = self.def.annotations.as_ref().and_then(|a| serde_json::to_value(a).ok());
        for (pattern, hints) in &self.server.config.tool_hints {
            let matches =
                globset::Glob::new(pattern).map(|g| g.compile_matcher().is_match(self.def.name.as_ref() as &str));
            if matches.unwrap_or(false)
                && let Value::Object(h) = hints
            {
                let base = v.get_or_insert_with(|| serde_json::json!({}));
                if let Value::Object(b) = base {
                    b.extend(h.clone());
                }
            }
        }
        v
    }

    async fn call(&self, args: Value, ctx: ToolContext) -> ToolOutput {
        let Some(conn) = self.server.conn() else {
            let state = match self.server.state() {
                ServerState::Starting => "starting".to_string(),
                ServerState::Ready => "reconnecting".to_string(),
                ServerState::Restarting { error } | ServerState::Failed { error } => error,
            };
            return ToolOutput::error(format!("MCP server {} is not ready ({state})", self.server.name));
        };
        let mut params = CallToolRequestParams::new(self.def.name.to_string());
        params.arguments = args.as_object().cloned();
        // The idempotency key travels in _meta, so a server can drop a repeat.
        if let Ok(meta) = serde_json::from_value(serde_json::json!({"agentd/idempotency_key": ctx.idempotency_key})) {
            params.meta = Some(meta);
        }
        let timeout = Duration::from_secs(self.server.config.timeout_secs.unwrap_or(60));
        // Dropping the request future sends notifications/cancelled to the server.
        let res = tokio::select! {
            r = conn.peer.call_tool_once(params) => r,
            _ = tokio::time::sleep(timeout) => return ToolOutput::error(format!("no answer within {} s", timeout.as_secs())),
            _ = ctx.cancel.cancelled() => return ToolOutput::error("cancelled"),
        };
        match res {
            Ok(CallToolResponse::Complete(result)) => {
                let mut v = serde_json::to_value(&result).unwrap_or(Value::Null);
                agentd_core::redact::redact_value(&mut v);
                ToolOutput { content: to_parts(&v), is_error: v["isError"].as_bool().unwrap_or(false), sandbox: None }
            }
            Ok(_) => {
                ToolOutput::error("the MCP server asked for input or started a task; agentd does not support that yet")
            }
            Err(e) => ToolOutput::error(agentd_core::redact::redact(&format!("MCP call failed: {e}")).into_owned()),
        }
    }
}
