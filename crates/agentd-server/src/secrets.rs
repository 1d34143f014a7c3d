//! `/v1/secrets`: a tenant's secrets, sealed at rest; values go in, never out.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, ApiJson, Scope};

fn info(m: agentd_runtime::SecretMeta) -> agentd_api::SecretInfo {
    agentd_api::SecretInfo { name: m.name, created_at: m.created_at, updated_at: m.updated_at }
}

pub(crate) async fn put(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<agentd_api::PutSecret>,
) -> Result<Json<agentd_api::SecretInfo>, ApiError> {
    Ok(Json(info(s.rt.put_secret(&t, &name, &b.value).await?)))
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Scope(t): Scope,
) -> Result<Json<agentd_api::Page<agentd_api::SecretInfo>>, ApiError> {
    Ok(Json(agentd_api::Page::all(s.rt.list_secrets(&t).await?.into_iter().map(info).collect())))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_secret(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
