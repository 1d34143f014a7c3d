//! `/v1/tools`: list tools, and call one without a model.

use agentd_core::ContentPart;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::AppState;
use crate::error::{ApiError, ApiJson, Params, Scope};

/// Every tool available to the default agent, with source and schema.
pub async fn list(State(s): State<AppState>) -> Json<Value> {
    let data: Vec<Value> =
        s.rt.agent_tools()
            .iter()
            .map(|t| {
                json!({
                    "name": t.name,
                    "source": s.rt.tools.source(&t.name).unwrap_or("builtin"),
                    "description": t.description,
                    "input_schema": t.input_schema,
                })
            })
            .collect();
    Json(json!({"data": data, "next_cursor": null}))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallBody {
    #[serde(default = "empty_object")]
    arguments: Value,
    session_id: Option<String>,
}

fn empty_object() -> Value {
    json!({})
}

/// Runs a tool with JSON arguments validated against its schema.
/// `?format=json` also parses a JSON text result into `json`.
pub async fn call(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    p: Params,
    ApiJson(b): ApiJson<CallBody>,
) -> Result<Response, ApiError> {
    let out = s.rt.call_tool_direct(&t, &name, b.arguments, b.session_id.as_deref()).await?;
    let mut v = json!({"content": out.content, "is_error": out.is_error});
    if p.str("format").as_deref() == Some("json") {
        let text: String = out
            .content
            .iter()
            .filter_map(|c| match c {
                ContentPart::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        v["json"] = serde_json::from_str(&text).unwrap_or(Value::Null);
    }
    Ok(Json(v).into_response())
}
