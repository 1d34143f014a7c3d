//! API errors and the extractors that turn bad input into them.

use agentd_core::ErrorCode;
use agentd_core::Tenant;
use agentd_runtime::RuntimeError;
use axum::Json;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::json;

/// An error answer: `{"error": {"code": "...", "message": "..."}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: ErrorCode,
    pub message: String,
    pub extra: Option<serde_json::Value>,
    /// What went wrong inside, for the log only (5xx).
    pub cause: Option<String>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), extra: None, cause: None }
    }

    pub fn bad_request(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, code, message)
    }
}

/// The cause of a server-side failure, carried on the response for the
/// logging middleware (never in the body).
#[derive(Debug, Clone)]
pub(crate) struct FailureCause(pub String);

impl ApiError {
    /// The error's body part (message masked), for answers that carry an error inside.
    pub(crate) fn detail(&self) -> agentd_api::ErrorDetail {
        let message = agentd_core::redact::redact(&self.message).into_owned();
        let details = match &self.extra {
            Some(serde_json::Value::Object(extra)) => extra.clone().into_iter().collect(),
            _ => Default::default(),
        };
        agentd_api::ErrorDetail { code: self.code, message, details }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = agentd_api::ErrorBody { error: self.detail() };
        let mut resp = (self.status, Json(body)).into_response();
        if let Some(cause) = self.cause {
            resp.extensions_mut().insert(FailureCause(cause));
        }
        resp
    }
}

/// A refusal axum answers itself in plain text (a path segment that is
/// not UTF-8, say) becomes the API's JSON error body too.
pub(crate) async fn json_refusals(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let resp = next.run(req).await;
    let plain = resp
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/plain"));
    if !(resp.status().is_client_error() && plain) {
        return resp;
    }
    let status = resp.status();
    let text = match axum::body::to_bytes(resp.into_body(), 4096).await {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(_) => String::new(),
    };
    let message = agentd_core::text::truncate(text.trim(), 300, "…");
    let code = if status == StatusCode::BAD_REQUEST { ErrorCode::InvalidRequest } else { ErrorCode::NotFound };
    let message = if message.is_empty() { "the request was refused".to_string() } else { message };
    ApiError::new(status, code, message).into_response()
}

/// Logs every failed answer in one place: 5xx as errors with their cause,
/// 4xx at debug level. Conversions into [`ApiError`] never log.
pub(crate) async fn log_failures(req: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    let resp = next.run(req).await;
    let status = resp.status();
    if status.is_server_error() {
        let cause = resp.extensions().get::<FailureCause>().map(|c| c.0.clone()).unwrap_or_default();
        let cause = agentd_core::redact::redact(&cause).into_owned();
        tracing::error!(%method, %path, status = status.as_u16(), %cause, "request failed");
    } else if status.is_client_error() {
        tracing::debug!(%method, %path, status = status.as_u16(), "request refused");
    }
    resp
}

/// The one place runtime errors become HTTP statuses.
fn status_of(e: &RuntimeError) -> StatusCode {
    match e {
        RuntimeError::Invalid { .. } | RuntimeError::MissingVariable { .. } | RuntimeError::InvalidArguments(_) => {
            StatusCode::BAD_REQUEST
        }
        RuntimeError::SessionNotFound(_)
        | RuntimeError::RunNotFound(_)
        | RuntimeError::ApprovalNotFound(_)
        | RuntimeError::NotFound { .. } => StatusCode::NOT_FOUND,
        RuntimeError::AlreadyExists { .. }
        | RuntimeError::RunAlreadyFinished { .. }
        | RuntimeError::ApprovalNotPending { .. }
        | RuntimeError::SessionBusy { .. }
        | RuntimeError::ToolUnavailable { .. } => StatusCode::CONFLICT,
        RuntimeError::PermissionDenied { .. } | RuntimeError::ApprovalRequired { .. } | RuntimeError::Forbidden(_) => {
            StatusCode::FORBIDDEN
        }
        RuntimeError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
        RuntimeError::RateLimited { .. } | RuntimeError::Busy(_) => StatusCode::TOO_MANY_REQUESTS,
        RuntimeError::Store(_) if e.code() == ErrorCode::NotFound => StatusCode::NOT_FOUND,
        RuntimeError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<RuntimeError> for ApiError {
    fn from(e: RuntimeError) -> Self {
        let (status, code) = (status_of(&e), e.code());
        let plain = |message: String| ApiError::new(status, code, message);
        match e {
            RuntimeError::MissingVariable { template, variable } => ApiError {
                extra: Some(json!({"variable": variable, "field": format!("/arguments/{variable}")})),
                ..plain(format!("template {template} needs the variable {variable:?}; pass it in `arguments`"))
            },
            RuntimeError::SessionBusy { active_run_id } => ApiError {
                extra: Some(json!({ "active_run_id": active_run_id })),
                ..plain(format!("the session is busy with run {active_run_id}"))
            },
            RuntimeError::ApprovalNotPending { status: st } => {
                ApiError { extra: Some(json!({ "status": st })), ..plain(format!("the approval is {st}, not pending")) }
            }
            RuntimeError::InvalidArguments(e) => {
                ApiError { extra: Some(json!({ "field": e.field, "tool": e.tool })), ..plain(e.to_string()) }
            }
            RuntimeError::PermissionDenied { message, details }
            | RuntimeError::ApprovalRequired { message, details } => {
                ApiError { extra: Some(details), ..plain(message) }
            }
            RuntimeError::Store(_) if code == ErrorCode::NotFound => plain("not found".into()),
            RuntimeError::Store(cause) => {
                ApiError { cause: Some(cause.to_string()), ..plain("the database reported an error".into()) }
            }
            other => plain(other.to_string()),
        }
    }
}

/// A JSON body, with JSON error answers: `400 invalid_json`, `400
/// invalid_request` (wrong shape), `413 payload_too_large`, `415
/// unsupported_media_type` (a body not sent as `application/json`).
pub(crate) struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match MaybeJson::<T>::from_request(req, state).await? {
            MaybeJson(Some(v)) => Ok(ApiJson(v)),
            MaybeJson(None) => {
                Err(ApiError::bad_request(ErrorCode::InvalidJson, "request body is empty; expected a JSON object"))
            }
        }
    }
}

/// Like [`ApiJson`], but an empty body is `None`.
pub(crate) struct MaybeJson<T>(pub Option<T>);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for MaybeJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let json_type =
            req.headers().get(axum::http::header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).is_some_and(is_json_type);
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    ErrorCode::PayloadTooLarge,
                    "request body is larger than the configured limit",
                )
            } else {
                ApiError::bad_request(ErrorCode::InvalidBody, r.body_text())
            }
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(MaybeJson(None));
        }
        // A page on another site can send a form or `text/plain` body without
        // asking first, never an `application/json` one.
        if !json_type {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                ErrorCode::UnsupportedMediaType,
                "a request body must be sent with `content-type: application/json`",
            ));
        }
        if has_escaped_nul(&bytes) {
            return Err(ApiError::bad_request(ErrorCode::InvalidRequest, "NUL characters (\\u0000) are not accepted"));
        }
        serde_json::from_slice(&bytes).map(|v| MaybeJson(Some(v))).map_err(|e| match e.classify() {
            serde_json::error::Category::Data => ApiError::bad_request(ErrorCode::InvalidRequest, e.to_string()),
            _ => ApiError::bad_request(ErrorCode::InvalidJson, format!("request body is not valid JSON: {e}")),
        })
    }
}

/// `application/json` or a `+json` type, with any parameters.
fn is_json_type(v: &str) -> bool {
    let essence = v.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    essence == "application/json" || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Whether JSON text holds a `\u0000` escape (raw NULs are invalid JSON
/// anyway). Databases cannot store NUL in text, so it is refused at the door.
fn has_escaped_nul(b: &[u8]) -> bool {
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' {
            if b.get(i + 1) == Some(&b'u') && b.get(i + 2..i + 6) == Some(b"0000".as_slice()) {
                return true;
            }
            i += 2; // any other escape, `\\` included, is two bytes
        } else {
            i += 1;
        }
    }
    false
}

/// Refuses NUL (`%00`) anywhere in the path or query: no id, name or filter holds one.
pub(crate) async fn reject_nul(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    let uri = req.uri().to_string();
    if uri.to_ascii_lowercase().contains("%00") {
        return ApiError::bad_request(
            ErrorCode::InvalidRequest,
            "NUL characters (%00) are not accepted in paths or queries",
        )
        .into_response();
    }
    next.run(req).await
}

/// The headers that name the caller's tenant scope (only the server knows them).
pub(crate) const ORG_HEADER: &str = "x-org-id";
pub(crate) const USER_HEADER: &str = "x-user-id";
pub(crate) const PROJECT_HEADER: &str = "x-project-id";

/// The caller's tenant scope. With auth off, from `x-org-id`, `x-user-id`,
/// `x-project-id`. With a key, the key fixes what it names (an operator's
/// org comes from `x-org-id`; a key without a user or project lets the
/// headers choose them) and the headers cannot change it.
pub(crate) struct Scope(pub Tenant);

impl<S: Send + Sync> FromRequestParts<S> for Scope {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let caller = parts.extensions.get::<crate::auth::Caller>().and_then(|c| c.principal().cloned());
        tenant_of(&parts.headers, caller.as_ref()).map(Scope)
    }
}

/// The tenant a request acts in: what the key fixes, the scope headers for the rest.
pub(crate) fn tenant_of(
    headers: &axum::http::HeaderMap,
    caller: Option<&agentd_runtime::access::Principal>,
) -> Result<Tenant, ApiError> {
    let get = |name: &str| -> Result<Option<String>, ApiError> {
        match headers.get(name) {
            None => Ok(None),
            Some(v) => v
                .to_str()
                .map(|s| Some(s.to_string()))
                .map_err(|_| ApiError::bad_request(ErrorCode::InvalidScope, format!("{name} is not valid text"))),
        }
    };
    let fixed = |v: Option<&String>, header: &str| match v {
        Some(v) => Ok(Some(v.clone())),
        None => get(header),
    };
    let (org, user, project) = (
        fixed(caller.and_then(|p| p.org.as_ref()), ORG_HEADER)?,
        fixed(caller.and_then(|p| p.user.as_ref()), USER_HEADER)?,
        fixed(caller.and_then(|p| p.project.as_ref()), PROJECT_HEADER)?,
    );
    Tenant::from_parts(org.as_deref(), user.as_deref(), project.as_deref()).map_err(|e| {
        let header = match e.part {
            agentd_core::ids::ScopePart::Org => ORG_HEADER,
            agentd_core::ids::ScopePart::User => USER_HEADER,
            agentd_core::ids::ScopePart::Project => PROJECT_HEADER,
        };
        ApiError::bad_request(ErrorCode::InvalidScope, format!("invalid {header}: {e}"))
    })
}

/// A route's query string as its type (`agentd_api::query`); empty values
/// count as absent, and a value of the wrong type is `400 invalid_query`.
pub(crate) struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let q = parts.uri.query().unwrap_or("");
        let kept: Vec<&str> = q.split('&').filter(|kv| !kv.is_empty() && !kv.ends_with('=')).collect();
        let uri: axum::http::Uri = format!("/?{}", kept.join("&"))
            .parse()
            .map_err(|_| ApiError::bad_request(ErrorCode::InvalidQuery, "malformed query string"))?;
        axum::extract::Query::<T>::try_from_uri(&uri)
            .map(|axum::extract::Query(v)| ApiQuery(v))
            .map_err(|e| ApiError::bad_request(ErrorCode::InvalidQuery, e.body_text()))
    }
}

/// A page's `limit`: `default` when absent, else within `1..=max`.
pub(crate) fn limit(v: Option<u32>, default: u32, max: u32) -> Result<u32, ApiError> {
    match v {
        None => Ok(default),
        Some(n) if (1..=max).contains(&n) => Ok(n),
        Some(_) => Err(ApiError::bad_request(
            ErrorCode::InvalidQuery,
            format!("`limit` must be an integer between 1 and {max}"),
        )),
    }
}
