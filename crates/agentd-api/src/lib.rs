//! The `/v1` API as types: every request body, every response shape, the
//! pagination envelope and the error codes. The server answers with these
//! and the CLI reads them; both derive their JSON from here, and each type
//! has a JSON Schema for the OpenAPI document.

mod catalog;
mod models;
pub mod openapi;
pub mod query;
mod system;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

pub use agentd_core::{
    ApiKey, Approval, ApprovalStatus, AuditEntry, ContentPart, ContextTokens, Decision, ErrorCode, EventKind,
    EventType, HttpToolDef, IfBusy, KeyRole, Message, ModelContext, Run, RunError, RunStatus, Session, SessionMessage,
    StoredEvent, Usage,
};

/// A prompt template as the API shows it.
pub type PromptTemplate = Document<Template>;

pub use agentd_core::{
    AgentDef, AgentExport, AgentImported, AgentLimits, AgentListing, AgentSource, AgentVersion, BlackboardEntry,
    DirectCall, Document, FileEntry, FileHit, FileKind, ModelPrice, ModelProfile, Named, OrgLimits, TeamDef,
    TeamMember, TeamStrategy, Template, UsageReport, UsageRow,
};
pub use catalog::{
    CreateMcpServer, CreateTeamRun, McpServerConfig, McpServerInfo, PostBlackboard, PreviewTemplate, Skill, SkillList,
    SkillLoadError, SkillSummary, SkillUploaded, TemplatePreview, UploadSkill,
};
pub use models::{
    CreateModelProfile, CreateProvider, ModelProfileInfo, ProviderHealth, ProviderInfo, Source, TenantProviderKind,
};
pub use query::{
    ApprovalsQuery, AuditQuery, CallToolQuery, ContextQuery, EventsQuery, FileQuery, FilesQuery, ImportQuery,
    PageQuery, RunsQuery, ToolCallsQuery, ToolsQuery, UsageQuery,
};
pub use system::{Check, Diagnostics, Health, NamedCheck, Readiness, ReadinessChecks};

/// Every error answer: `{"error": {"code", "message", ...details}}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// What went wrong, machine-readable (`code`) and for people (`message`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// Details some codes carry (`field`, `active_run_id`, `status`, `rule`, ...).
    #[serde(flatten)]
    pub details: BTreeMap<String, Value>,
}

/// Where the next page starts: an id, or a journal sequence number.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Cursor {
    Seq(i64),
    Id(String),
}

/// One page of a listing; pass `next_cursor` as `?after=` for the next one.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Page<T> {
    pub data: Vec<T>,
    /// `null` on the last page.
    pub next_cursor: Option<Cursor>,
}

impl<T> Page<T> {
    /// A page from up to `limit + 1` rows: the extra row says another page follows.
    pub fn from_rows(mut rows: Vec<T>, limit: usize, cursor: impl Fn(&T) -> Cursor) -> Self {
        let more = rows.len() > limit;
        rows.truncate(limit);
        let next_cursor = if more { rows.last().map(cursor) } else { None };
        Self { data: rows, next_cursor }
    }

    /// Everything in one page.
    pub fn all(data: Vec<T>) -> Self {
        Self { data, next_cursor: None }
    }
}

/// Body of `POST /v1/sessions`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    pub title: Option<String>,
    #[serde(default)]
    pub metadata: Option<Value>,
}

/// A session with its history, usage and cost (`GET /v1/sessions/{id}`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SessionView {
    #[serde(flatten)]
    pub session: Session,
    pub messages: Vec<SessionMessage>,
    /// Token usage of the whole session, summed over its runs.
    pub usage: Usage,
    pub cost_usd: Option<f64>,
}

/// Body of `POST /v1/runs`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRun {
    #[serde(default)]
    pub input: Option<String>,
    /// A prompt template to render as the input, with `arguments`.
    #[serde(default)]
    pub template: Option<String>,
    #[serde(default)]
    pub arguments: Option<Value>,
    /// Images for the input: data URLs, https URLs, or `{data, media_type}`.
    #[serde(default)]
    pub images: Vec<Value>,
    /// `tool_choice` for the first model call (provider format), e.g. to force a tool.
    #[serde(default)]
    pub tool_choice: Option<Value>,
    pub session_id: Option<String>,
    pub model: Option<String>,
    pub max_steps: Option<u32>,
    /// Answer with the run's events as SSE instead of the run.
    #[serde(default)]
    pub stream: bool,
    #[serde(default)]
    pub if_busy: IfBusy,
    /// The agent to run (`default` when absent).
    pub agent: Option<String>,
}

/// The answer to `POST /v1/runs` without `stream`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunCreated {
    #[serde(flatten)]
    pub run: Run,
    /// The message went to the session's active run (`if_busy: steer`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub steered: bool,
}

/// Body of `POST /v1/runs/{id}/cancel` (optional).
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRun {
    pub reason: Option<String>,
}

/// Body of `POST /v1/runs/{id}/messages`: a user message the run takes in at its next step.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InjectMessage {
    pub input: String,
}

/// Answer of `POST /v1/runs/{id}/messages`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct Injected {
    pub run: Run,
    /// Sequence number of the `input.queued` event.
    pub queued_seq: i64,
}

/// Body of `POST /v1/approvals/{id}`: `approve`, `approve_for_session` or
/// `deny` (with a reason), or `approve` with edited `arguments`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AnswerApproval {
    pub decision: String,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub arguments: Option<Value>,
}

/// A tool as `GET /v1/tools` lists it.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolInfo {
    pub name: String,
    /// `builtin`, `mcp`, `http` or `skill`.
    pub source: String,
    pub description: String,
    pub input_schema: Value,
}

/// Body of `POST /v1/tools/{name}/call`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallTool {
    #[serde(default = "empty_object")]
    pub arguments: Value,
    pub session_id: Option<String>,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// The answer to a direct tool call.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolCallResult {
    pub content: Vec<ContentPart>,
    pub is_error: bool,
    /// The fence a sandboxed call ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<Value>,
    /// Set when the tool refused to run unfenced (`sandbox_unavailable`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ToolRefusal>,
    /// With `?format=json`: the text result parsed as JSON (`null` if it is not JSON).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub json: Option<Value>,
}

/// Why a tool call did not run.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolRefusal {
    pub code: agentd_core::Refusal,
    pub message: String,
}

/// Body of `POST /v1/http-tools`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateHttpTool {
    pub name: String,
    #[serde(default)]
    pub description: String,
    #[serde(default = "object_schema")]
    pub input_schema: Value,
    pub url: String,
    #[serde(default)]
    /// Plain values, or `{"secret": "NAME"}` for one of the tenant's secrets.
    pub headers: BTreeMap<String, agentd_core::HeaderSpec>,
    /// Header name → environment variable holding its (secret) value.
    #[serde(default)]
    pub secret_headers: BTreeMap<String, String>,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
}

fn object_schema() -> Value {
    serde_json::json!({"type": "object"})
}

fn default_timeout_ms() -> u64 {
    30_000
}

/// A live frame of a run's SSE stream that is not a journal event: text as it streams.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
pub struct Delta {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub thinking: Option<String>,
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_error_code_has_one_spelling_and_a_schema() {
        for c in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(c.as_str()), Some(*c));
        }
        let s = serde_json::to_value(schemars::schema_for!(ErrorBody)).unwrap();
        let codes = &s["$defs"]["ErrorCode"]["enum"];
        assert_eq!(codes.as_array().map(Vec::len), Some(ErrorCode::ALL.len()), "{s}");
    }

    #[test]
    fn pages_say_whether_more_follow() {
        let p = Page::from_rows(vec!["a", "b", "c"], 2, |r| Cursor::Id(r.to_string()));
        assert_eq!((p.data.len(), p.next_cursor), (2, Some(Cursor::Id("b".into()))));
        let p = Page::from_rows(vec![1, 2], 2, |r| Cursor::Seq(*r));
        assert_eq!(p.next_cursor, None);
        let v = serde_json::to_value(Page::from_rows(vec![1, 2, 3], 2, |r| Cursor::Seq(*r))).unwrap();
        assert_eq!(v, serde_json::json!({"data": [1, 2], "next_cursor": 2}));
    }
}

/// Body of `POST /v1/api-keys`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    #[serde(default)]
    pub name: Option<String>,
    pub role: agentd_core::KeyRole,
    /// Required except for operator keys (which have none).
    #[serde(default)]
    pub org: Option<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub project: Option<String>,
    /// RFC 3339 time after which the key is refused.
    #[serde(default)]
    pub expires_at: Option<String>,
}

/// The answer to `POST /v1/api-keys`: the key, and its secret shown this once.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ApiKeyCreated {
    #[serde(flatten)]
    pub key: ApiKey,
    /// `agk_…`: store it now; only its hash is kept.
    pub secret: String,
}

/// Body of `PUT /v1/secrets/{name}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PutSecret {
    /// The value: sealed at rest, never shown again.
    pub value: String,
}

/// A secret as listed: name and times, never the value.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct SecretInfo {
    pub name: String,
    pub created_at: String,
    pub updated_at: String,
}

/// One frame of `GET /v1/events`: a run lifecycle event of the caller's
/// tenant with its run's session (the SSE `id` is `created_at|run_id|seq`).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FeedItem {
    /// `created_at|run_id|seq`: pass as `Last-Event-ID` (or `after`) to resume.
    pub id: String,
    pub run_id: String,
    pub session_id: String,
    pub seq: i64,
    #[serde(rename = "type")]
    pub type_name: String,
    pub data: Value,
    pub created_at: String,
}

/// `GET /v1/sessions/{id}/files[/{path}]` on a directory (or with `q`, the search hits).
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileListing {
    pub path: String,
    #[serde(default)]
    pub entries: Vec<FileEntry>,
    /// With `q`: files whose path or a line of whose text contains it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hits: Vec<FileHit>,
}

/// The answer to an upload.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileWritten {
    pub path: String,
    pub size: u64,
}

/// Body of `POST /v1/sessions/{id}/rename-file`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RenameFile {
    pub from: String,
    pub to: String,
}
