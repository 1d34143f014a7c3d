//! `/v1/runs` handlers.

use crate::routes::Route;
use agentd_api as api;

use agentd_core::ErrorCode;
use agentd_core::RunStatus;
use agentd_runtime::CreateRun;
use agentd_runtime::{EventQuery, Page, RunFilter};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ApiJson, ApiQuery, MaybeJson, Scope, limit};
use crate::{AppState, page, sse};

pub(crate) async fn create(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiJson(b): ApiJson<agentd_api::CreateRun>,
) -> Result<Response, ApiError> {
    let input = match (b.input, b.template) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                ErrorCode::InvalidRequest,
                "give either `input` or `template`, not both",
            ));
        }
        (None, Some(name)) => {
            s.rt.render_template(&t, &name, b.arguments.as_ref().unwrap_or(&serde_json::Value::Null)).await?
        }
        (Some(i), None) => i,
        (None, None) => {
            return Err(ApiError::bad_request(
                ErrorCode::InputRequired,
                "give `input` (or `template` with `arguments`)",
            ));
        }
    };
    let images = agentd_runtime::images::parse(&b.images)?;
    let req = CreateRun {
        input,
        images,
        tool_choice: b.tool_choice,
        arguments: b.arguments,
        session_id: b.session_id,
        model: b.model,
        max_steps: b.max_steps,
        if_busy: b.if_busy,
        agent: b.agent,
    };
    let created = s.rt.create_run(&t, req, b.stream).await?;
    let (run, rx) = (created.run, created.live);
    if !b.stream {
        let body = agentd_api::RunCreated { run, steered: created.steered };
        return Ok((StatusCode::ACCEPTED, Json(body)).into_response());
    }
    let id = run.id.clone();
    let mut resp = sse::run_events(s.rt.clone(), t, id.clone(), 0, rx).into_response();
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-run-id", v);
    }
    Ok(resp)
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    Ok(Json(s.rt.get_run(&t, &id).await?).into_response())
}

pub(crate) async fn list(
    State(s): State<AppState>,
    Scope(t): Scope,
    ApiQuery(p): ApiQuery<api::RunsQuery>,
) -> Result<Response, ApiError> {
    let status = match p.status {
        Some(v) => Some(
            RunStatus::parse(&v)
                .ok_or_else(|| ApiError::bad_request(ErrorCode::InvalidQuery, format!("unknown status {v:?}")))?,
        ),
        None => None,
    };
    let time = |name: &str, v: &Option<String>| -> Result<Option<String>, ApiError> {
        v.as_ref()
            .map(|v| {
                agentd_runtime::normalize_time(v).ok_or_else(|| {
                    ApiError::bad_request(
                        ErrorCode::InvalidRequest,
                        format!("`{name}` must be an RFC 3339 time or a date"),
                    )
                })
            })
            .transpose()
    };
    let filter = RunFilter {
        session_id: p.session_id,
        status,
        agent: p.agent,
        model: p.model,
        from: time("from", &p.from)?,
        to: time("to", &p.to)?,
    };
    list_runs(&s, &t, filter, api::PageQuery { after: p.after, limit: p.limit }).await
}

pub(crate) async fn list_runs(
    s: &AppState,
    t: &agentd_core::Tenant,
    filter: RunFilter,
    p: api::PageQuery,
) -> Result<Response, ApiError> {
    let limit = limit(p.limit, 20, 100)?;
    let rows = s.rt.list_runs(t, &filter, &Page { after: p.after, limit: limit + 1 }).await?;
    Ok(page(rows, limit as usize, |r| agentd_api::Cursor::Id(r.id.clone())).into_response())
}

pub(crate) async fn cancel(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    MaybeJson(body): MaybeJson<agentd_api::CancelRun>,
) -> Result<Response, ApiError> {
    let reason = body.and_then(|b| b.reason);
    Ok(Json(s.rt.cancel(&t, &id, reason).await?).into_response())
}

/// The runs a run delegated to.
pub(crate) async fn children(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let rows = s.rt.run_children(&t, &id).await?;
    Ok(page(rows, usize::MAX, |r| agentd_api::Cursor::Id(r.id.clone())).into_response())
}

/// Adds a user message to a running or waiting run.
pub(crate) async fn inject(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    ApiJson(body): ApiJson<agentd_api::InjectMessage>,
) -> Result<Response, ApiError> {
    let (run, queued_seq) = s.rt.inject(&t, &id, &body.input).await?;
    Ok((StatusCode::ACCEPTED, Json(agentd_api::Injected { run, queued_seq })).into_response())
}

/// The journal as a JSON page, or (with `Accept: text/event-stream`) as SSE.
pub(crate) async fn events(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    headers: HeaderMap,
    ApiQuery(p): ApiQuery<api::EventsQuery>,
) -> Result<Response, ApiError> {
    // Existence check first, so unknown runs are a JSON 404 in both modes.
    s.rt.get_run(&t, &id).await?;
    let mut after = match p.after {
        Some(n) if n < 0 => return Err(ApiError::bad_request(ErrorCode::InvalidQuery, "`after` must be at least 0")),
        n => n.unwrap_or(0),
    };
    let wants_sse =
        headers.get("accept").and_then(|v| v.to_str().ok()).is_some_and(|v| v.contains("text/event-stream"));
    if wants_sse {
        if let Some(v) = headers.get("last-event-id") {
            after =
                v.to_str().ok().and_then(|v| v.trim().parse::<i64>().ok()).filter(|n| *n >= 0).ok_or_else(|| {
                    ApiError::bad_request(ErrorCode::InvalidLastEventId, "Last-Event-ID must be a sequence number")
                })?;
        }
        return Ok(sse::run_events(s.rt.clone(), t, id, after, None).into_response());
    }
    let limit = limit(p.limit, 100, 1000)?;
    let types = p.types.map(|v| v.split(',').map(|s| s.trim().to_string()).collect());
    let rows = s.rt.run_events(&t, &id, &EventQuery { after, limit: limit + 1, types }).await?;
    Ok(page(rows, limit as usize, |e| agentd_api::Cursor::Seq(e.seq)).into_response())
}

/// `GET /v1/runs/{id}/context?step=N`: what the model saw at that step (the last when absent).
pub(crate) async fn context(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(id): Path<String>,
    ApiQuery(p): ApiQuery<api::ContextQuery>,
) -> Result<Json<agentd_api::ModelContext>, ApiError> {
    if p.step == Some(0) {
        return Err(ApiError::bad_request(ErrorCode::InvalidQuery, "`step` must be at least 1"));
    }
    let step = p.step;
    Ok(Json(s.rt.model_context(&t, &id, step).await?))
}

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/runs", "Start a run (with `stream`, its events as SSE)", create)
            .body::<api::CreateRun>()
            .answer::<api::RunCreated>(202)
            .sse(),
        Route::get("/v1/runs", "List runs, newest first", list)
            .query::<api::RunsQuery>()
            .answer::<api::Page<api::Run>>(200),
        Route::get("/v1/runs/{id}", "One run", get_one).answer::<api::Run>(200),
        Route::post("/v1/runs/{id}/cancel", "Cancel a run and every run it delegated to", cancel)
            .optional_body::<api::CancelRun>()
            .answer::<api::Run>(200),
        Route::get("/v1/runs/{id}/events", "The run's journal (SSE with `Accept: text/event-stream`)", events)
            .query::<api::EventsQuery>()
            .answer::<api::Page<api::StoredEvent>>(200)
            .sse(),
        Route::get("/v1/runs/{id}/children", "The runs this run delegated to, oldest first", children)
            .answer::<api::Page<api::Run>>(200),
        Route::post(
            "/v1/runs/{id}/messages",
            "Add a user message to a running or waiting run (taken at its next step)",
            inject,
        )
        .body::<api::InjectMessage>()
        .answer::<api::Injected>(202),
        Route::get(
            "/v1/runs/{id}/context",
            "What the model saw at a step: messages, tools, parameters and tokens per part",
            context,
        )
        .query::<api::ContextQuery>()
        .answer::<api::ModelContext>(200),
    ]
}
