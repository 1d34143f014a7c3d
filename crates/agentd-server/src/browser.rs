//! What a web page in the same browser could make the server do. A page on
//! another site can send simple requests (form posts, `no-cors` fetches)
//! to loopback, and with DNS rebinding read the answers under its own name.
//! So: writes whose `Origin` or `Sec-Fetch-Site` says another site are
//! refused, and with auth off only loopback host names (or the configured
//! ones) are served. JSON bodies must say they are JSON (`error.rs`), which
//! no simple request can.

use agentd_core::ErrorCode;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::AppState;
use crate::error::ApiError;

/// Which names and origins a browser may reach the server under, beyond
/// its own (`allowed_hosts` / `allowed_origins` in the config).
#[derive(Debug, Clone, Default)]
pub struct BrowserPolicy {
    /// Host names (without port) served with auth off besides loopback ones.
    pub allowed_hosts: Vec<String>,
    /// Origins (`https://console.example.com`) whose pages may make changes.
    pub allowed_origins: Vec<String>,
}

/// The host name of a `Host` header value, lower case, without the port.
fn host_name(host: &str) -> String {
    let h = host.trim().to_ascii_lowercase();
    if let Some(rest) = h.strip_prefix('[') {
        return rest.split(']').next().unwrap_or_default().to_string();
    }
    h.rsplit_once(':').filter(|(_, port)| port.chars().all(|c| c.is_ascii_digit())).map_or(h.clone(), |(n, _)| n.into())
}

/// Names that only ever mean this machine.
fn loopback_name(name: &str) -> bool {
    // Only what a browser puts in `Host`: `evil.com#.localhost` is no name.
    let plain = name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    (plain && (name == "localhost" || name.ends_with(".localhost")))
        || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Whether a `Host` may be served with auth off: loopback names and
/// addresses, and the names (or addresses) the operator listed.
fn servable(name: &str, allowed: &[String]) -> bool {
    loopback_name(name) || allowed.iter().any(|h| h.eq_ignore_ascii_case(name))
}

fn refuse(code: ErrorCode, message: &str) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, code, message).into_response()
}

/// Whether a write from a browser page comes from elsewhere.
fn cross_site(req: &Request, policy: &BrowserPolicy) -> bool {
    let headers = req.headers();
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    if let Some(o) = origin
        && policy.allowed_origins.iter().any(|a| a.eq_ignore_ascii_case(o))
    {
        return false;
    }
    // The browser's own word, which no page can forge, decides when given:
    // a same-origin form of a page with `Referrer-Policy: no-referrer` (the
    // console's) says `Origin: null`.
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("same-origin" | "none") => return false,
        Some(_) => return true,
        None => {}
    }
    match origin {
        None => false,
        // Sandboxed frames, files and redirects across sites send `null`.
        Some("null") => true,
        Some(o) => {
            let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
            let own = o.split_once("://").map(|(_, rest)| rest).unwrap_or(o);
            !own.eq_ignore_ascii_case(host.trim())
        }
    }
}

/// The middleware: host names first (with auth off), then cross-site writes.
pub(crate) async fn guard(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if !s.auth
        && let Some(host) = req.headers().get(header::HOST).and_then(|v| v.to_str().ok())
    {
        let name = host_name(host);
        if !servable(&name, &s.browser.allowed_hosts) {
            return refuse(
                ErrorCode::HostNotAllowed,
                "with auth off only loopback host names are served; add this name to `allowed_hosts`",
            );
        }
    }
    let write = !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS);
    if write && cross_site(&req, &s.browser) {
        return refuse(
            ErrorCode::CrossSiteRequest,
            "a change from another site's page is refused; add its origin to `allowed_origins`",
        );
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn req(method: &str, host: &str, headers: &[(&str, &str)]) -> Request {
        let mut b = Request::builder().method(method).uri("/v1/runs").header("host", host);
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn host_names_and_loopback() {
        assert_eq!(host_name("127.0.0.1:7700"), "127.0.0.1");
        assert_eq!(host_name("[::1]:7700"), "::1");
        assert_eq!(host_name("Example.COM"), "example.com");
        for ok in ["localhost", "app.localhost", "127.0.0.1", "127.3.2.1", "::1"] {
            assert!(loopback_name(ok), "{ok}");
        }
        for bad in ["rebind.attacker.example", "10.0.0.1", "localhost.attacker.example", "0.0.0.0"] {
            assert!(!loopback_name(bad), "{bad}");
        }
        let allowed = ["agentd.internal".to_string(), "10.0.0.1".to_string()];
        for ok in ["localhost", "10.0.0.1", "::1", "AGENTD.internal"] {
            assert!(servable(&ok.to_ascii_lowercase(), &allowed), "{ok}");
        }
        assert!(!servable("10.0.0.2", &allowed), "an address not listed");
        for bad in [
            "rebind.attacker.example",
            "localhost.",
            "127.0.0.1.nip.io",
            "0x7f000001",
            "evil.com#.localhost",
            "evil.com/.localhost",
        ] {
            assert!(!servable(bad, &allowed), "{bad}");
        }
    }

    #[test]
    fn writes_from_other_sites_are_cross_site() {
        let p = BrowserPolicy::default();
        let h = "127.0.0.1:7700";
        assert!(!cross_site(&req("POST", h, &[]), &p), "a program sends neither header");
        assert!(!cross_site(&req("POST", h, &[("origin", "http://127.0.0.1:7700")]), &p));
        assert!(!cross_site(&req("POST", h, &[("sec-fetch-site", "same-origin")]), &p));
        assert!(!cross_site(&req("POST", h, &[("sec-fetch-site", "none")]), &p), "typed by the user");
        assert!(cross_site(&req("POST", h, &[("origin", "https://evil.example")]), &p));
        assert!(cross_site(&req("POST", h, &[("origin", "http://127.0.0.1:9999")]), &p), "another port");
        assert!(cross_site(&req("POST", h, &[("origin", "null")]), &p));
        assert!(cross_site(&req("POST", h, &[("sec-fetch-site", "cross-site")]), &p));
        assert!(cross_site(&req("POST", h, &[("sec-fetch-site", "same-site")]), &p), "another port of localhost");
        let console_form = [("origin", "null"), ("sec-fetch-site", "same-origin")];
        assert!(!cross_site(&req("POST", h, &console_form), &p), "a no-referrer page's own form");
        let forged = [("origin", "http://127.0.0.1:7700"), ("sec-fetch-site", "cross-site")];
        assert!(cross_site(&req("POST", h, &forged), &p), "the browser's word wins");
        let allowed = BrowserPolicy { allowed_origins: vec!["https://console.example".into()], ..Default::default() };
        let from = [("origin", "https://console.example"), ("sec-fetch-site", "cross-site")];
        assert!(!cross_site(&req("POST", h, &from), &allowed));
    }
}
