//! The HTTP face of agentd: `/v1` REST + SSE over the runtime.

mod approvals;
mod auth;
mod error;
mod keys;
mod runs;
mod sessions;
mod sse;
mod templates;
mod tools;

use agentd_core::ErrorCode;
use std::sync::Arc;

use agentd_runtime::Runtime;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};

pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub rt: Arc<Runtime>,
    /// Whether `/v1` needs an API key.
    pub auth: bool,
}

/// Default largest request body: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Builds the router with every route and layer; with `auth`, `/v1` needs an API key.
pub fn router(rt: Arc<Runtime>, max_body: usize, auth: bool) -> Router {
    let state = AppState { rt, auth };
    let v1 = Router::new()
        .route("/runs", post(runs::create).get(runs::list))
        .route("/runs/{id}", get(runs::get_one))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/runs/{id}/events", get(runs::events))
        .route("/sessions", post(sessions::create).get(sessions::list))
        .route("/sessions/{id}", get(sessions::get_one).delete(sessions::delete))
        .route("/sessions/{id}/runs", get(sessions::runs))
        .route("/tools", get(tools::list))
        .route("/tools/{name}/call", post(tools::call))
        .route("/tool-calls", get(tools::list_calls))
        .route("/http-tools", post(tools::create_http).get(tools::list_http))
        .route("/http-tools/{name}", axum::routing::delete(tools::delete_http))
        .route("/mcp-servers", post(tools::add_mcp).get(tools::list_mcp))
        .route("/mcp-servers/{name}", axum::routing::delete(tools::delete_mcp))
        .route("/mcp-servers/{name}/restart", post(tools::restart_mcp))
        .route("/agents", post(tools::create_agent).get(tools::list_agents))
        .route("/agents/{name}", axum::routing::delete(tools::delete_agent))
        .route("/skills", post(tools::create_skill).get(tools::list_skills))
        .route("/skills/{name}", get(tools::get_skill).put(tools::replace_skill).delete(tools::delete_skill))
        .route("/prompt-templates", post(templates::create).get(templates::list))
        .route("/prompt-templates/{name}", get(templates::get_one).put(templates::replace).delete(templates::delete))
        .route("/approvals", get(approvals::list))
        .route("/approvals/{id}", get(approvals::get_one).post(approvals::answer))
        .route("/api-keys", post(keys::create).get(keys::list))
        .route("/api-keys/{id}", get(keys::get_one).delete(keys::revoke))
        .route("/audit", get(keys::audit));
    Router::new()
        .route("/healthz", get(|| async { Json(agentd_api::Health { status: "ok".into() }) }))
        .route("/readyz", get(readyz))
        .nest("/v1", v1)
        .fallback(|| async { ApiError::not_found(ErrorCode::RouteNotFound, "no such route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(error::reject_nul))
        .layer(axum::middleware::from_fn(error::log_failures))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(|_| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                ErrorCode::InternalError,
                "the server hit an unexpected error",
            )
            .into_response()
        }))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state)
}

/// `200` when the database answers and a provider is configured; else `503`
/// with what is missing.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    use agentd_api::Check;
    // A store that does not answer in time is as unready as one that errs.
    let database = match tokio::time::timeout(std::time::Duration::from_secs(2), s.rt.ping()).await {
        Ok(Ok(())) => Check { ok: true, configured: None, error: None },
        Ok(Err(e)) => Check { ok: false, configured: None, error: Some(e.to_string()) },
        Err(_) => Check { ok: false, configured: None, error: Some("the database did not answer within 2 s".into()) },
    };
    let names = s.rt.models().provider_names();
    let providers = Check {
        ok: !names.is_empty(),
        error: names.is_empty().then(|| {
            "no provider configured: set OPENAI_API_KEY (and OPENAI_BASE_URL) or add [providers.*] to agentd.toml"
                .into()
        }),
        configured: Some(names),
    };
    let mut missing = vec![];
    if !database.ok {
        missing.push("database".to_string());
    }
    if !providers.ok {
        missing.push("provider".to_string());
    }
    let ready = missing.is_empty();
    let code = if ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    let status = if ready { "ready" } else { "not_ready" }.to_string();
    let checks = agentd_api::ReadinessChecks { database, providers };
    let auth = if s.auth { "on" } else { "off" }.to_string();
    (code, Json(agentd_api::Readiness { status, missing, checks, auth }))
}

/// A page of a listing from up to `limit + 1` rows.
pub(crate) fn page<T: serde::Serialize>(
    rows: Vec<T>,
    limit: usize,
    cursor: impl Fn(&T) -> agentd_api::Cursor,
) -> Json<agentd_api::Page<T>> {
    Json(agentd_api::Page::from_rows(rows, limit, cursor))
}
