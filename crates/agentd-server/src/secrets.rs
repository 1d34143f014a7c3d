//! `/v1/secrets`: a tenant's secrets, sealed at rest; values go in, never out.

use crate::routes::Route;
use agentd_api as api;

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

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::put("/v1/secrets/{name}", "Create or replace a secret (sealed at rest)", put)
            .body::<api::PutSecret>()
            .answer::<api::SecretInfo>(200)
            .admin()
            .audited(),
        Route::get("/v1/secrets", "The tenant's secrets: names and times, never values", list)
            .answer::<api::Page<api::SecretInfo>>(200)
            .admin(),
        Route::delete("/v1/secrets/{name}", "Remove a secret", delete).empty(204).admin().audited(),
    ]
}
