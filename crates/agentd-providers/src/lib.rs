//! LLM providers behind one [`Provider`] trait: an OpenAI-compatible HTTP
//! client and a scripted provider for tests and offline demos.

mod anthropic;
mod http;
mod ollama;
mod openai;
mod scripted;

use agentd_core::{Message, ToolSpec, Usage};
use async_trait::async_trait;

pub use anthropic::{AnthropicConfig, AnthropicProvider};
pub use http::without_userinfo;
pub use ollama::{OllamaConfig, OllamaProvider};
pub use openai::{OpenAiConfig, OpenAiProvider};
pub use scripted::{ScriptedProvider, ScriptedTurn};

/// A resolver that checks every address a provider connects to (the
/// egress guard, for providers tenants add). With one, the client also
/// uses no proxy and follows no redirects.
#[derive(Clone)]
pub struct Guard(pub std::sync::Arc<dyn reqwest::dns::Resolve>);

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Guard")
    }
}

/// A piece of a streamed answer.
#[derive(Debug, Clone, PartialEq)]
pub enum Delta {
    Text(String),
    Thinking(String),
}

/// One request to a model.
#[derive(Debug, Clone)]
pub struct ChatRequest<'a> {
    pub model: &'a str,
    pub messages: &'a [Message],
    pub tools: &'a [ToolSpec],
    pub max_tokens: Option<u32>,
    /// Extra request parameters from the model profile (`temperature`,
    /// `top_p`, `tool_choice`, …), merged into the body.
    pub params: Option<&'a serde_json::Map<String, serde_json::Value>>,
}

/// A model's complete answer.
#[derive(Debug, Clone)]
pub struct ChatResponse {
    pub message: Message,
    pub usage: Usage,
    pub finish_reason: String,
}

/// Why a provider call failed. Messages never contain credentials.
#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("provider answered HTTP {status}: {message}")]
    Http {
        status: u16,
        message: String,
        /// What the provider's `Retry-After` asked for.
        retry_after: Option<std::time::Duration>,
    },
    #[error("could not reach provider: {0}")]
    Connect(String),
    #[error("provider timed out")]
    Timeout,
    #[error("provider sent an invalid response: {0}")]
    InvalidResponse(String),
    #[error("provider stream ended early: {0}")]
    StreamInterrupted(String),
    #[error("provider misconfigured: {0}")]
    Config(String),
}

impl ProviderError {
    /// Whether trying the same request again may succeed: timeouts,
    /// connection errors, 408/409/429/5xx, and streams cut off mid-way.
    /// Never 400/401/403/404 or a malformed answer.
    pub fn retryable(&self) -> bool {
        match self {
            ProviderError::Http { status, .. } => matches!(status, 408 | 409 | 429 | 500..=599),
            ProviderError::Connect(_) | ProviderError::Timeout | ProviderError::StreamInterrupted(_) => true,
            ProviderError::InvalidResponse(_) | ProviderError::Config(_) => false,
        }
    }

    /// Whether another provider may do better: everything except auth and
    /// configuration errors (and requests the provider found malformed).
    pub fn may_fail_over(&self) -> bool {
        match self {
            ProviderError::Http { status, .. } => !matches!(status, 400 | 401 | 403 | 404 | 413 | 422),
            ProviderError::Config(_) => false,
            _ => true,
        }
    }

    /// The HTTP status, if the provider answered one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ProviderError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Machine-readable code used in run errors.
    pub fn code(&self) -> &'static str {
        match self {
            ProviderError::Http { .. } => "provider_http_error",
            ProviderError::Connect(_) => "provider_unreachable",
            ProviderError::Timeout => "provider_timeout",
            ProviderError::InvalidResponse(_) => "provider_invalid_response",
            ProviderError::StreamInterrupted(_) => "provider_stream_interrupted",
            ProviderError::Config(_) => "provider_config_error",
        }
    }
}

/// Receives streamed deltas while a call is in flight.
pub type DeltaSink<'a> = &'a (dyn Fn(Delta) + Send + Sync);

/// A chat model endpoint.
#[async_trait]
pub trait Provider: Send + Sync {
    /// The adapter kind (`openai`, `scripted`).
    fn kind(&self) -> &'static str;
    /// Sends one chat request; deltas go to `on_delta` as they arrive.
    async fn chat(&self, req: ChatRequest<'_>, on_delta: DeltaSink<'_>) -> Result<ChatResponse, ProviderError>;
    /// Checks the endpoint is reachable and the credentials work; returns a short description.
    async fn check(&self) -> Result<String, ProviderError>;
}
