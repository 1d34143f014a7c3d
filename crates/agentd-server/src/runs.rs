//! `/v1/runs` handlers.

use agentd_core::ErrorCode;
use agentd_core::RunStatus;
use agentd_runtime::{CreateRun, IfBusy};
use agentd_store::{EventQuery, Page, RunFilter};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, ApiJson, MaybeJson, Params, Scope};
use crate::{AppState, page, sse};

/// Body of `POST /v1/runs`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    #[serde(default)]
    input: Option<String>,
    /// A prompt template to render as the input, with `arguments`.
    #[serde(default)]
    template: Option<String>,
    #[serde(default)]
    arguments: Option<serde_json::Value>,
    /// Images for the input: data URLs, https URLs, or `{data, media_type}`.
    #[serde(default)]
    images: Vec<serde_json::Value>,
    /// `tool_choice` for the first model call (provider format), e.g. to force a tool.
    #[serde(default)]
    tool_choice: Option<serde_json::Value>,
    session_id: Option<String>,
    model: Option<String>,
    max_steps: Option<u32>,
    #[serde(default)]
    stream: bool,
    /// What to do if the session already has an unfinished run.
    #[serde(default)]
    if_busy: IfBusy,
    /// The agent to run (`default` when absent).
    agent: Option<String>,
}

pub(crate) async fn create(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let input = match (b.input, b.template) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRequest,
                "give either `input` or `template`, not both",
            ));
        }
        (None, Some(name)) => {
            s.rt.render_template(&t, &name, b.arguments.as_ref().unwrap_or(&serde_json::Value::Null)).await?
        }
        (Some(i), None) => i,
        (None, None) => {
            return Err(ApiError::bad_request(
                ErrorCode::InputRequired,
                "give `input` (or `template` with `arguments`)",
            ));
        }
    };
    let images = agentd_runtime::images::parse(&b.images)?;
    let req = CreateRun {
        input,
        images,
        tool_choice: b.tool_choice,
        arguments: b.arguments,
        session_id: b.session_id,
        model: b.model,
        max_steps: b.max_steps,
        if_busy: b.if_busy,
        agent: b.agent,
    };
    let created = s.rt.create_run(&t, req, b.stream).await?;
    let (run, rx) = (created.run, created.live);
    if !b.stream {
        let mut v = json!(run);
        if created.steered {
            v["steered"] = json!(true);
        }
        return Ok((StatusCode::ACCEPTED, Json(v)).into_response());
    }
    let id = run.id.clone();
    let mut resp = sse::run_events(s.rt.clone(), t, id.clone(), 0, rx).into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-run-id", v);
    }
    Ok(resp)
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.rt.get_run(&t, &id).await?).into_response())
}

pub(crate) async fn list(State(s): State<AppState>, Scope(t): Scope, p: Params) -> Result<Response, ApiError> {
    let status = match p.str("status") {
        Some(v) => Some(
            RunStatus::parse(&v)
                .ok_or_else(|| ApiError::bad_request(ErrorCode::InvalidQuery, format!("unknown status {v:?}")))?,
        ),
        None => None,
    };
    let filter = RunFilter { session_id: p.str("session_id"), status };
    list_runs(&s, &t, filter, &p).await
}

pub(crate) async fn list_runs(
    s: &AppState,
    t: &agentd_core::Tenant,
    filter: RunFilter,
    p: &Params,
) -> Result<Response, ApiError> {
    let limit = p.int("limit", 20, 1, 100)? as u32;
    let rows = s.rt.list_runs(t, &filter, &Page { after: p.str("after"), limit: limit + 1 }).await?;
    Ok(page(rows, limit as usize, |r| json!(r.id)).into_response())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct CancelBody {
    reason: Option<String>,
}

pub(crate) async fn cancel(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    MaybeJson(body): MaybeJson<CancelBody>,
) -> Result<Response, ApiError> {
    let reason = body.and_then(|b| b.reason);
    Ok(Json(s.rt.cancel(&t, &id, reason).await?).into_response())
}

/// The journal as a JSON page, or (with `Accept: text/event-stream`) as SSE.
pub(crate) async fn events(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    headers: HeaderMap,
    p: Params,
) -> Result<Response, ApiError> {
    // Existence check first, so unknown runs are a JSON 404 in both modes.
    s.rt.get_run(&t, &id).await?;
    let mut after = p.int("after", 0, 0, i64::MAX)?;
    let wants_sse =
        headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"));
    if wants_sse {
        if let Some(v) = headers.get("last-event-id") {
            after =
                v.to_str().ok().and_then(|v| v.trim().parse::<i64>().ok()).filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::bad_request(ErrorCode::InvalidLastEventId, "Last-Event-ID must be a sequence number")
                })?;
        }
        return Ok(sse::run_events(s.rt.clone(), t, id, after, None).into_response());
    }
    let limit = p.int("limit", 100, 1, 1000)? as u32;
    let types = p.str("type").map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let rows = s.rt.run_events(&t, &id, &EventQuery { after, limit: limit + 1, types }).await?;
    Ok(page(rows, limit as usize, |e| json!(e.seq)).into_response())
}
