//! `POST /v1/template-preview`: a template rendered with sample arguments.
//! (The templates themselves, `/v1/prompt-templates`, are a document kind:
//! `kinds.rs`.)

use crate::routes::Route;
use agentd_api as api;

use axum::Json;
use axum::response::{IntoResponse, Response};

use crate::error::{ApiError, ApiJson, Scope};

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
            agentd_runtime::template_worker::render(&t.org, "preview", &content, &args).await.map(|t| (t, variables))
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
        Route::post("/v1/template-preview", "Render a template's text with sample arguments (stores nothing)", preview)
            .body::<api::PreviewTemplate>()
            .answer::<api::TemplatePreview>(200)
            .viewer(),
    ]
}
