//! `/v1/sessions` handlers.

use crate::routes::Route;
use agentd_api as api;

use agentd_runtime::{Page, RunFilter};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ApiQuery, MaybeJson, Scope, limit};
use crate::{AppState, page, runs};

pub(crate) async fn create(
    State(s): State<AppState>,
    Scope(t): Scope,
    MaybeJson(body): MaybeJson<agentd_api::CreateSession>,
) -> Result<Response, ApiError> {
    let b = body.unwrap_or_default();
    let session = s.rt.create_session(&t, b.title, b.metadata).await?;
    Ok((StatusCode::CREATED, Json(session)).into_response())
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiQuery(p): ApiQuery<api::PageQuery>,
) -> Result<Response, ApiError> {
    let limit = limit(p.limit, 20, 100)?;
    let rows = s.rt.list_sessions(&t, &Page { after: p.after, limit: limit + 1 }).await?;
    Ok(page(rows, limit as usize, |r| agentd_api::Cursor::Id(r.id.clone())).into_response())
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let view = s.rt.session_view(&t, &id).await?;
    let messages = view
        .messages
        .into_iter()
        .map(|m| agentd_api::SessionMessage {
            index: m.index,
            run_id: m.run_id,
            seq: m.seq,
            message: m.message,
            created_at: m.created_at,
        })
        .collect();
    let body = agentd_api::SessionView { session: view.session, messages, usage: view.usage, cost_usd: view.cost_usd };
    Ok(Json(body).into_response())
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
    ApiQuery(p): ApiQuery<api::PageQuery>,
) -> Result<Response, ApiError> {
    s.rt.get_session(&t, &id).await?;
    runs::list_runs(&s, &t, RunFilter { session_id: Some(id), status: None, ..Default::default() }, p).await
}

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/sessions", "Create a session", create)
            .optional_body::<api::CreateSession>()
            .answer::<api::Session>(201),
        Route::get("/v1/sessions", "List sessions, newest first", list)
            .query::<api::PageQuery>()
            .answer::<api::Page<api::Session>>(200),
        Route::get("/v1/sessions/{id}", "A session with its messages, usage and cost", get_one)
            .answer::<api::SessionView>(200),
        Route::delete("/v1/sessions/{id}", "Delete a session with its runs", delete).empty(204),
        Route::get("/v1/sessions/{id}/runs", "The session's runs", runs)
            .query::<api::PageQuery>()
            .answer::<api::Page<api::Run>>(200),
    ]
}
