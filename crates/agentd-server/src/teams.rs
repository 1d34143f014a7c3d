//! `/v1/teams`: teams, their runs and their blackboards.

use crate::routes::Route;
use agentd_api as api;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::{ApiError, ApiJson, Scope};

pub(crate) async fn create(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(def): ApiJson<agentd_api::TeamDef>,
) -> Result<Response, ApiError> {
    let created = s.rt.create_team(&t, &def).await?;
    Ok((StatusCode::CREATED, Json(created)).into_response())
}

pub(crate) async fn list(State(s): State<AppState>, Scope(t): Scope) -> Result<Response, ApiError> {
    let data: Vec<agentd_api::TeamDef> = s.rt.list_teams(&t).await?;
    Ok(Json(agentd_api::Page::all(data)).into_response())
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.rt.get_team(&t, &name).await?).into_response())
}

pub(crate) async fn replace(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(def): ApiJson<agentd_api::TeamDef>,
) -> Result<Response, ApiError> {
    if def.name != name {
        return Err(ApiError::bad_request(
            agentd_core::ErrorCode::InvalidRequest,
            format!("the body names {:?}, the path {name:?}", def.name),
        ));
    }
    let replaced = s.rt.replace_team(&t, &def).await?;
    Ok(Json(replaced).into_response())
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_team(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub(crate) async fn run(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(body): ApiJson<agentd_api::CreateTeamRun>,
) -> Result<Response, ApiError> {
    let run = s.rt.create_team_run(&t, &name, &body.input).await?;
    Ok((StatusCode::ACCEPTED, Json(run)).into_response())
}

pub(crate) async fn blackboard(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let data: Vec<agentd_api::BlackboardEntry> = s.rt.blackboard(&t, &name).await?;
    Ok(Json(agentd_api::Page::all(data)).into_response())
}

pub(crate) async fn post(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<agentd_api::PostBlackboard>,
) -> Result<Response, ApiError> {
    let author = b.author.as_deref().filter(|a| !a.trim().is_empty()).unwrap_or("user");
    let e = s.rt.post_blackboard(&t, &name, author, &b.kind, &b.content, b.run_id).await?;
    Ok((StatusCode::CREATED, Json(e)).into_response())
}

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/teams", "Define a team", create).body::<api::TeamDef>().answer::<api::TeamDef>(201).audited(),
        Route::get("/v1/teams", "The tenant's teams", list).answer::<api::Page<api::TeamDef>>(200),
        Route::get("/v1/teams/{name}", "One team", get_one).answer::<api::TeamDef>(200),
        Route::put("/v1/teams/{name}", "Replace a team (runs already started keep theirs)", replace)
            .body::<api::TeamDef>()
            .answer::<api::TeamDef>(200)
            .audited(),
        Route::delete("/v1/teams/{name}", "Remove a team", delete).empty(204).audited(),
        Route::post("/v1/teams/{name}/runs", "Run the team on an input (a parent run with a child per member)", run)
            .body::<api::CreateTeamRun>()
            .answer::<api::Run>(202)
            .audited(),
        Route::get("/v1/teams/{name}/blackboard", "The team's blackboard, oldest first", blackboard)
            .answer::<api::Page<api::BlackboardEntry>>(200),
        Route::post("/v1/teams/{name}/blackboard", "Add an entry to the team's blackboard", post)
            .body::<api::PostBlackboard>()
            .answer::<api::BlackboardEntry>(201)
            .audited(),
    ]
}
