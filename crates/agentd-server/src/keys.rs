//! `/v1/api-keys`: make, list, show and revoke API keys.

use axum::Json;
use axum::extract::{Extension, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::auth::Caller;
use crate::error::{ApiError, ApiJson};

pub(crate) async fn create(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    crate::error::Scope(t): crate::error::Scope,
    ApiJson(b): ApiJson<agentd_api::CreateApiKey>,
) -> Result<Response, ApiError> {
    let req = agentd_runtime::access::NewKey {
        name: b.name.unwrap_or_default(),
        role: b.role,
        org: b.org,
        user: b.user,
        project: b.project,
        expires_at: b.expires_at,
    };
    let (key, secret) = s.rt.create_key(caller.principal(), Some(&t.org), req).await?;
    Ok((StatusCode::CREATED, Json(agentd_api::ApiKeyCreated { key, secret })).into_response())
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Result<Json<agentd_api::Page<agentd_api::ApiKey>>, ApiError> {
    Ok(Json(agentd_api::Page::all(s.rt.list_keys(caller.principal()).await?)))
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<agentd_api::ApiKey>, ApiError> {
    Ok(Json(s.rt.get_key(caller.principal(), &id).await?))
}

/// Revokes a key; it is refused from the next request on.
pub(crate) async fn revoke(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Result<Json<agentd_api::ApiKey>, ApiError> {
    Ok(Json(s.rt.revoke_key(caller.principal(), &id).await?))
}

/// The audit log, oldest first (`?after=&limit=`; operators may add `?org=`).
pub(crate) async fn audit(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    crate::error::Scope(t): crate::error::Scope,
    p: crate::error::Params,
) -> Result<Response, ApiError> {
    let limit = p.int("limit", 50, 1, 500)? as u32;
    let page = agentd_runtime::Page { after: p.str("after"), limit: limit + 1 };
    let rows = s.rt.list_audit(caller.principal(), &t.org, p.str("org").as_deref(), &page).await?;
    Ok(crate::page(rows, limit as usize, |a| agentd_api::Cursor::Id(a.id.clone())).into_response())
}

/// Usage of the caller's org (`?from=&to=&group_by=day|model|agent|user&user=`);
/// a key bound to a user sees that user's alone.
pub(crate) async fn usage(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    crate::error::Scope(t): crate::error::Scope,
    p: crate::error::Params,
) -> Result<Json<agentd_api::UsageReport>, ApiError> {
    let user = caller.principal().and_then(|k| k.user.clone()).or_else(|| p.str("user"));
    let project = caller.principal().and_then(|k| k.project.clone());
    let r =
        s.rt.usage(
            &t.org,
            user.as_deref(),
            project.as_deref(),
            p.str("from").as_deref(),
            p.str("to").as_deref(),
            p.str("group_by").as_deref(),
        )
        .await?;
    Ok(Json(crate::error::shape(&r)?))
}

/// Sets an organisation's quotas (operators; they replace the config's for that org).
pub(crate) async fn put_limits(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
    ApiJson(b): ApiJson<agentd_api::OrgLimits>,
) -> Result<Json<agentd_api::OrgLimits>, ApiError> {
    let set = s.rt.set_org_limits(caller.principal(), &org, crate::error::domain(&b)?).await?;
    Ok(Json(crate::error::shape(&set)?))
}

/// An organisation's quotas as they apply (an operator any org's, an admin its own).
pub(crate) async fn get_limits(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
) -> Result<Json<agentd_api::OrgLimits>, ApiError> {
    let l = s.rt.get_org_limits(caller.principal(), &org).await?;
    Ok(Json(crate::error::shape(&l)?))
}
