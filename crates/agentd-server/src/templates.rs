//! `/v1/prompt-templates`: named prompt templates per tenant.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use crate::AppState;
use crate::error::{ApiError, ApiJson, Scope};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateBody {
    name: String,
    content: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReplaceBody {
    content: String,
}

pub(crate) async fn create(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<CreateBody>,
) -> Result<Response, ApiError> {
    let tpl = s.rt.create_template(&t, &b.name, &b.content).await?;
    Ok((StatusCode::CREATED, Json(tpl)).into_response())
}

pub(crate) async fn list(State(s): State<AppState>, Scope(t): Scope) -> Result<Response, ApiError> {
    Ok(Json(json!({"data": s.rt.list_templates(&t).await?, "next_cursor": null})).into_response())
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.rt.get_template(&t, &name).await?).into_response())
}

pub(crate) async fn replace(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<ReplaceBody>,
) -> Result<Response, ApiError> {
    Ok(Json(s.rt.replace_template(&t, &name, &b.content).await?).into_response())
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_template(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
