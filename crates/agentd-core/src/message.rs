//! Conversation messages, content parts, tool calls and token usage.

use serde::{Deserialize, Serialize};

/// Who said a message.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
    Tool,
}

/// One part of a message's content.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ContentPart {
    Text {
        text: String,
    },
    /// An image by URL (`https:` or a `data:` URL with base64 content).
    Image {
        url: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        mime_type: Option<String>,
    },
}

impl ContentPart {
    pub fn text(s: impl Into<String>) -> Self {
        ContentPart::Text { text: s.into() }
    }
}

/// A tool call requested by the model.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    pub name: String,
    /// Parsed JSON arguments; a model's unparsable arguments are kept as a string value.
    pub arguments: serde_json::Value,
}

/// A message in a conversation.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    #[serde(default)]
    pub content: Vec<ContentPart>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For `tool` messages: the call this answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool_call_id: Option<String>,
    /// Reasoning text the model emitted, kept apart from the answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
    /// The provider's signature over `thinking` (Anthropic), sent back with it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking_signature: Option<String>,
    /// Set on a compaction summary: the session index from which earlier
    /// messages are kept verbatim; everything before it is replaced by this one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compaction: Option<i64>,
}

impl Message {
    /// A plain text message.
    pub fn text(role: Role, text: impl Into<String>) -> Self {
        Self {
            role,
            content: vec![ContentPart::text(text)],
            tool_calls: vec![],
            tool_call_id: None,
            thinking: None,
            thinking_signature: None,
            compaction: None,
        }
    }

    /// The answer of a tool call.
    pub fn tool_result(call_id: &str, content: Vec<ContentPart>) -> Self {
        Self {
            role: Role::Tool,
            content,
            tool_calls: vec![],
            tool_call_id: Some(call_id.to_string()),
            thinking: None,
            thinking_signature: None,
            compaction: None,
        }
    }

    /// All text parts joined.
    pub fn text_content(&self) -> String {
        let mut out = String::new();
        for p in &self.content {
            if let ContentPart::Text { text } = p {
                out.push_str(text);
            }
        }
        out
    }
}

/// What a model is told about a tool.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    pub input_schema: serde_json::Value,
}

/// Token counts.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Usage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    pub fn add(&mut self, o: &Usage) {
        self.input_tokens += o.input_tokens;
        self.output_tokens += o.output_tokens;
        self.total_tokens += o.total_tokens;
    }
}

/// `GET /v1/runs/{id}/context?step=N`: what the model saw at one step,
/// rebuilt from the journal by the code that builds requests.
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelContext {
    pub run_id: String,
    pub step: u32,
    /// The profile (or `provider/model`) that answered, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub profile: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    pub model: String,
    /// Parameters sent with the request (the profile's `params`).
    pub params: serde_json::Value,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    pub messages: Vec<Message>,
    pub tools: Vec<ToolSpec>,
    pub tokens: ContextTokens,
    /// What the rebuild cannot know for certain.
    #[serde(default)]
    pub notes: Vec<String>,
}

/// Tokens of each part of a request (counted as the context manager counts them).
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContextTokens {
    pub system_prompt: u64,
    pub skills: u64,
    pub history: u64,
    pub summary: u64,
    pub tools: u64,
    pub total: u64,
}
