//! `/v1/prompt-templates`: named prompt templates per tenant.

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
    ApiJson(b): ApiJson<agentd_api::CreateTemplate>,
) -> Result<Response, ApiError> {
    let tpl: agentd_api::PromptTemplate = s.rt.create_template(&t, &b.name, &b.content).await?;
    Ok((StatusCode::CREATED, Json(tpl)).into_response())
}

pub(crate) async fn list(State(s): State<AppState>, Scope(t): Scope) -> Result<Response, ApiError> {
    let data: Vec<agentd_api::PromptTemplate> = s.rt.list_templates(&t).await?;
    Ok(Json(agentd_api::Page::all(data)).into_response())
}

pub(crate) async fn get_one(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    let tpl: agentd_api::PromptTemplate = s.rt.get_template(&t, &name).await?;
    Ok(Json(tpl).into_response())
}

pub(crate) async fn replace(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
    ApiJson(b): ApiJson<agentd_api::ReplaceTemplate>,
) -> Result<Response, ApiError> {
    let tpl: agentd_api::PromptTemplate = s.rt.replace_template(&t, &name, &b.content).await?;
    Ok(Json(tpl).into_response())
}

pub(crate) async fn delete(
    State(s): State<AppState>,
    Scope(t): Scope,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    s.rt.delete_template(&t, &name).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `POST /v1/template-preview`: renders a template's text with sample
/// arguments, storing nothing (a read, for the console's live preview). A
/// template that does not render is answered with its error, not a 4xx,
/// unless it is over a cap (`400 template_too_large` / `template_too_complex`).
pub(crate) async fn preview(
    Scope(t): Scope,
    ApiJson(b): ApiJson<agentd_api::PreviewTemplate>,
) -> Result<Response, ApiError> {
    if b.content.len() > 64 * 1024 {
        return Err(ApiError::bad_request(agentd_api::ErrorCode::TemplateTooLarge, "a template is at most 64 KiB"));
    }
    let args = b.arguments.unwrap_or(serde_json::Value::Null);
    let content = b.content.clone();
    let rendered = match agentd_runtime::templates::variables(&content) {
        Ok(variables) => {
            agentd_runtime::templates::render(&t.org, "preview", &content, &args).await.map(|t| (t, variables))
        }
        Err(e) => Err(e),
    };
    let answer = match rendered {
        Ok((text, variables)) => agentd_api::TemplatePreview { text: Some(text), variables, error: None },
        // Over a cap is the request's fault: `400`, as for a stored template.
        Err(e)
            if matches!(
                e.code(),
                agentd_api::ErrorCode::TemplateTooLarge | agentd_api::ErrorCode::TemplateTooComplex
            ) =>
        {
            return Err(ApiError::from(e));
        }
        Err(e) => {
            let variables = agentd_runtime::templates::variables(&b.content).unwrap_or_default();
            let detail = ApiError::from(e).detail();
            agentd_api::TemplatePreview { text: None, variables, error: Some(detail) }
        }
    };
    Ok(Json(answer).into_response())
}

/// This module's routes: method, path, least role, OpenAPI operation, handler.
pub(crate) fn routes() -> Vec<Route> {
    vec![
        Route::post("/v1/prompt-templates", "Create a prompt template", create)
            .body::<api::CreateTemplate>()
            .answer::<api::PromptTemplate>(201)
            .audited(),
        Route::get("/v1/prompt-templates", "The tenant's prompt templates", list)
            .answer::<api::Page<api::PromptTemplate>>(200),
        Route::get("/v1/prompt-templates/{name}", "One prompt template", get_one).answer::<api::PromptTemplate>(200),
        Route::put("/v1/prompt-templates/{name}", "Replace a prompt template", replace)
            .body::<api::ReplaceTemplate>()
            .answer::<api::PromptTemplate>(200)
            .audited(),
        Route::delete("/v1/prompt-templates/{name}", "Remove a prompt template", delete).empty(204).audited(),
        Route::post("/v1/template-preview", "Render a template's text with sample arguments (stores nothing)", preview)
            .body::<api::PreviewTemplate>()
            .answer::<api::TemplatePreview>(200)
            .viewer(),
    ]
}
