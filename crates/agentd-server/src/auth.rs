//! Who is calling, and whether their role may do this: API keys
//! (`Authorization: Bearer` or `x-api-key`) checked by the runtime, and
//! the least role each route needs.

use agentd_core::{ErrorCode, KeyRole, Tenant};
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

/// Checks the key of every `/v1` request when auth is on, puts the
/// [`Caller`] in the request's extensions, gives the request an id
/// (`x-request-id`) and records successful changes in the audit log.
pub(crate) async fn authenticate(State(s): State<AppState>, mut req: Request, next: Next) -> Response {
    let request_id = agentd_core::new_id("req");
    // The route's row says who may call it and whether a change is audited;
    // a path no route matches needs any key (and is then answered 404 / 405).
    let route = req.extensions().get::<axum::extract::MatchedPath>().map(|m| m.as_str().to_string());
    let meta = route.as_deref().and_then(|r| s.routes.get(req.method(), r));
    let path = req.uri().path();
    let open = meta.is_some_and(|m| m.role.is_none());
    let caller = if !s.auth || !path.starts_with("/v1/") || open {
        Caller::Open
    } else {
        let needed = meta.and_then(|m| m.role).unwrap_or(KeyRole::Viewer);
        let secret = secret_of(&req).map(str::to_string);
        let method = req.method().clone();
        let checked = match (secret, login_of(req.headers())) {
            // The console: its login cookie, with the CSRF token on every change.
            (None, Some(token)) => {
                let csrf = req.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
                check_login(&s, &token, csrf.as_deref(), &method, needed).await
            }
            (secret, _) => check(&s, secret, needed).await,
        };
        match checked {
            Ok(p) => Caller::Key(p),
            Err(resp) => return resp,
        }
    };
    let audited = req.method() != Method::GET && req.method() != Method::HEAD && meta.is_some_and(|m| m.audited);
    let what = audited.then(|| {
        // A change is recorded even when the scope headers do not read (a
        // handler that never looks at them still succeeds): under the key's org.
        let tenant =
            crate::error::tenant_of(req.headers(), caller.principal()).ok().or_else(|| match caller.principal() {
                Some(p) => Tenant::from_parts(p.org.as_deref(), p.user.as_deref(), p.project.as_deref()).ok(),
                // Auth off: the default tenant.
                None => Some(Tenant::default()),
            });
        // A change to an organisation (`/v1/orgs/{org}/…`) is that org's record,
        // whoever made it (an operator acts from its own scope).
        let tenant = match (route.as_deref(), tenant) {
            (Some(r), Some(mut t)) if r.starts_with("/v1/orgs/{org}") => {
                if let Some(org) =
                    req.uri().path().split('/').nth(3).and_then(|o| Tenant::from_parts(Some(o), None, None).ok())
                {
                    t.org = org.org;
                }
                Some(t)
            }
            (_, t) => t,
        };
        (
            req.method().to_string(),
            route.clone().unwrap_or_else(|| req.uri().path().to_string()),
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
    method: &Method,
    needed: KeyRole,
) -> Result<Principal, Response> {
    let (principal, expected) = match s.rt.authenticate_login(token).await {
        Ok(p) => p,
        Err(agentd_runtime::RuntimeError::Unauthorized(why)) => return Err(unauthorized(&why)),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    let write = !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS);
    if write && !csrf.is_some_and(|c| same(c, &expected)) {
        let msg = "a change from the console needs its `x-csrf-token`";
        return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, msg).into_response());
    }
    authorize(s, principal, needed).await
}

/// The key's principal, admitted by rate and allowed by role; else the answer to send.
async fn check(s: &AppState, secret: Option<String>, needed: KeyRole) -> Result<Principal, Response> {
    let Some(secret) = secret else {
        return Err(unauthorized("an API key is required: send `Authorization: Bearer <key>` or `x-api-key: <key>`"));
    };
    let principal = match s.rt.authenticate(&secret).await {
        Ok(p) => p,
        Err(agentd_runtime::RuntimeError::Unauthorized(why)) => return Err(unauthorized(&why)),
        Err(e) => return Err(ApiError::from(e).into_response()),
    };
    authorize(s, principal, needed).await
}

/// Admits the principal by rate and checks its role may do this.
async fn authorize(s: &AppState, principal: Principal, needed: KeyRole) -> Result<Principal, Response> {
    s.rt.admit(&principal).await.map_err(limited)?;
    if !principal.role.at_least(needed) {
        let msg = format!("a {} key may not do this; it needs {} or above", principal.role, needed);
        return Err(ApiError::new(StatusCode::FORBIDDEN, ErrorCode::Forbidden, msg).into_response());
    }
    Ok(principal)
}
