//! Who is calling, and whether their role may do this: API keys
//! (`Authorization: Bearer` or `x-api-key`) checked by the runtime, and
//! the least role each route needs.

use agentd_core::{ErrorCode, KeyRole};
use agentd_runtime::access::Principal;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// The caller of a request, as the auth middleware found it.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// Auth is off: the scope headers say who, and anything goes.
    Open,
    /// A checked key.
    Key(Principal),
}

impl Caller {
    /// The key's principal (`None` when auth is off: full power).
    pub(crate) fn principal(&self) -> Option<&Principal> {
        match self {
            Caller::Open => None,
            Caller::Key(p) => Some(p),
        }
    }
}

/// The least role a request needs: reads are for viewers, writes for
/// members; what holds credentials or runs code (HTTP tools, MCP servers)
/// and keys are for admins.
pub(crate) fn needed_role(method: &Method, path: &str) -> KeyRole {
    let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    let admin_area = ["/v1/http-tools", "/v1/mcp-servers"].iter().any(|p| path.starts_with(p));
    if path.starts_with("/v1/api-keys") || (write && admin_area) {
        KeyRole::Admin
    } else if write {
        KeyRole::Member
    } else {
        KeyRole::Viewer
    }
}

/// The secret a request carries, if any.
fn secret_of(req: &Request) -> Option<&str> {
    let bearer = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer ").or_else(|| v.strip_prefix("bearer ")))
        .map(str::trim);
    bearer.or_else(|| req.headers().get("x-api-key").and_then(|v| v.to_str().ok()).map(str::trim))
}

fn unauthorized(message: &str) -> Response {
    let mut resp = ApiError::new(StatusCode::UNAUTHORIZED, ErrorCode::Unauthorized, message).into_response();
    resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    resp
}

/// `429 rate_limited` with `Retry-After` in whole seconds.
fn limited(e: agentd_runtime::RuntimeError) -> Response {
    let wait = match &e {
        agentd_runtime::RuntimeError::RateLimited { retry_after, .. } => {
            retry_after.as_secs_f64().ceil().max(1.0) as u64
        }
        _ => 1,
    };
    let mut resp = ApiError::from(e).into_response();
    if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
        resp.headers_mut().insert(header::RETRY_AFTER, v);
    }
    resp
}

/// Checks the key of every `/v1` request when auth is on and puts the
/// [`Caller`] in the request's extensions.
pub(crate) async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    if !s.auth || !req.uri().path().starts_with("/v1/") {
        req.extensions_mut().insert(Caller::Open);
        return next.run(req).await;
    }
    let Some(secret) = secret_of(&req) else {
        return unauthorized("an API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`");
    };
    let principal = match s.rt.authenticate(secret).await {
        Ok(p) => p,
        Err(agentd_runtime::RuntimeError::Unauthorized(why)) => return unauthorized(&why),
        Err(e) => return ApiError::from(e).into_response(),
    };
    if let Err(e) = s.rt.admit(&principal) {
        return limited(e);
    }
    let needed = needed_role(req.method(), req.uri().path());
    if !principal.role.at_least(needed) {
        let msg = format!("a {} key may not do this; it needs {} or above", principal.role, needed);
        return ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, msg).into_response();
    }
    req.extensions_mut().insert(Caller::Key(principal));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_credentials_need_rising_roles() {
        assert_eq!(needed_role(&Method::GET, "/v1/runs"), KeyRole::Viewer);
        assert_eq!(needed_role(&Method::POST, "/v1/runs"), KeyRole::Member);
        assert_eq!(needed_role(&Method::POST, "/v1/tools/echo/call"), KeyRole::Member);
        assert_eq!(needed_role(&Method::GET, "/v1/mcp-servers"), KeyRole::Viewer);
        assert_eq!(needed_role(&Method::POST, "/v1/mcp-servers"), KeyRole::Admin);
        assert_eq!(needed_role(&Method::DELETE, "/v1/http-tools/x"), KeyRole::Admin);
        assert_eq!(needed_role(&Method::GET, "/v1/api-keys"), KeyRole::Admin);
    }
}
