//! The web console at `/`: a server-rendered shell per page and one small
//! ES module (no build step; every asset is compiled into the binary). With
//! auth on, `/login` exchanges an API key for an `HttpOnly`, `SameSite=Strict`
//! login cookie; the pages call `/v1` with it and send the login's CSRF
//! token on every change. Unknown ids and other tenants' ids answer an HTML
//! 404 page.

use axum::Form;
use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use agentd_runtime::access::Principal;

use crate::AppState;
use crate::auth::{LOGIN_COOKIE, login_of, same};

const SHELL: &str = include_str!("../console/shell.html");
const LOGIN: &str = include_str!("../console/login.html");
const NOT_FOUND: &str = include_str!("../console/404.html");

/// Every asset: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    ("app.js", "text/javascript; charset=utf-8", include_str!("../console/app.js")),
    ("app.css", "text/css; charset=utf-8", include_str!("../console/app.css")),
];

/// Scripts, styles and connections from this origin only; no framing.
const CSP: &str = "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; \
                   script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

pub(crate) fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(|s, h| page(s, h, "chat", None)))
        .route("/chat", get(|s, h| page(s, h, "chat", None)))
        .route("/chat/{id}", get(|s, h, Path(id): Path<String>| page(s, h, "chat", Some(id))))
        .route("/chat/{id}/files", get(|s, h, Path(id): Path<String>| page(s, h, "files", Some(id))))
        .route("/runs", get(|s, h| page(s, h, "runs", None)))
        .route("/runs/{id}", get(|s, h, Path(id): Path<String>| page(s, h, "run", Some(id))))
        .route("/approvals", get(|s, h| page(s, h, "approvals", None)))
        .route("/manage", get(|s, h| page(s, h, "manage", None)))
        .route("/diagnostics", get(|s, h| page(s, h, "diagnostics", None)))
        .route("/login", get(login_form).post(login))
        .route("/logout", post(logout))
        .route("/assets/{file}", get(asset))
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

fn html(status: StatusCode, body: String) -> Response {
    let mut r = (status, body).into_response();
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

/// The HTML 404 page (for unknown ids, other tenants' ids and unknown pages).
pub(crate) fn not_found(what: &str) -> Response {
    html(StatusCode::NOT_FOUND, NOT_FOUND.replace("{{what}}", &esc(what)))
}

/// Who is looking: `Ok(None)` with auth off; the login's principal and CSRF
/// token with auth on; else the redirect to `/login`.
async fn viewer(s: &AppState, headers: &HeaderMap) -> Result<Option<(Principal, String)>, Response> {
    if !s.auth {
        return Ok(None);
    }
    let Some(token) = login_of(headers) else { return Err(Redirect::to("/login").into_response()) };
    s.rt.authenticate_login(&token).await.map(Some).map_err(|_| Redirect::to("/login").into_response())
}

async fn page(State(s): State<AppState>, headers: HeaderMap, name: &'static str, id: Option<String>) -> Response {
    let who = match viewer(&s, &headers).await {
        Ok(w) => w,
        Err(r) => return r,
    };
    let principal = who.as_ref().map(|(p, _)| p);
    let Ok(t) = crate::error::tenant_of(&HeaderMap::new(), principal) else {
        return not_found("This key names no tenant the console can show.");
    };
    // An id the tenant cannot see does not exist for it.
    if let Some(id) = &id {
        let found = match name {
            "run" => s.rt.get_run(&t, id).await.is_ok(),
            _ => s.rt.get_session(&t, id).await.is_ok(),
        };
        if !found {
            let kind = if name == "run" { "run" } else { "session" };
            return not_found(&format!("There is no {kind} {id} here."));
        }
    }
    let title = match name {
        "run" => "Run",
        "runs" => "Runs",
        "approvals" => "Approvals",
        "files" => "Files",
        "manage" => "Manage",
        "diagnostics" => "Diagnostics",
        _ => "Chat",
    };
    let (csrf, logout, who_text) = match &who {
        Some((p, csrf)) => (
            csrf.clone(),
            format!(
                "<form method=\"post\" action=\"/logout\"><input type=\"hidden\" name=\"csrf\" value=\"{}\"><button type=\"submit\" class=\"ghost\">Log out</button></form>",
                esc(csrf)
            ),
            format!("{} · {}", p.role, t.org),
        ),
        None => (String::new(), String::new(), format!("{} (auth off)", t.org)),
    };
    let body = SHELL
        .replace("{{csrf}}", &esc(&csrf))
        .replace("{{auth}}", if s.auth { "on" } else { "off" })
        .replace("{{title}}", title)
        .replace("{{page}}", name)
        .replace("{{id}}", &esc(id.as_deref().unwrap_or("")))
        .replace("{{who}}", &esc(&who_text))
        .replace("{{logout}}", &logout);
    html(StatusCode::OK, body)
}

/// The cookie that ties a login post to a login page this browser was
/// given (so another site cannot log the browser in with its own key).
const FORM_COOKIE: &str = "agentd_login_form";

/// The login page with a fresh form token (signed by this server), in the
/// page and in a cookie.
fn login_page(s: &AppState, status: StatusCode, error: Option<&str>) -> Response {
    let Ok(token) = s.rt.login_form_token() else {
        return html(StatusCode::INTERNAL_SERVER_ERROR, NOT_FOUND.replace("{{what}}", "No randomness."));
    };
    let error = error.map(|e| format!("<p class=\"error\" role=\"alert\">{}</p>", esc(e))).unwrap_or_default();
    let mut r = html(status, LOGIN.replace("{{error}}", &error).replace("{{form}}", &token));
    let cookie = format!("{FORM_COOKIE}={token}; Path=/login; HttpOnly; SameSite=Strict; Max-Age=3600");
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

async fn login_form(State(s): State<AppState>) -> Response {
    if !s.auth {
        return Redirect::to("/").into_response();
    }
    login_page(&s, StatusCode::OK, None)
}

#[derive(serde::Deserialize)]
pub(crate) struct LoginForm {
    key: String,
    /// The token of the login page the key was typed into.
    #[serde(default)]
    form: String,
}

/// Whether the request came over TLS (directly or through a proxy that says so).
fn over_tls(headers: &HeaderMap) -> bool {
    headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()).is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

async fn login(State(s): State<AppState>, headers: HeaderMap, Form(f): Form<LoginForm>) -> Response {
    if !s.auth {
        return Redirect::to("/").into_response();
    }
    // The page's token, signed by this server and in this browser's cookie.
    let posted = crate::auth::cookie(&headers, FORM_COOKIE).is_some_and(|c| !f.form.is_empty() && same(&c, &f.form));
    if !posted || !s.rt.login_form_valid(&f.form) {
        return login_page(
            &s,
            StatusCode::FORBIDDEN,
            Some("The login form was stale or came from elsewhere; log in again."),
        );
    }
    let made = match s.rt.login(f.key.trim()).await {
        Ok(m) => m,
        Err(agentd_runtime::RuntimeError::Unauthorized(why)) => {
            return login_page(&s, StatusCode::UNAUTHORIZED, Some(&format!("That key does not work: {why}.")));
        }
        Err(e) => return crate::error::ApiError::from(e).into_response(),
    };
    let secure = if over_tls(&headers) { "; Secure" } else { "" };
    let ttl = agentd_runtime::logins::LOGIN_TTL.as_secs();
    let cookie = format!("{LOGIN_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={ttl}{secure}", made.token);
    let mut r = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(serde::Deserialize)]
pub(crate) struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

async fn logout(State(s): State<AppState>, headers: HeaderMap, Form(f): Form<LogoutForm>) -> Response {
    if let Some(token) = login_of(&headers) {
        // Only the page that holds the login's CSRF token may end it.
        match s.rt.authenticate_login(&token).await {
            Ok((_, csrf)) if same(&csrf, &f.csrf) => {
                if let Err(e) = s.rt.logout(&token).await {
                    return crate::error::ApiError::from(e).into_response();
                }
            }
            Ok(_) => return html(StatusCode::FORBIDDEN, NOT_FOUND.replace("{{what}}", "The logout form was stale.")),
            Err(_) => {}
        }
    }
    let mut r = Redirect::to("/login").into_response();
    let gone = format!("{LOGIN_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0");
    if let Ok(v) = HeaderValue::from_str(&gone) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// A tag per asset's bytes, so a reload revalidates with `If-None-Match`
/// and gets `304` instead of the file again.
fn etag(body: &str) -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    body.hash(&mut h);
    format!("\"{:016x}\"", h.finish())
}

async fn asset(Path(file): Path<String>, headers: HeaderMap) -> Response {
    let Some((_, ctype, body)) = ASSETS.iter().find(|(name, _, _)| *name == file) else {
        return not_found(&format!("There is no asset {file}."));
    };
    let tag = etag(body);
    let fresh = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).is_some_and(|v| v == tag);
    let mut r = if fresh { StatusCode::NOT_MODIFIED.into_response() } else { (*body).into_response() };
    let h = r.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(ctype));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    if let Ok(v) = HeaderValue::from_str(&tag) {
        h.insert(header::ETAG, v);
    }
    r
}
