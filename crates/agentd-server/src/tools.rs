//! `/v1/tools`: list tools, and call one without a model.

use crate::routes::Route;
use agentd_api as api;

use agentd_core::ContentPart;
use agentd_core::ErrorCode;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::Value;

use crate::AppState;
use crate::error::{ApiError, ApiJson, ApiQuery, Scope, limit};

/// Every tool available to the caller, with source and schema.
/// `?agent=NAME` lists that agent's tools.
pub(crate) async fn list(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiQuery(p): ApiQuery<api::ToolsQuery>,
) -> Result<Json<agentd_api::Page<agentd_api::ToolInfo>>, ApiError> {
    let set = match p.agent {
        Some(name) => s.rt.toolset_for_agent(&t, &name).await?,
        None => s.rt.toolset(&t).await?,
    };
    let data = set
        .specs
        .iter()
        .map(|t| agentd_api::ToolInfo {
            name: t.name.clone(),
            source: set.source(&s.rt, &t.name).to_string(),
            description: t.description.clone(),
            input_schema: t.input_schema.clone(),
        })
        .collect();
    Ok(Json(agentd_api::Page::all(data)))
}

/// Runs a tool with JSON arguments validated against its schema.
/// `?format=json` also parses a JSON text result into `json`.
pub(crate) async fn call(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiQuery(p): ApiQuery<api::CallToolQuery>,
    ApiJson(b): ApiJson<agentd_api::CallTool>,
) -> Result<Response, ApiError> {
    let out = s.rt.call_tool_direct(&t, &name, b.arguments, b.session_id.as_deref()).await?;
    let mut v = agentd_api::ToolCallResult {
        content: out.content,
        is_error: out.is_error,
        sandbox: out.sandbox,
        error: None,
        json: None,
    };
    // A refusal to run unfenced also carries the machine-readable code.
    if let Some(ContentPart::Text { text }) = v.content.first()
        && v.is_error
        && text.starts_with(agentd_core::Refusal::SandboxUnavailable.as_str())
    {
        v.error =
            Some(agentd_api::ToolRefusal { code: agentd_core::Refusal::SandboxUnavailable, message: text.clone() });
    }
    if p.format.as_deref() == Some("json") {
        let text: String = v
            .content
            .iter()
            .filter_map(|c| match c {
                ContentPart::Text { text } => Some(text.as_str()),
                _ => None,
            })
            .collect();
        v.json = Some(serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    Ok(Json(v).into_response())
}

/// An HTTP tool as the API shows it: header values (credentials) by name only.
fn shown(mut def: agentd_core::HttpToolDef) -> agentd_core::HttpToolDef {
    // Plain values are the tenant's credentials: names only. A secret
    // reference is a name already, so it stays.
    for v in def.headers.values_mut() {
        if let agentd_core::HeaderSpec::Value(_) = v {
            *v = agentd_core::HeaderSpec::Value("<redacted>".into());
        }
    }
    def
}

/// Registers an HTTP tool for the caller's tenant.
pub(crate) async fn create_http(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<agentd_api::CreateHttpTool>,
) -> Result<Response, ApiError> {
    let def = agentd_core::HttpToolDef {
        name: b.name,
        description: b.description,
        input_schema: b.input_schema,
        url: b.url,
        headers: b.headers,
        secret_headers: b.secret_headers,
        timeout_ms: b.timeout_ms,
        created_at: String::new(),
    };
    let def = s.rt.create_http_tool(&t, &def).await?;
    Ok((StatusCode::CREATED, Json(shown(def))).into_response())
}

pub(crate) async fn list_http(
    State(s): State<AppState>,
    Scope(t): Scope,
) -> Result<Json<agentd_api::Page<agentd_api::HttpToolDef>>, ApiError> {
    let defs: Vec<_> = s.rt.list_http_tools(&t).await?.into_iter().map(shown).collect();
    Ok(Json(agentd_api::Page::all(defs)))
}

pub(crate) async fn delete_http(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_http_tool(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Adds an MCP server owned by the caller's tenant; it connects in the background.
pub(crate) async fn add_mcp(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<agentd_api::CreateMcpServer>,
) -> Result<Response, ApiError> {
    let (config, refs) = crate::wire::mcp_config_in(b.config);
    let Some(info) = s.rt.add_mcp_server(&t, &b.name, config, refs).await? else {
        let msg = format!("MCP server {:?} was stored but is not listed; it is picked up within a second", b.name);
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, agentd_core::ErrorCode::InternalError, msg));
    };
    Ok((StatusCode::CREATED, Json(crate::wire::mcp_info(info))).into_response())
}

/// Whether the caller sees the server's own configuration (operators, and
/// anyone with auth off).
pub(crate) fn sees_server_config(caller: &crate::auth::Caller) -> bool {
    caller.principal().is_none_or(|p| p.role == agentd_core::KeyRole::Operator)
}

pub(crate) async fn list_mcp(
    State(s): State<AppState>,
    axum::extract::Extension(caller): axum::extract::Extension<crate::auth::Caller>,
    Scope(t): Scope,
) -> Result<Json<agentd_api::Page<agentd_api::McpServerInfo>>, ApiError> {
    let mut all = s.rt.list_mcp_servers(&t).await?;
    if !sees_server_config(&caller) {
        all = all.into_iter().map(agentd_runtime::mcp_servers::as_seen_by_tenant).collect();
    }
    Ok(Json(agentd_api::Page::all(all.into_iter().map(crate::wire::mcp_info).collect())))
}

pub(crate) async fn delete_mcp(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.remove_mcp_server(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn restart_mcp(
    State(s): State<AppState>,
    axum::extract::Extension(caller): axum::extract::Extension<crate::auth::Caller>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let Some(mut info) = s.rt.restart_mcp_server(&t, &name).await? else {
        let msg = format!("no MCP server named {name:?}");
        return Err(ApiError::not_found(agentd_core::ErrorCode::McpServerNotFound, msg));
    };
    if !sees_server_config(&caller) {
        info = agentd_runtime::mcp_servers::as_seen_by_tenant(info);
    }
    Ok((StatusCode::ACCEPTED, Json(crate::wire::mcp_info(info))).into_response())
}

/// A skill from an upload, checked: SKILL.md parses, file paths stay relative, sizes bounded.
fn skill_from(b: agentd_api::UploadSkill) -> Result<agentd_tools::skills::Skill, ApiError> {
    let bad = |m: String| ApiError::bad_request(ErrorCode::InvalidSkill, m);
    let mut skill = agentd_tools::skills::parse_skill(&b.content).map_err(bad)?;
    skill.files = b.files;
    agentd_tools::skills::check_tenant_skill(skill).map_err(bad)
}

/// What an upload answers: the skill's name, description (masked) and source.
fn skill_answer(status: StatusCode, skill: &agentd_tools::skills::Skill) -> Response {
    let description = agentd_core::redact::redact(&skill.description).into_owned();
    let body = agentd_api::SkillUploaded { name: skill.name.clone(), description, source: "tenant".into() };
    (status, Json(body)).into_response()
}

/// Uploads a skill for the caller's tenant.
pub(crate) async fn create_skill(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<agentd_api::UploadSkill>,
) -> Result<Response, ApiError> {
    let skill = skill_from(b)?;
    s.rt.create_skill(&t, &skill).await?;
    Ok(skill_answer(StatusCode::CREATED, &skill))
}

/// Skills the caller's agent can use (name, description, source), plus
/// configured skills that failed to load.
pub(crate) async fn list_skills(
    State(s): State<AppState>,
    Scope(t): Scope,
) -> Result<Json<agentd_api::SkillList>, ApiError> {
    let data =
        s.rt.skills_for(&t)
            .await?
            .into_iter()
            .map(|k| agentd_api::SkillSummary {
                files: k.files.keys().cloned().collect(),
                name: k.name,
                description: k.description,
                source: k.source,
            })
            .collect();
    let errors =
        s.rt.skill_errors()
            .into_iter()
            .map(|e| agentd_api::SkillLoadError { path: e.path, reason: e.reason })
            .collect();
    Ok(Json(agentd_api::SkillList { data, errors, next_cursor: None }))
}

pub(crate) async fn get_skill(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Json<agentd_api::Skill>, ApiError> {
    let skill = s.rt.skills_for(&t).await?.into_iter().find(|k| k.name == name);
    let k = skill.ok_or_else(|| ApiError::not_found(ErrorCode::SkillNotFound, format!("no skill named {name:?}")))?;
    Ok(Json(agentd_api::Skill {
        name: k.name,
        description: k.description,
        body: k.body,
        files: k.files,
        source: k.source,
    }))
}

/// Replaces an uploaded skill in one statement (the name in SKILL.md must
/// match the path): readers see the old skill or the new one, never neither.
pub(crate) async fn replace_skill(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<agentd_api::UploadSkill>,
) -> Result<Response, ApiError> {
    let skill = skill_from(b)?;
    if skill.name != name {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidSkill,
            format!("SKILL.md names {:?}, the path {name:?}", skill.name),
        ));
    }
    s.rt.replace_skill(&t, &skill).await?;
    Ok(skill_answer(StatusCode::OK, &skill))
}

pub(crate) async fn delete_skill(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_skill(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Direct tool calls, newest first (`?session_id=&after=&limit=`).
pub(crate) async fn list_calls(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiQuery(p): ApiQuery<api::ToolCallsQuery>,
) -> Result<Response, ApiError> {
    let limit = limit(p.limit, 20, 100)?;
    let page = agentd_runtime::Page { after: p.after, limit: limit + 1 };
    let rows: Vec<agentd_api::DirectCall> = s.rt.list_tool_calls(&t, p.session_id.as_deref(), &page).await?;
    Ok(crate::page(rows, limit as usize, |c| agentd_api::Cursor::Id(c.id.clone())).into_response())
}

/// Defines an agent for the caller's tenant: prompt, model, step limit, and
/// the tools and skills it may use (exact names or globs).
pub(crate) async fn create_agent(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(def): ApiJson<agentd_api::AgentDef>,
) -> Result<Response, ApiError> {
    let created = s.rt.create_agent(&t, &def).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

/// Configured agents (by name) and the tenant's own (whole).
pub(crate) async fn list_agents(State(s): State<AppState>, Scope(t): Scope) -> Result<Response, ApiError> {
    let data = s.rt.list_agents(&t).await?;
    Ok(Json(agentd_api::Page::all(data)).into_response())
}

/// Replaces a tenant agent's definition (the body names the same agent).
pub(crate) async fn replace_agent(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(def): ApiJson<agentd_api::AgentDef>,
) -> Result<Response, ApiError> {
    if def.name != name {
        return Err(ApiError::bad_request(
            ErrorCode::InvalidRequest,
            format!("the body names {:?}, the path {name:?}", def.name),
        ));
    }
    Ok(Json(s.rt.replace_agent(&t, &def).await?).into_response())
}

pub(crate) async fn delete_agent(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_agent(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Every version of a tenant agent.
pub(crate) async fn agent_versions(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let data = s.rt.agent_versions(&t, &name).await?;
    Ok(Json(agentd_api::Page::all(data)).into_response())
}

/// A tenant agent as one portable file.
pub(crate) async fn export_agent(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let bundle = s.rt.export_agent(&t, &name).await?;
    let file = format!("attachment; filename=\"{name}.agent.json\"");
    let mut resp = Json(bundle).into_response();
    if let Ok(v) = axum::http::HeaderValue::from_str(&file) {
        resp.headers_mut().insert(axum::http::header::CONTENT_DISPOSITION, v);
    }
    Ok(resp)
}

/// Takes an exported agent back.
pub(crate) async fn import_agent(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiQuery(p): ApiQuery<api::ImportQuery>,
    ApiJson(bundle): ApiJson<agentd_api::AgentExport>,
) -> Result<Response, ApiError> {
    let replace = matches!(p.replace.as_deref(), Some("true" | "1"));
    let done = s.rt.import_agent(&t, &bundle, replace).await?;
    Ok((StatusCode::CREATED, Json(done)).into_response())
}

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::get("/v1/tools", "Tools the caller can use", list)
            .query::<api::ToolsQuery>()
            .answer::<api::Page<api::ToolInfo>>(200),
        Route::post("/v1/tools/{name}/call", "Call a tool without a model", call)
            .query::<api::CallToolQuery>()
            .body::<api::CallTool>()
            .answer::<api::ToolCallResult>(200),
        Route::get("/v1/tool-calls", "Direct tool calls, newest first", list_calls)
            .query::<api::ToolCallsQuery>()
            .answer::<api::Page<api::DirectCall>>(200),
        Route::post("/v1/http-tools", "Register an HTTP tool", create_http)
            .body::<api::CreateHttpTool>()
            .answer::<api::HttpToolDef>(201)
            .admin()
            .audited(),
        Route::get("/v1/http-tools", "The tenant's HTTP tools", list_http).answer::<api::Page<api::HttpToolDef>>(200),
        Route::delete("/v1/http-tools/{name}", "Remove an HTTP tool", delete_http).empty(204).admin().audited(),
        Route::post("/v1/mcp-servers", "Add an MCP server", add_mcp)
            .body::<api::CreateMcpServer>()
            .answer::<api::McpServerInfo>(201)
            .admin()
            .audited(),
        Route::get("/v1/mcp-servers", "MCP servers and their state", list_mcp)
            .answer::<api::Page<api::McpServerInfo>>(200),
        Route::delete("/v1/mcp-servers/{name}", "Remove an MCP server", delete_mcp).empty(204).admin().audited(),
        Route::post("/v1/mcp-servers/{name}/restart", "Restart an MCP server", restart_mcp)
            .answer::<api::McpServerInfo>(202)
            .admin()
            .audited(),
        Route::post("/v1/agents", "Define an agent", create_agent)
            .body::<api::AgentDef>()
            .answer::<api::AgentDef>(201)
            .audited(),
        Route::get("/v1/agents", "Configured and tenant agents", list_agents)
            .answer::<api::Page<api::AgentListing>>(200),
        Route::put("/v1/agents/{name}", "Replace a tenant agent's definition", replace_agent)
            .body::<api::AgentDef>()
            .answer::<api::AgentDef>(200)
            .audited(),
        Route::get("/v1/agents/{name}/versions", "Every version of a tenant agent, oldest first", agent_versions)
            .answer::<api::Page<api::AgentVersion>>(200),
        Route::get(
            "/v1/agents/{name}/export",
            "A tenant agent as one portable file (with its skills and template)",
            export_agent,
        )
        .answer::<api::AgentExport>(200),
        Route::post(
            "/v1/agents/import",
            "Take an exported agent back (409 on a name clash unless `replace=true`)",
            import_agent,
        )
        .query::<api::ImportQuery>()
        .body::<api::AgentExport>()
        .answer::<api::AgentImported>(201)
        .audited(),
        Route::delete("/v1/agents/{name}", "Remove a tenant agent", delete_agent).empty(204).audited(),
        Route::post("/v1/skills", "Upload a skill", create_skill)
            .body::<api::UploadSkill>()
            .answer::<api::SkillUploaded>(201)
            .audited(),
        Route::get("/v1/skills", "Skills the caller's agent can use", list_skills).answer::<api::SkillList>(200),
        Route::get("/v1/skills/{name}", "One skill, whole", get_skill).answer::<api::Skill>(200),
        Route::put("/v1/skills/{name}", "Replace an uploaded skill", replace_skill)
            .body::<api::UploadSkill>()
            .answer::<api::SkillUploaded>(200)
            .audited(),
        Route::delete("/v1/skills/{name}", "Remove an uploaded skill", delete_skill).empty(204).audited(),
    ]
}
