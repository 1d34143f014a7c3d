//! The HTTP face of agentd: `/v1` REST + SSE over the runtime.

mod approvals;
mod auth;
mod browser;
mod console;
mod documents;
mod error;
mod feed;
mod files;
mod keys;
mod kinds;
mod providers;
mod routes;
mod runs;
mod secrets;
mod sessions;
mod sse;
mod teams;
mod templates;
mod tools;
mod wire;

use agentd_core::ErrorCode;
use std::sync::Arc;

use agentd_api as api;
use agentd_runtime::Runtime;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::{Json, Router};
use routes::Route;

pub use browser::BrowserPolicy;
pub use error::ApiError;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub rt: Arc<Runtime>,
    /// Whether `/v1` needs an API key.
    pub auth: bool,
    /// Names and origins browsers may reach the server under.
    pub browser: Arc<BrowserPolicy>,
    /// Each route's least role and whether its changes are audited.
    routes: Arc<routes::Table>,
    /// The OpenAPI document, built once from the route rows.
    openapi: Arc<serde_json::Value>,
}

/// Default largest request body: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// Every route of the server, from each module's rows.
fn all_routes() -> Vec<Route> {
    let mut all = routes();
    for rows in [
        runs::routes(),
        feed::routes(),
        sessions::routes(),
        files::routes(),
        tools::routes(),
        teams::routes(),
        templates::routes(),
        approvals::routes(),
        keys::routes(),
        secrets::routes(),
        providers::routes(),
        kinds::routes(),
    ] {
        all.extend(rows);
    }
    all
}

/// Every route of the API as (method, path), `/v1` included.
pub fn route_table() -> Vec<(&'static str, String)> {
    all_routes().iter().map(|r| (r.op.method, r.op.path.replace("{*", "{"))).collect()
}

/// The OpenAPI document of every route.
pub fn openapi() -> serde_json::Value {
    agentd_api::openapi::document(&routes::build(all_routes()).2)
}

/// Whether the database answers; one that does not answer in 2 s is as
/// unready as one that errs.
async fn database_check(rt: &Runtime) -> agentd_api::Check {
    use agentd_api::Check;
    match tokio::time::timeout(std::time::Duration::from_secs(2), rt.ping()).await {
        Ok(Ok(())) => Check { ok: true, configured: None, error: None },
        Ok(Err(e)) => Check { ok: false, configured: None, error: Some(e.to_string()) },
        Err(_) => Check { ok: false, configured: None, error: Some("the database did not answer within 2 s".into()) },
    }
}

/// When this process started serving (for uptime).
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// `GET /v1/diagnostics`: what `agentd doctor` checks, from the running node.
async fn diagnostics(
    State(s): State<AppState>,
    axum::extract::Extension(caller): axum::extract::Extension<auth::Caller>,
    error::Scope(t): error::Scope,
) -> Result<Json<agentd_api::Diagnostics>, ApiError> {
    use agentd_api::{Check, NamedCheck};
    // Addresses and paths of the server's configuration are for operators
    // (and whoever runs the node without auth); a tenant's admin sees health.
    let operator = caller.principal().is_none_or(|p| p.role == agentd_core::KeyRole::Operator);
    let database = database_check(&s.rt).await;
    let checks = s.rt.models().providers().map(|(name, p)| {
        let (name, p) = (name.clone(), p.clone());
        async move {
            match tokio::time::timeout(std::time::Duration::from_secs(5), p.check()).await {
                Ok(Ok(detail)) if operator => NamedCheck { name, ok: true, detail },
                Ok(Ok(_)) => NamedCheck { name, ok: true, detail: "reachable".into() },
                Ok(Err(e)) if operator => {
                    NamedCheck { name, ok: false, detail: agentd_core::redact::redact(&e.to_string()).into_owned() }
                }
                Ok(Err(e)) => {
                    NamedCheck { name, ok: false, detail: agentd_runtime::tenant_models::server_check_error(&e) }
                }
                Err(_) => NamedCheck { name, ok: false, detail: "no answer within 5 s".into() },
            }
        }
    });
    let providers = futures::future::join_all(checks).await;
    let mcp_servers =
        s.rt.list_mcp_servers(&t)
            .await?
            .into_iter()
            .map(|i| if operator { i } else { agentd_runtime::mcp_servers::as_seen_by_tenant(i) })
            .map(|i| {
                let v = serde_json::to_value(&i).unwrap_or_default();
                let state = v["state"].as_str().unwrap_or("unknown").to_string();
                let detail = match v["error"].as_str() {
                    Some(e) => format!("{state}: {e}"),
                    None => format!("{state}, {} tools", i.tools),
                };
                NamedCheck { name: i.name, ok: state == "ready", detail }
            })
            .collect();
    let sandbox = match s.rt.sandbox_path() {
        Some(p) if operator => Check { ok: true, configured: Some(vec![p.display().to_string()]), error: None },
        Some(_) => Check { ok: true, configured: None, error: None },
        None => Check { ok: false, configured: None, error: Some("bubblewrap is not installed".into()) },
    };
    Ok(Json(agentd_api::Diagnostics {
        version: env!("CARGO_PKG_VERSION").into(),
        node_id: s.rt.node_id().to_string(),
        uptime_secs: STARTED.get().map(|t| t.elapsed().as_secs()).unwrap_or(0),
        auth: if s.auth { "on" } else { "off" }.into(),
        database,
        queued_runs: s.rt.queued_runs().await?,
        active_runs: s.rt.active_runs() as u64,
        providers,
        mcp_servers,
        sandbox,
    }))
}

/// `GET /v1/openapi.json`.
async fn openapi_document(State(s): State<AppState>) -> Json<serde_json::Value> {
    Json((*s.openapi).clone())
}

async fn healthz() -> Json<agentd_api::Health> {
    Json(agentd_api::Health { status: "ok".into() })
}

/// Builds the router with every route and layer; with `auth`, `/v1` needs an API key.
pub fn router(rt: Arc<Runtime>, max_body: usize, auth: bool) -> Router {
    router_with(rt, max_body, auth, BrowserPolicy::default())
}

/// [`router`] with the names and origins browsers may use besides loopback.
pub fn router_with(rt: Arc<Runtime>, max_body: usize, auth: bool, browser: BrowserPolicy) -> Router {
    let (routes, table, ops) = routes::build(all_routes());
    let openapi = Arc::new(agentd_api::openapi::document(&ops));
    let state = AppState { rt, auth, browser: Arc::new(browser), routes: Arc::new(table), openapi };
    STARTED.get_or_init(std::time::Instant::now);
    routes
        .merge(console::routes())
        .fallback(|uri: axum::http::Uri, headers: axum::http::HeaderMap| async move {
            // A person's browser gets the console's page; programs get JSON.
            let browser = headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/html"));
            if browser && !uri.path().starts_with("/v1/") {
                return console::not_found("There is no such page.");
            }
            ApiError::not_found(ErrorCode::RouteNotFound, "no such route").into_response()
        })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                ErrorCode::MethodNotAllowed,
                "method not allowed on this route",
            )
        })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth::authenticate))
        .layer(axum::middleware::from_fn_with_state(state.clone(), browser::guard))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(axum::middleware::from_fn(error::json_refusals))
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
        // gzip for clients that ask (browsers); never for SSE, images or tiny bodies.
        .layer(tower_http::compression::CompressionLayer::new())
        .with_state(state)
}

/// `200` when the database answers and a provider is configured; else `503`
/// with what is missing.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    use agentd_api::Check;
    let database = database_check(&s.rt).await;
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

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/healthz", "The process answers", healthz).answer::<api::Health>(200).open(),
        Route::get("/readyz", "Database and a provider answer; whether auth is on", readyz)
            .answer::<api::Readiness>(200)
            .open(),
        Route::get("/v1/diagnostics", "What `agentd doctor` checks, from this node (admins)", diagnostics)
            .answer::<api::Diagnostics>(200)
            .admin(),
        Route::get("/v1/openapi.json", "This document", openapi_document).empty(200).open(),
    ]
}

/// A page of a listing from up to `limit + 1` rows.
pub(crate) fn page<T: serde::Serialize>(
    rows: Vec<T>,
    limit: usize,
    cursor: impl Fn(&T) -> agentd_api::Cursor,
) -> Json<agentd_api::Page<T>> {
    Json(agentd_api::Page::from_rows(rows, limit, cursor))
}

#[cfg(test)]
mod tests {
    use super::*;
    use agentd_core::KeyRole;
    use axum::http::Method;

    fn role(method: Method, path: &str) -> Option<KeyRole> {
        let (_, table, _) = routes::build(all_routes());
        table.get(&method, path).and_then(|m| m.role)
    }

    /// Each (method, path) has one row.
    #[test]
    fn every_route_is_declared_once() {
        let mut seen = std::collections::HashSet::new();
        for (m, p) in route_table() {
            assert!(seen.insert((m, p.clone())), "{m} {p} is declared twice");
        }
        assert!(seen.len() > 70, "the table lists the whole API");
    }

    #[test]
    fn reads_writes_and_credentials_need_rising_roles() {
        assert_eq!(role(Method::GET, "/v1/runs"), Some(KeyRole::Viewer));
        assert_eq!(role(Method::HEAD, "/v1/runs"), Some(KeyRole::Viewer), "HEAD is GET's");
        assert_eq!(role(Method::POST, "/v1/runs"), Some(KeyRole::Member));
        assert_eq!(role(Method::POST, "/v1/tools/{name}/call"), Some(KeyRole::Member));
        assert_eq!(role(Method::POST, "/v1/template-preview"), Some(KeyRole::Viewer), "a preview is a read");
        assert_eq!(role(Method::GET, "/v1/mcp-servers"), Some(KeyRole::Viewer));
        assert_eq!(role(Method::POST, "/v1/mcp-servers"), Some(KeyRole::Admin));
        assert_eq!(role(Method::DELETE, "/v1/http-tools/{name}"), Some(KeyRole::Admin));
        assert_eq!(role(Method::GET, "/v1/api-keys"), Some(KeyRole::Admin));
        assert_eq!(role(Method::GET, "/v1/secrets"), Some(KeyRole::Admin));
        assert_eq!(role(Method::GET, "/v1/openapi.json"), None, "the document is open");
    }

    #[test]
    fn teams_and_workspace_files_are_audited() {
        let (_, table, _) = routes::build(all_routes());
        let audited = |m: Method, p: &str| table.get(&m, p).is_some_and(|r| r.audited);
        assert!(audited(Method::PUT, "/v1/teams/{name}"));
        assert!(audited(Method::PUT, "/v1/sessions/{id}/files/{*path}"));
        assert!(audited(Method::POST, "/v1/sessions/{id}/rename-file"));
        assert!(!audited(Method::DELETE, "/v1/sessions/{id}"), "a session has its own journal");
        assert!(!audited(Method::POST, "/v1/runs"));
        // Every change to what holds credentials or runs code is audited.
        for (m, p) in route_table() {
            let admin_area = ["/v1/http-tools", "/v1/mcp-servers", "/v1/api-keys", "/v1/secrets", "/v1/providers"];
            if m != "get" && admin_area.iter().any(|a| p.starts_with(a)) {
                let path = p.replace("{path}", "{*path}");
                let method = Method::from_bytes(m.to_uppercase().as_bytes()).unwrap();
                assert!(audited(method, &path), "{m} {p} is audited");
            }
        }
    }
}
