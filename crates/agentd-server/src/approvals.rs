//! `/v1/approvals`: tool calls waiting for a person.

use crate::routes::Route;
use agentd_api as api;

use agentd_core::ErrorCode;
use axum::Json;
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiQuery, Scope, limit};

/// Approvals, oldest first (`?run_id=&session_id=&status=&after=&limit=`).
pub(crate) async fn list(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiQuery(p): ApiQuery<api::ApprovalsQuery>,
) -> Result<Response, ApiError> {
    let limit = limit(p.limit, 50, 200)?;
    let status = match p.status {
        None => None,
        Some(st) => Some(agentd_core::ApprovalStatus::parse(&st).ok_or_else(|| {
            let known: Vec<&str> = agentd_core::ApprovalStatus::ALL.iter().map(|s| s.as_str()).collect();
            ApiError::bad_request(ErrorCode::InvalidStatus, format!("`status` must be one of {}", known.join(", ")))
        })?),
    };
    let f = agentd_runtime::ApprovalFilter { run_id: p.run_id, session_id: p.session_id, status };
    let page = agentd_runtime::Page { after: p.after, limit: limit + 1 };
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

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/v1/approvals", "Approvals, oldest first", list)
            .query::<api::ApprovalsQuery>()
            .answer::<api::Page<api::Approval>>(200),
        Route::get("/v1/approvals/{id}", "One approval", get_one).answer::<api::Approval>(200),
        Route::post("/v1/approvals/{id}", "Answer an approval", answer)
            .body::<api::AnswerApproval>()
            .answer::<api::Approval>(200)
            .audited(),
    ]
}
