//! A provider that plays canned turns, for tests and offline demos.

use agentd_core::{ContentPart, Message, Role, ToolCall, Usage};
use async_trait::async_trait;
use serde::Deserialize;

use crate::{ChatRequest, ChatResponse, Delta, DeltaSink, Provider, ProviderError};

/// One canned assistant turn.
#[derive(Debug, Clone, Deserialize)]
pub struct ScriptedTurn {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub thinking: Option<String>,
    #[serde(default)]
    pub tool_calls: Vec<ScriptedCall>,
}

/// A canned tool call.
#[derive(Debug, Clone, Deserialize)]
pub struct ScriptedCall {
    pub name: String,
    #[serde(default)]
    pub arguments: serde_json::Value,
}

/// Answers turn N of a run with the N-th scripted turn, where N counts the
/// assistant messages since the last user message. Stateless, so concurrent
/// runs and resumed runs see the same script.
pub struct ScriptedProvider {
    turns: Vec<ScriptedTurn>,
}

impl ScriptedProvider {
    pub fn new(turns: Vec<ScriptedTurn>) -> Self {
        Self { turns }
    }

    /// Parses a JSON array of turns.
    pub fn from_json(s: &str) -> Result<Self, ProviderError> {
        serde_json::from_str(s).map(Self::new).map_err(|e| ProviderError::Config(format!("invalid script: {e}")))
    }
}

#[async_trait]
impl Provider for ScriptedProvider {
    fn kind(&self) -> &'static str {
        "scripted"
    }

    async fn chat(&self, req: ChatRequest<'_>, on_delta: DeltaSink<'_>) -> Result<ChatResponse, ProviderError> {
        let turn_no = req
            .messages
            .iter()
            .rev()
            .take_while(|m| m.role != Role::User)
            .filter(|m| m.role == Role::Assistant)
            .count();
        let turn = self
            .turns
            .get(turn_no)
            .ok_or_else(|| ProviderError::InvalidResponse(format!("script has no turn {}", turn_no + 1)))?;
        if let Some(t) = &turn.thinking {
            on_delta(Delta::Thinking(t.clone()));
        }
        for word in turn.text.split_inclusive(' ') {
            on_delta(Delta::Text(word.to_string()));
        }
        let tool_calls: Vec<ToolCall> = turn
            .tool_calls
            .iter()
            .enumerate()
            .map(|(i, c)| ToolCall {
                id: format!("call_{}_{}", turn_no + 1, i + 1),
                name: c.name.clone(),
                arguments: if c.arguments.is_null() { serde_json::json!({}) } else { c.arguments.clone() },
            })
            .collect();
        let finish_reason = if tool_calls.is_empty() { "stop" } else { "tool_calls" };
        let words = turn.text.split_whitespace().count() as u64;
        Ok(ChatResponse {
            message: Message {
                role: Role::Assistant,
                content: if turn.text.is_empty() { vec![] } else { vec![ContentPart::text(turn.text.clone())] },
                tool_calls,
                tool_call_id: None,
                thinking: turn.thinking.clone(),
                compaction: None,
                thinking_signature: None,
            },
            usage: Usage {
                input_tokens: req.messages.len() as u64,
                output_tokens: words,
                total_tokens: req.messages.len() as u64 + words,
            },
            finish_reason: finish_reason.into(),
        })
    }

    async fn check(&self) -> Result<String, ProviderError> {
        Ok(format!("scripted, {} turns", self.turns.len()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn plays_turns_by_position_in_run() {
        let p = ScriptedProvider::from_json(
            r#"[{"tool_calls":[{"name":"echo","arguments":{"x":1}}]},{"text":"done now"}]"#,
        )
        .unwrap();
        let mut msgs = vec![Message::text(Role::User, "hi")];
        let sink = |_d: Delta| {};
        let r1 = p
            .chat(ChatRequest { model: "m", messages: &msgs, tools: &[], max_tokens: None, params: None }, &sink)
            .await
            .unwrap();
        assert_eq!(r1.message.tool_calls[0].name, "echo");
        msgs.push(r1.message);
        msgs.push(Message::tool_result("call_1_1", vec![ContentPart::text("{}")]));
        let r2 = p
            .chat(ChatRequest { model: "m", messages: &msgs, tools: &[], max_tokens: None, params: None }, &sink)
            .await
            .unwrap();
        assert_eq!(r2.message.text_content(), "done now");
        msgs.push(r2.message);
        let r3 = p
            .chat(ChatRequest { model: "m", messages: &msgs, tools: &[], max_tokens: None, params: None }, &sink)
            .await;
        assert!(matches!(r3, Err(ProviderError::InvalidResponse(_))));
    }
}
