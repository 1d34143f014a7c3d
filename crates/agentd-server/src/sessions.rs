//! `/v1/sessions` handlers.

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
pub(crate) struct CreateBody {
    title: Option<String>,
    #[serde(default)]
    metadata: Option<serde_json::Value>,
}

pub(crate) async fn create(
    State(s): State<AppState>,
    Scope(t): Scope,
    MaybeJson(body): MaybeJson<CreateBody>,
) -> Result<Response, ApiError> {
    let b = body.unwrap_or_default();
    let session = s.rt.create_session(&t, b.title, b.metadata).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

pub(crate) async fn list(State(s): State<AppState>, Scope(t): Scope, p: Params) -> Result<Response, ApiError> {
    let limit = p.int("limit", 20, 1, 100)? as u32;
    let rows = s.rt.list_sessions(&t, &Page { after: p.str("after"), limit: limit + 1 }).await?;
    Ok(page(rows, limit as usize, |r| json!(r.id)).into_response())
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = s.rt.session_view(&t, &id).await?;
    let mut v = json!(view.session);
    v["messages"] = json!(view.messages);
    // Token usage and cost of the whole session, summed over its runs.
    v["usage"] = json!(view.usage);
    v["cost_usd"] = json!(view.cost_usd);
    Ok(Json(v).into_response())
}

/// Deletes a session with its runs and journal; active runs are cancelled first.
pub(crate) async fn delete(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_session(&t, &id).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn runs(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    p: Params,
) -> Result<Response, ApiError> {
    s.rt.get_session(&t, &id).await?;
    runs::list_runs(&s, &t, RunFilter { session_id: Some(id), status: None }, &p).await
}
