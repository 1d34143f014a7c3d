//! `/v1/approvals`: tool calls waiting for a person.

use agentd_core::ErrorCode;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, ApiJson, Params, Scope};

/// Approvals, oldest first (`?run_id=&session_id=&status=&after=&limit=`).
pub(crate) async fn list(State(s): State<AppState>, Scope(t): Scope, p: Params) -> Result<Response, ApiError> {
    let limit = p.int("limit", 50, 1, 200)? as u32;
    let status = match p.str("status") {
        None => None,
        Some(st) => Some(agentd_core::ApprovalStatus::parse(&st).ok_or_else(|| {
            let known: Vec<&str> = agentd_core::ApprovalStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(ErrorCode::InvalidStatus, format!("`status` must be one of {}", known.join(", ")))
        })?),
    };
    let f = agentd_runtime::ApprovalFilter { run_id: p.str("run_id"), session_id: p.str("session_id"), status };
    let page = agentd_runtime::Page { after: p.str("after"), limit: limit + 1 };
    let rows = s.rt.list_approvals(&t, &f, &page).await?;
    Ok(crate::page(rows, limit as usize, |a| agentd_api::Cursor::Id(a.id.clone())).into_response())
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.rt.get_approval(&t, &id).await?).into_response())
}

/// Answers one: `approve`, `approve_for_session` or `deny` (with a reason),
/// or `approve` with edited `arguments`.
pub(crate) async fn answer(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    axum::extract::Extension(caller): axum::extract::Extension<crate::auth::Caller>,
    ApiJson(a): ApiJson<agentd_api::AnswerApproval>,
) -> Result<Response, ApiError> {
    let by = caller.principal().map(|p| p.key_id.clone());
    let approval = s.rt.answer_approval(&t, &id, &a.decision, a.reason, a.arguments, by).await?;
    Ok(Json(approval).into_response())
}
