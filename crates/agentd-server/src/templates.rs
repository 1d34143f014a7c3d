//! `/v1/prompt-templates`: named prompt templates per tenant.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, ApiJson, Scope, shape};

pub(crate) async fn create(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<agentd_api::CreateTemplate>,
) -> Result<Response, ApiError> {
    let tpl: agentd_api::PromptTemplate = shape(&s.rt.create_template(&t, &b.name, &b.content).await?)?;
    Ok((StatusCode::CREATED, Json(tpl)).into_response())
}

pub(crate) async fn list(State(s): State<AppState>, Scope(t): Scope) -> Result<Response, ApiError> {
    let data: Vec<agentd_api::PromptTemplate> = shape(&s.rt.list_templates(&t).await?)?;
    Ok(Json(agentd_api::Page::all(data)).into_response())
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let tpl: agentd_api::PromptTemplate = shape(&s.rt.get_template(&t, &name).await?)?;
    Ok(Json(tpl).into_response())
}

pub(crate) async fn replace(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<agentd_api::ReplaceTemplate>,
) -> Result<Response, ApiError> {
    let tpl: agentd_api::PromptTemplate = shape(&s.rt.replace_template(&t, &name, &b.content).await?)?;
    Ok(Json(tpl).into_response())
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_template(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
