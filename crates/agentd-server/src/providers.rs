//! `/v1/providers` and `/v1/model-profiles`: the tenant's own model keys and
//! profiles (editable by admins), listed beside the server's (read only).

use crate::routes::Route;
use agentd_api as api;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use agentd_api::{ModelProfileInfo, ProviderInfo, Source};
use agentd_runtime::tenant_models::{TenantProfile, TenantProvider};

use crate::AppState;
use crate::error::{ApiError, ApiJson, Scope};

fn provider_info(p: TenantProvider) -> ProviderInfo {
    ProviderInfo {
        name: p.name,
        kind: p.kind.as_str().to_string(),
        source: Source::Tenant,
        base_url: p.base_url,
        api_key: p.api_key,
        headers: p.headers.into_keys().collect(),
        created_at: Some(p.created_at),
        shadowed: false,
    }
}

fn profile_info(p: TenantProfile) -> ModelProfileInfo {
    ModelProfileInfo {
        name: p.name,
        profile: p.profile,
        source: Source::Tenant,
        created_at: Some(p.created_at),
        shadowed: false,
    }
}

pub(crate) async fn create(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<agentd_api::CreateProvider>,
) -> Result<Response, ApiError> {
    let def = s.rt.add_provider(&t, crate::wire::provider_in(b)).await?;
    Ok((StatusCode::CREATED, Json(provider_info(def))).into_response())
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Scope(t): Scope,
) -> Result<Json<agentd_api::Page<ProviderInfo>>, ApiError> {
    let mut out: Vec<ProviderInfo> = s.rt.list_providers(&t).await?.into_iter().map(provider_info).collect();
    let own: Vec<String> = out.iter().map(|p| p.name.clone()).collect();
    for (name, kind) in s.rt.models().provider_kinds() {
        out.push(ProviderInfo {
            name: name.clone(),
            kind: kind.to_string(),
            source: Source::Server,
            base_url: None,
            api_key: None,
            headers: vec![],
            created_at: None,
            shadowed: own.contains(name),
        });
    }
    Ok(Json(agentd_api::Page::all(out)))
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_provider(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn health(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Json<agentd_api::ProviderHealth>, ApiError> {
    let (detail, error) = match s.rt.check_provider(&t, &name).await? {
        Ok(d) => (Some(d), None),
        Err(e) => (None, Some(e)),
    };
    Ok(Json(agentd_api::ProviderHealth { name, ok: error.is_none(), detail, error }))
}

pub(crate) async fn create_profile(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<agentd_api::CreateModelProfile>,
) -> Result<Response, ApiError> {
    let def = TenantProfile { name: b.name, profile: b.profile, created_at: String::new() };
    let def = s.rt.add_model_profile(&t, def).await?;
    Ok((StatusCode::CREATED, Json(profile_info(def))).into_response())
}

pub(crate) async fn list_profiles(
    State(s): State<AppState>,
    Scope(t): Scope,
) -> Result<Json<agentd_api::Page<ModelProfileInfo>>, ApiError> {
    let mut out: Vec<ModelProfileInfo> = s.rt.list_model_profiles(&t).await?.into_iter().map(profile_info).collect();
    let own: Vec<String> = out.iter().map(|p| p.name.clone()).collect();
    for (name, p) in s.rt.models().profiles() {
        out.push(ModelProfileInfo {
            name: name.clone(),
            profile: p.clone(),
            source: Source::Server,
            created_at: None,
            shadowed: own.contains(name),
        });
    }
    Ok(Json(agentd_api::Page::all(out)))
}

pub(crate) async fn delete_profile(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_model_profile(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/providers", "Add a provider for the tenant (its key a secret reference)", create)
            .body::<api::CreateProvider>()
            .answer::<api::ProviderInfo>(201)
            .admin()
            .audited(),
        Route::get("/v1/providers", "The tenant's providers and the server's", list)
            .answer::<api::Page<api::ProviderInfo>>(200),
        Route::delete("/v1/providers/{name}", "Remove one of the tenant's providers", delete)
            .empty(204)
            .admin()
            .audited(),
        Route::get("/v1/providers/{name}/health", "Whether a provider answers with its credentials", health)
            .answer::<api::ProviderHealth>(200),
        Route::post("/v1/model-profiles", "Add a model profile for the tenant", create_profile)
            .body::<api::CreateModelProfile>()
            .answer::<api::ModelProfileInfo>(201)
            .admin()
            .audited(),
        Route::get("/v1/model-profiles", "The tenant's model profiles and the server's", list_profiles)
            .answer::<api::Page<api::ModelProfileInfo>>(200),
        Route::delete("/v1/model-profiles/{name}", "Remove one of the tenant's model profiles", delete_profile)
            .empty(204)
            .admin()
            .audited(),
    ]
}
