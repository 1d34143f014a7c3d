//! Query strings of the API as types: the server parses each route's with
//! its type and the OpenAPI document lists its fields as parameters.
//! Empty values count as absent.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// A page of a listing: `after` a cursor, at most `limit` items.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct PageQuery {
    pub after: Option<String>,
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
}

/// `GET /v1/runs`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct RunsQuery {
    pub session_id: Option<String>,
    pub status: Option<String>,
    pub agent: Option<String>,
    pub model: Option<String>,
    /// RFC 3339 time or a date.
    pub from: Option<String>,
    /// RFC 3339 time or a date.
    pub to: Option<String>,
    pub after: Option<String>,
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
}

/// `GET /v1/runs/{id}/events`: events after a sequence number, of some types.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct EventsQuery {
    #[schemars(range(min = 0))]
    pub after: Option<i64>,
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
    /// Event types, comma-separated.
    #[serde(rename = "type")]
    pub types: Option<String>,
}

/// `GET /v1/runs/{id}/context`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ContextQuery {
    #[schemars(range(min = 1))]
    pub step: Option<u32>,
}

/// `GET /v1/sessions/{id}/files`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FilesQuery {
    /// A directory below the workspace's root.
    pub path: Option<String>,
    /// Searches names and text.
    pub q: Option<String>,
}

/// `GET /v1/sessions/{id}/files/{path}`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct FileQuery {
    /// `1` or `true`: as an attachment.
    pub download: Option<String>,
}

/// `GET /v1/tools`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolsQuery {
    /// The tools of this agent.
    pub agent: Option<String>,
}

/// `POST /v1/tools/{name}/call`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct CallToolQuery {
    /// `json`: the result as JSON.
    pub format: Option<String>,
}

/// `GET /v1/tool-calls`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ToolCallsQuery {
    pub session_id: Option<String>,
    pub after: Option<String>,
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
}

/// `POST /v1/agents/import`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ImportQuery {
    /// `true` or `1`: replace what exists.
    pub replace: Option<String>,
}

/// `GET /v1/approvals`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct ApprovalsQuery {
    pub run_id: Option<String>,
    pub session_id: Option<String>,
    pub status: Option<String>,
    pub after: Option<String>,
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
}

/// `GET /v1/usage`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct UsageQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `day`, `model`, `agent` or `user`.
    pub group_by: Option<String>,
    pub user: Option<String>,
}

/// `GET /v1/audit`.
#[derive(Debug, Default, Clone, Serialize, Deserialize, JsonSchema)]
pub struct AuditQuery {
    pub org: Option<String>,
    pub after: Option<String>,
    #[schemars(range(min = 1))]
    pub limit: Option<u32>,
}
