//! `/v1/sessions` handlers.

use agentd_core::RunStatus;
use agentd_store::{Page, RunFilter};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::error::{ApiError, MaybeJson, Params, Scope};
use crate::{AppState, page, runs};

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    title: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

fn not_found(id: &str) -> ApiError {
    ApiError::not_found("session_not_found", format!("session {id} not found"))
}

pub async fn create(
    State(s): State<AppState>,
    Scope(t): Scope,
    MaybeJson(body): MaybeJson<CreateBody>,
) -> Result<Response, ApiError> {
    let b = body.unwrap_or_default();
    let metadata = b.metadata.unwrap_or_else(|| json!({}));
    if !metadata.is_object() {
        return Err(ApiError::bad_request("invalid_request", "`metadata` must be a JSON object"));
    }
    let session = s.rt.store.create_session(&t, b.title, metadata).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

pub async fn list(State(s): State<AppState>, Scope(t): Scope, p: Params) -> Result<Response, ApiError> {
    let limit = p.int("limit", 20, 1, 100)? as u32;
    let rows = s.rt.store.list_sessions(&t, &Page { after: p.str("after"), limit: limit + 1 }).await?;
    Ok(page(rows, limit as usize, |r| json!(r.id)).into_response())
}

pub async fn get_one(State(s): State<AppState>, Scope(t): Scope, Path(id): Path<String>) -> Result<Response, ApiError> {
    let session = s.rt.store.get_session(&t, &id).await?.ok_or_else(|| not_found(&id))?;
    let messages = s.rt.store.session_messages(&t, &id).await?;
    let mut v = json!(session);
    v["messages"] = json!(messages);
    // Token usage and cost of the whole session, summed over its runs.
    let (mut usage, mut cost, mut after) = (agentd_core::Usage::default(), None::<f64>, None);
    loop {
        let filter = RunFilter { session_id: Some(id.clone()), status: None };
        let runs = s.rt.store.list_runs(&t, &filter, &Page { after: after.clone(), limit: 1_000 }).await?;
        for r in &runs {
            usage.add(&r.usage);
            if let Some(c) = r.cost_usd {
                cost = Some(cost.unwrap_or(0.0) + c);
            }
        }
        match runs.last() {
            Some(last) if runs.len() == 1_000 => after = Some(last.id.clone()),
            _ => break,
        }
    }
    v["usage"] = json!(usage);
    v["cost_usd"] = json!(cost);
    Ok(Json(v).into_response())
}

/// Deletes a session with its runs and journal; active runs are cancelled first.
pub async fn delete(State(s): State<AppState>, Scope(t): Scope, Path(id): Path<String>) -> Result<Response, ApiError> {
    s.rt.store.get_session(&t, &id).await?.ok_or_else(|| not_found(&id))?;
    for status in [RunStatus::Queued, RunStatus::Running] {
        let filter = RunFilter { session_id: Some(id.clone()), status: Some(status) };
        for run in s.rt.store.list_runs(&t, &filter, &Page { after: None, limit: 10_000 }).await? {
            // Already finished in between is fine.
            let _ = s.rt.cancel(&t, &run.id, Some("session deleted".into())).await;
        }
    }
    if !s.rt.store.delete_session(&t, &id).await? {
        return Err(not_found(&id));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn runs(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    s.rt.store.get_session(&t, &id).await?.ok_or_else(|| not_found(&id))?;
    runs::list_runs(&s, &t, RunFilter { session_id: Some(id), status: None }, &p).await
}
