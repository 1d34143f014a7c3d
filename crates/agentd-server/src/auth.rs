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
    // Previews change nothing: they count as reads.
    let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS) && path != "/v1/template-preview";
    let admin_area = ["/v1/http-tools", "/v1/mcp-servers", "/v1/providers", "/v1/model-profiles"]
        .iter()
        .any(|p| path.starts_with(p));
    let admin_only =
        ["/v1/api-keys", "/v1/audit", "/v1/secrets", "/v1/orgs", "/v1/diagnostics"].iter().any(|p| path.starts_with(p));
    if admin_only || (write && admin_area) {
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

/// Changes that are audited: writes to these (runs, sessions and tool
/// calls have their own journals).
const AUDITED: &[&str] = &[
    "/v1/api-keys",
    "/v1/http-tools",
    "/v1/mcp-servers",
    "/v1/agents",
    "/v1/skills",
    "/v1/prompt-templates",
    "/v1/approvals",
    "/v1/secrets",
    "/v1/orgs",
    "/v1/providers",
    "/v1/model-profiles",
    "/v1/teams",
];

/// Whether a change to this path is audited: the prefixes above, and a
/// session workspace's files (writes, renames, deletes).
fn audited_path(path: &str) -> bool {
    let workspace = path.starts_with("/v1/sessions/") && (path.contains("/files/") || path.ends_with("/rename-file"));
    workspace || AUDITED.iter().any(|p| path.starts_with(p))
}

/// Checks the key of every `/v1` request when auth is on, puts the
/// [`Caller`] in the request's extensions, gives the request an id
/// (`x-request-id`) and records successful changes in the audit log.
pub(crate) async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id = agentd_core::new_id("req");
    let path = req.uri().path();
    let caller = if !s.auth || !path.starts_with("/v1/") || agentd_api::openapi::is_open(path) {
        Caller::Open
    } else {
        let secret = secret_of(&req).map(str::to_string);
        let (method, path) = (req.method().clone(), req.uri().path().to_string());
        let checked = match (secret, login_of(req.headers())) {
            // The console: its login cookie, with the CSRF token on every change.
            (None, Some(token)) => {
                let csrf = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
                check_login(&s, &token, csrf.as_deref(), method, path).await
            }
            (secret, _) => check(&s, secret, method, path).await,
        };
        match checked {
            Ok(p) => Caller::Key(p),
            Err(resp) => return resp,
        }
    };
    let audited = req.method() != Method::GET && req.method() != Method::HEAD && audited_path(req.uri().path());
    let what = audited.then(|| {
        let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_string());
        let tenant = crate::error::tenant_of(req.headers(), caller.principal()).ok();
        (
            req.method().to_string(),
            route.unwrap_or_else(|| req.uri().path().to_string()),
            req.uri().path().to_string(),
            tenant,
        )
    });
    req.extensions_mut().insert(caller.clone());
    let mut resp = next.run(req).await;
    if let Some((method, route, path, Some(t))) = what
        && resp.status().is_success()
    {
        let p = caller.principal();
        let entry = agentd_core::AuditEntry {
            id: agentd_core::new_id("aud"),
            org: t.org,
            key_id: p.map(|p| p.key_id.clone()),
            role: p.map(|p| p.role),
            user: t.user,
            method,
            route,
            path,
            status: resp.status().as_u16(),
            request_id: request_id.clone(),
            created_at: agentd_runtime::now(),
        };
        if let Err(e) = s.rt.record_audit(&entry).await {
            tracing::error!(error = %e, request_id = %request_id, "could not record a change in the audit log");
        }
    }
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

/// The console's login cookie.
pub(crate) const LOGIN_COOKIE: &str = "agentd_login";

/// The login token of the request's `Cookie` header, if any.
pub(crate) fn login_of(headers: &axum::http::HeaderMap) -> Option<String> {
    cookie(headers, LOGIN_COOKIE)
}

/// A cookie of the request by name, if it is set and not empty.
pub(crate) fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == name && !v.is_empty()).then(|| v.to_string())
    })
}

/// Equal, in time that does not depend on where they differ.
pub(crate) fn same(a: &str, b: &str) -> bool {
    agentd_runtime::access::same_text(a, b)
}

/// A console login's principal: writes must carry its CSRF token.
async fn check_login(
    s: &AppState,
    token: &str,
    csrf: Option<&str>,
    method: Method,
    path: String,
) -> Result<Principal, Response> {
    let (principal, expected) = match s.rt.authenticate_login(token).await {
        Ok(p) => p,
        Err(agentd_runtime::RuntimeError::Unauthorized(why)) => return Err(unauthorized(&why)),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let write = !matches!(method, Method::GET | Method::HEAD | Method::OPTIONS);
    if write && !csrf.is_some_and(|c| same(c, &expected)) {
        let msg = "a change from the console needs its `x-csrf-token`";
        return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, msg).into_response());
    }
    authorize(s, principal, &method, &path).await
}

/// The key's principal, admitted by rate and allowed by role; else the answer to send.
async fn check(s: &AppState, secret: Option<String>, method: Method, path: String) -> Result<Principal, Response> {
    let Some(secret) = secret else {
        return Err(unauthorized("an API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`"));
    };
    let principal = match s.rt.authenticate(&secret).await {
        Ok(p) => p,
        Err(agentd_runtime::RuntimeError::Unauthorized(why)) => return Err(unauthorized(&why)),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    authorize(s, principal, &method, &path).await
}

/// Admits the principal by rate and checks its role may do this.
async fn authorize(s: &AppState, principal: Principal, method: &Method, path: &str) -> Result<Principal, Response> {
    s.rt.admit(&principal).await.map_err(limited)?;
    let needed = needed_role(method, path);
    if !principal.role.at_least(needed) {
        let msg = format!("a {} key may not do this; it needs {} or above", principal.role, needed);
        return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, msg).into_response());
    }
    Ok(principal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_writes_and_credentials_need_rising_roles() {
        assert_eq!(needed_role(&Method::GET, "/v1/runs"), KeyRole::Viewer);
        assert_eq!(needed_role(&Method::POST, "/v1/runs"), KeyRole::Member);
        assert_eq!(needed_role(&Method::POST, "/v1/tools/echo/call"), KeyRole::Member);
        assert_eq!(needed_role(&Method::POST, "/v1/template-preview"), KeyRole::Viewer, "a preview is a read");
        assert_eq!(needed_role(&Method::GET, "/v1/mcp-servers"), KeyRole::Viewer);
        assert_eq!(needed_role(&Method::POST, "/v1/mcp-servers"), KeyRole::Admin);
        assert_eq!(needed_role(&Method::DELETE, "/v1/http-tools/x"), KeyRole::Admin);
        assert_eq!(needed_role(&Method::GET, "/v1/api-keys"), KeyRole::Admin);
        assert_eq!(needed_role(&Method::GET, "/v1/secrets"), KeyRole::Admin);
    }

    #[test]
    fn teams_and_workspace_files_are_audited() {
        assert!(audited_path("/v1/teams/t1"));
        assert!(audited_path("/v1/sessions/s1/files/a/b.txt"));
        assert!(audited_path("/v1/sessions/s1/rename-file"));
        assert!(!audited_path("/v1/sessions/s1"), "a session has its own journal");
        assert!(!audited_path("/v1/runs"));
    }
}
