//! `/v1/api-keys`: make, list, show and revoke API keys.

use crate::routes::Route;
use agentd_api as api;

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
    crate::error::ApiQuery(p): crate::error::ApiQuery<api::AuditQuery>,
) -> Result<Response, ApiError> {
    let limit = crate::error::limit(p.limit, 50, 500)?;
    let page = agentd_runtime::Page { after: p.after, limit: limit + 1 };
    let rows = s.rt.list_audit(caller.principal(), &t.org, p.org.as_deref(), &page).await?;
    Ok(crate::page(rows, limit as usize, |a| agentd_api::Cursor::Id(a.id.clone())).into_response())
}

/// Usage of the caller's org (`?from=&to=&group_by=day|model|agent|user&user=`);
/// a key bound to a user sees that user's alone.
pub(crate) async fn usage(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    crate::error::Scope(t): crate::error::Scope,
    crate::error::ApiQuery(p): crate::error::ApiQuery<api::UsageQuery>,
) -> Result<Json<agentd_api::UsageReport>, ApiError> {
    let user = caller.principal().and_then(|k| k.user.clone()).or(p.user);
    let project = caller.principal().and_then(|k| k.project.clone());
    let r = s
        .rt
        .usage(&t.org, user.as_deref(), project.as_deref(), p.from.as_deref(), p.to.as_deref(), p.group_by.as_deref())
        .await?;
    Ok(Json(r))
}

/// Sets an organisation's quotas (operators; they replace the config's for that org).
pub(crate) async fn put_limits(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
    ApiJson(b): ApiJson<agentd_api::OrgLimits>,
) -> Result<Json<agentd_api::OrgLimits>, ApiError> {
    let set = s.rt.set_org_limits(caller.principal(), &org, b).await?;
    Ok(Json(set))
}

/// An organisation's quotas as they apply (an operator any org's, an admin its own).
pub(crate) async fn get_limits(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(org): Path<String>,
) -> Result<Json<agentd_api::OrgLimits>, ApiError> {
    let l = s.rt.get_org_limits(caller.principal(), &org).await?;
    Ok(Json(l))
}

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/api-keys", "Make an API key (its secret is shown once)", create)
            .body::<api::CreateApiKey>()
            .answer::<api::ApiKeyCreated>(201)
            .admin()
            .audited(),
        Route::get("/v1/api-keys", "Keys the caller may manage", list).answer::<api::Page<api::ApiKey>>(200).admin(),
        Route::get("/v1/api-keys/{id}", "One key", get_one).answer::<api::ApiKey>(200).admin(),
        Route::delete("/v1/api-keys/{id}", "Revoke a key", revoke).answer::<api::ApiKey>(200).admin().audited(),
        Route::get("/v1/audit", "Who changed what, oldest first", audit)
            .query::<api::AuditQuery>()
            .answer::<api::Page<api::AuditEntry>>(200)
            .admin(),
        Route::get("/v1/usage", "Tokens, cost, runs and tool calls, grouped", usage)
            .query::<api::UsageQuery>()
            .answer::<api::UsageReport>(200),
        Route::put("/v1/orgs/{org}/limits", "Set an organisation's quotas (operators)", put_limits)
            .body::<api::OrgLimits>()
            .answer::<api::OrgLimits>(200)
            .admin()
            .audited(),
        Route::get("/v1/orgs/{org}/limits", "An organisation's quotas as they apply", get_limits)
            .answer::<api::OrgLimits>(200)
            .admin(),
    ]
}
