//! Routes of the models a tenant can use: its own providers and model
//! profiles beside the server's.

use agentd_core::ModelProfile;
use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use agentd_core::{HeaderSpec, SecretRef};

/// Where a provider or profile is defined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The caller's tenant added it over the API (editable).
    Tenant,
    /// The server's config (read only).
    Server,
}

/// Provider API dialects a tenant may add.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TenantProviderKind {
    Openai,
    Anthropic,
    Ollama,
}

/// Body of `POST /v1/providers`: the keys of `[providers.*]`, the API key a secret reference.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProvider {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: TenantProviderKind,
    /// Default: the vendor's public endpoint (required for `ollama`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// `{"secret": "NAME"}`: one of the tenant's secrets, opened when a run uses the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretRef>,
    /// Plain values, or `{"secret": "NAME"}`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, HeaderSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Use SSE streaming (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stream: Option<bool>,
    /// For `openai`: `max_tokens` or `max_completion_tokens`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tokens_field: Option<String>,
    /// For `ollama`: ask thinking models to think.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub think: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_base_ms: Option<u64>,
}

/// A provider the caller can use: the tenant's own with their settings, the server's by name and type.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProviderInfo {
    pub name: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// The secret reference, never a value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<SecretRef>,
    /// Header names only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// A tenant provider of the same name hides this server one from the tenant's runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadowed: bool,
}

/// `GET /v1/providers/{name}/health`: whether the provider answers with its credentials.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ProviderHealth {
    pub name: String,
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Body of `POST /v1/model-profiles`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CreateModelProfile {
    pub name: String,
    #[serde(flatten)]
    pub profile: ModelProfile,
}

/// A model profile the caller can use.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ModelProfileInfo {
    pub name: String,
    #[serde(flatten)]
    pub profile: ModelProfile,
    pub source: Source,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<String>,
    /// A tenant profile of the same name hides this server one from the tenant's runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub shadowed: bool,
}
