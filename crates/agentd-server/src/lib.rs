//! The HTTP face of agentd: `/v1` REST + SSE over the runtime.

mod approvals;
mod auth;
mod browser;
mod console;
mod error;
mod feed;
mod files;
mod keys;
mod providers;
mod runs;
mod secrets;
mod sessions;
mod sse;
mod teams;
mod templates;
mod tools;

use agentd_core::ErrorCode;
use std::sync::Arc;

use agentd_runtime::Runtime;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};

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
}

/// Default largest request body: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1 << 20;

/// The `/v1` routes, each recorded as it is added: the OpenAPI document is
/// checked against this table, so a route cannot exist undocumented.
struct V1 {
    router: Router<AppState>,
    table: Vec<(&'static str, String)>,
}

impl V1 {
    fn add<H, T>(self, method: &'static str, path: &'static str, h: H) -> Self
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        self.route(method, path, axum::routing::on(method_filter(method), h))
    }

    /// Like [`V1::add`], with its own largest body (file uploads).
    fn add_large<H, T>(self, method: &'static str, path: &'static str, max: usize, h: H) -> Self
    where
        H: axum::handler::Handler<T, AppState>,
        T: 'static,
    {
        self.route(method, path, axum::routing::on(method_filter(method), h).layer(DefaultBodyLimit::max(max)))
    }

    fn route(mut self, method: &'static str, path: &'static str, r: axum::routing::MethodRouter<AppState>) -> Self {
        // A catch-all (`{*path}`) is one path parameter in the document.
        self.table.push((method, path.replace("{*", "{")));
        self.router = self.router.route(path, r);
        self
    }
}

fn method_filter(method: &str) -> axum::routing::MethodFilter {
    match method {
        "get" => axum::routing::MethodFilter::GET,
        "post" => axum::routing::MethodFilter::POST,
        "put" => axum::routing::MethodFilter::PUT,
        _ => axum::routing::MethodFilter::DELETE,
    }
}

fn v1_routes() -> V1 {
    V1 { router: Router::new(), table: vec![] }
        .add("post", "/runs", runs::create)
        .add("get", "/runs", runs::list)
        .add("get", "/runs/{id}", runs::get_one)
        .add("post", "/runs/{id}/cancel", runs::cancel)
        .add("get", "/runs/{id}/events", runs::events)
        .add("get", "/runs/{id}/children", runs::children)
        .add("post", "/runs/{id}/messages", runs::inject)
        .add("get", "/runs/{id}/context", runs::context)
        .add("get", "/events", feed::events)
        .add("post", "/sessions", sessions::create)
        .add("get", "/sessions", sessions::list)
        .add("get", "/sessions/{id}", sessions::get_one)
        .add("delete", "/sessions/{id}", sessions::delete)
        .add("get", "/sessions/{id}/runs", sessions::runs)
        .add("get", "/sessions/{id}/files", files::root)
        .add("get", "/sessions/{id}/files/{*path}", files::get)
        .add_large("put", "/sessions/{id}/files/{*path}", agentd_runtime::files::MAX_FILE, files::put)
        .add("delete", "/sessions/{id}/files/{*path}", files::delete)
        .add("post", "/sessions/{id}/rename-file", files::rename)
        .add("get", "/tools", tools::list)
        .add("post", "/tools/{name}/call", tools::call)
        .add("get", "/tool-calls", tools::list_calls)
        .add("post", "/http-tools", tools::create_http)
        .add("get", "/http-tools", tools::list_http)
        .add("delete", "/http-tools/{name}", tools::delete_http)
        .add("post", "/mcp-servers", tools::add_mcp)
        .add("get", "/mcp-servers", tools::list_mcp)
        .add("delete", "/mcp-servers/{name}", tools::delete_mcp)
        .add("post", "/mcp-servers/{name}/restart", tools::restart_mcp)
        .add("post", "/agents", tools::create_agent)
        .add("get", "/agents", tools::list_agents)
        .add("put", "/agents/{name}", tools::replace_agent)
        .add("get", "/agents/{name}/versions", tools::agent_versions)
        .add("get", "/agents/{name}/export", tools::export_agent)
        .add("post", "/agents/import", tools::import_agent)
        .add("delete", "/agents/{name}", tools::delete_agent)
        .add("post", "/teams", teams::create)
        .add("get", "/teams", teams::list)
        .add("get", "/teams/{name}", teams::get_one)
        .add("put", "/teams/{name}", teams::replace)
        .add("delete", "/teams/{name}", teams::delete)
        .add("post", "/teams/{name}/runs", teams::run)
        .add("get", "/teams/{name}/blackboard", teams::blackboard)
        .add("post", "/teams/{name}/blackboard", teams::post)
        .add("post", "/skills", tools::create_skill)
        .add("get", "/skills", tools::list_skills)
        .add("get", "/skills/{name}", tools::get_skill)
        .add("put", "/skills/{name}", tools::replace_skill)
        .add("delete", "/skills/{name}", tools::delete_skill)
        .add("post", "/prompt-templates", templates::create)
        .add("get", "/prompt-templates", templates::list)
        .add("get", "/prompt-templates/{name}", templates::get_one)
        .add("put", "/prompt-templates/{name}", templates::replace)
        .add("delete", "/prompt-templates/{name}", templates::delete)
        .add("post", "/template-preview", templates::preview)
        .add("get", "/approvals", approvals::list)
        .add("get", "/approvals/{id}", approvals::get_one)
        .add("post", "/approvals/{id}", approvals::answer)
        .add("post", "/api-keys", keys::create)
        .add("get", "/api-keys", keys::list)
        .add("get", "/api-keys/{id}", keys::get_one)
        .add("delete", "/api-keys/{id}", keys::revoke)
        .add("get", "/audit", keys::audit)
        .add("get", "/usage", keys::usage)
        .add("put", "/orgs/{org}/limits", keys::put_limits)
        .add("get", "/orgs/{org}/limits", keys::get_limits)
        .add("put", "/secrets/{name}", secrets::put)
        .add("get", "/secrets", secrets::list)
        .add("delete", "/secrets/{name}", secrets::delete)
        .add("post", "/providers", providers::create)
        .add("get", "/providers", providers::list)
        .add("delete", "/providers/{name}", providers::delete)
        .add("get", "/providers/{name}/health", providers::health)
        .add("post", "/model-profiles", providers::create_profile)
        .add("get", "/model-profiles", providers::list_profiles)
        .add("delete", "/model-profiles/{name}", providers::delete_profile)
        .add("get", "/diagnostics", diagnostics)
        .add("get", "/openapi.json", openapi_document)
}

/// Every route of the API as (method, path), `/v1` included.
pub fn route_table() -> Vec<(&'static str, String)> {
    let mut t: Vec<(&'static str, String)> = vec![("get", "/healthz".into()), ("get", "/readyz".into())];
    t.extend(v1_routes().table.into_iter().map(|(m, p)| (m, format!("/v1{p}"))));
    t
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
async fn openapi_document() -> Json<serde_json::Value> {
    Json(agentd_api::openapi::document())
}

/// Builds the router with every route and layer; with `auth`, `/v1` needs an API key.
pub fn router(rt: Arc<Runtime>, max_body: usize, auth: bool) -> Router {
    router_with(rt, max_body, auth, BrowserPolicy::default())
}

/// [`router`] with the names and origins browsers may use besides loopback.
pub fn router_with(rt: Arc<Runtime>, max_body: usize, auth: bool, browser: BrowserPolicy) -> Router {
    let state = AppState { rt, auth, browser: Arc::new(browser) };
    STARTED.get_or_init(std::time::Instant::now);
    let v1 = v1_routes().router;
    Router::new()
        .route("/healthz", get(|| async { Json(agentd_api::Health { status: "ok".into() }) }))
        .route("/readyz", get(readyz))
        .nest("/v1", v1)
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
    /// The document names exactly the routes the router has.
    #[test]
    fn every_route_is_in_the_openapi_document_and_back() {
        let doc = agentd_api::openapi::document();
        let mut documented: Vec<(String, String)> = vec![];
        for (path, ops) in doc["paths"].as_object().into_iter().flatten() {
            for method in ops.as_object().into_iter().flatten().map(|(m, _)| m) {
                documented.push((method.clone(), path.clone()));
            }
        }
        let mut routed: Vec<(String, String)> =
            super::route_table().into_iter().map(|(m, p)| (m.to_string(), p)).collect();
        documented.sort();
        routed.sort();
        assert_eq!(routed, documented);
    }
}
