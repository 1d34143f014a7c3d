//! The web console over HTTP: login with a key for a cookie (HttpOnly,
//! SameSite=Strict, Secure behind TLS), CSRF on every change made with the
//! cookie, the login ending with its key or at logout, and HTML 404 pages
//! for unknown and other tenants' ids.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step is a failed test

use reqwest::Method;
use serde_json::{Value, json};

use crate::auth::{call, make_key};
use crate::common::{Opts, Server};

/// An urlencoded form body, as a browser sends it.
trait FormBody {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self;
}

impl FormBody for reqwest::RequestBuilder {
    fn form_body(self, pairs: &[(&str, &str)]) -> Self {
        let enc = |s: &str| {
            s.bytes()
                .map(|b| {
                    if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                        (b as char).to_string()
                    } else {
                        format!("%{b:02X}")
                    }
                })
                .collect::<String>()
        };
        let body = pairs.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect::<Vec<_>>().join("&");
        self.header("content-type", "application/x-www-form-urlencoded").body(body)
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// The login page's form token and its cookie pair.
async fn login_form(s: &Server) -> (String, String) {
    let page = client().get(format!("{}/login", s.url)).send().await.unwrap();
    let set = page.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    let pair = set.split(';').next().unwrap().to_string();
    let html = page.text().await.unwrap();
    let token = html.split("name=\"form\" value=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    (token, pair)
}

/// Logs in with `key`; the cookie pair (`agentd_login=…`) and the page's CSRF token.
async fn login(s: &Server, key: &str, https: bool) -> (String, String, String) {
    let (form, form_cookie) = login_form(s).await;
    let mut r = client()
        .post(format!("{}/login", s.url))
        .header("cookie", form_cookie)
        .form_body(&[("key", key), ("form", form.as_str())]);
    if https {
        r = r.header("x-forwarded-proto", "https");
    }
    let resp = r.send().await.unwrap();
    assert_eq!(resp.status(), 303);
    assert_eq!(resp.headers()["location"], "/");
    let set = resp.headers()["set-cookie"].to_str().unwrap().to_string();
    let pair = set.split(';').next().unwrap().to_string();
    let page = client().get(format!("{}/", s.url)).header("cookie", &pair).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    let csrf = html.split("name=\"csrf-token\" content=\"").nth(1).unwrap().split('"').next().unwrap().to_string();
    assert!(csrf.len() >= 40, "{html}");
    (pair, csrf, set)
}

async fn with_cookie(
    s: &Server,
    m: Method,
    path: &str,
    cookie: &str,
    csrf: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut r = client().request(m, format!("{}{path}", s.url)).header("cookie", cookie);
    if let Some(c) = csrf {
        r = r.header("x-csrf-token", c);
    }
    if let Some(b) = body {
        r = r.json(&b);
    }
    let resp = r.send().await.unwrap();
    let code = resp.status().as_u16();
    (code, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test(flavor = "multi_thread")]
async fn console_login_cookie_csrf_and_404_pages() {
    let mock = agentd_testkit::MockOpenAi::start(vec![], 0).await.unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let member = make_key(&data, &["--role", "member", "--org", "acme"]);
    let other = make_key(&data, &["--role", "member", "--org", "globex"]);
    let s = Server::start_with(Opts { mock: Some(&mock.base_url), data_dir: Some(&data), ..Default::default() });
    let c = client();

    let r = c.get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/login"));
    let r = c.get(format!("{}/login", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert!(r.text().await.unwrap().contains("name=\"key\""));
    let (form, form_cookie) = login_form(&s).await;
    let r = c
        .post(format!("{}/login", s.url))
        .header("cookie", &form_cookie)
        .form_body(&[("key", "agk_not-a-real-key-at-all-000000000000000000"), ("form", form.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(!r.headers()["set-cookie"].to_str().unwrap().contains("agentd_login="), "no login cookie");
    assert!(r.text().await.unwrap().contains("role=\"alert\""));

    // Login CSRF: another site's auto-posted form has no form token of this
    // browser's (its SameSite cookie is not sent across sites), so it logs nobody in.
    // A pair the attacker made up itself (set through a sibling host) is not this server's.
    let forged = "lf_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA.1.00000000000000000000000000000000";
    let forged_cookie = format!("agentd_login_form={forged}");
    for (cookie, token) in [
        (None, ""),
        (None, form.as_str()),
        (Some(form_cookie.as_str()), "lf_other"),
        (Some(forged_cookie.as_str()), forged),
    ] {
        let mut r = c.post(format!("{}/login", s.url));
        if let Some(k) = cookie {
            r = r.header("cookie", k);
        }
        let r = r.form_body(&[("key", member.as_str()), ("form", token)]).send().await.unwrap();
        assert_eq!(r.status(), 403, "{cookie:?} {token}");
        assert!(!r.headers()["set-cookie"].to_str().unwrap().contains("agentd_login="));
    }
    let r = c
        .post(format!("{}/login", s.url))
        .header("cookie", &form_cookie)
        .header("origin", "https://evil.example")
        .form_body(&[("key", member.as_str()), ("form", form.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403, "a login posted from another site");

    let (cookie, csrf, set) = login(&s, &member, false).await;
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains("Secure"), "{set}");
    let (_, _, set_tls) = login(&s, &member, true).await;
    assert!(set_tls.contains("; Secure"), "{set_tls}");

    // Reads need the cookie only; changes need its CSRF token too.
    assert_eq!(with_cookie(&s, Method::GET, "/v1/sessions", &cookie, None, None).await.0, 200);
    let (code, v) = with_cookie(&s, Method::POST, "/v1/sessions", &cookie, None, Some(json!({}))).await;
    assert_eq!((code, v["error"]["code"].as_str()), (403, Some("forbidden")), "{v}");
    let (code, _) =
        with_cookie(&s, Method::POST, "/v1/sessions", &cookie, Some("x".repeat(43).as_str()), Some(json!({}))).await;
    assert_eq!(code, 403, "a wrong token");
    let (code, run) =
        with_cookie(&s, Method::POST, "/v1/runs", &cookie, Some(&csrf), Some(json!({"input": "hi"}))).await;
    assert_eq!(code, 202, "{run}");
    let (code, v) = with_cookie(&s, Method::GET, "/v1/audit", &cookie, None, None).await;
    assert_eq!(code, 403, "the login has its key's role: {v}");

    // Pages: their own ids render, others' and unknown ones are an HTML 404.
    let page = |path: String, cookie: String| {
        let c = c.clone();
        let url = format!("{}{path}", s.url);
        async move { c.get(url).header("cookie", cookie).header("accept", "text/html").send().await.unwrap() }
    };
    let own = run["id"].as_str().unwrap();
    assert_eq!(page(format!("/runs/{own}"), cookie.clone()).await.status(), 200);
    assert_eq!(page(format!("/chat/{}", run["session_id"].as_str().unwrap()), cookie.clone()).await.status(), 200);
    let (_, theirs) = call(&s, Some(&other), Method::POST, "/v1/runs", Some(json!({"input": "x"}))).await;
    for path in [
        format!("/runs/{}", theirs["id"].as_str().unwrap()),
        format!("/chat/{}", theirs["session_id"].as_str().unwrap()),
        "/runs/run_nope".into(),
        "/no/such/page".into(),
    ] {
        let r = page(path.clone(), cookie.clone()).await;
        assert_eq!(r.status(), 404, "{path}");
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
        let body = r.text().await.unwrap();
        assert!(
            body.contains("<html")
                && body.contains("Not found")
                && !body.contains(theirs["input"].as_str().unwrap_or("@@"))
        );
    }
    let r = c.get(format!("{}/assets/app.js", s.url)).send().await.unwrap();
    assert_eq!(
        (r.status().as_u16(), r.headers()["content-type"].to_str().unwrap()),
        (200, "text/javascript; charset=utf-8")
    );
    // Revalidation answers 304; a browser asking for gzip gets it (smaller).
    let tag = r.headers()["etag"].clone();
    let raw = r.bytes().await.unwrap().len();
    let r = c.get(format!("{}/assets/app.js", s.url)).header("if-none-match", tag).send().await.unwrap();
    assert_eq!(r.status(), 304);
    let r = c.get(format!("{}/assets/app.js", s.url)).header("accept-encoding", "gzip").send().await.unwrap();
    assert_eq!(r.headers().get("content-encoding").map(|v| v.to_str().unwrap()), Some("gzip"));
    let zipped = r.bytes().await.unwrap().len();
    assert!(zipped * 2 < raw, "gzip {zipped} bytes of {raw}");

    // Logout needs the page's token, then the cookie is dead.
    let r = c
        .post(format!("{}/logout", s.url))
        .header("cookie", &cookie)
        .form_body(&[("csrf", "stale")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let r = c
        .post(format!("{}/logout", s.url))
        .header("cookie", &cookie)
        .form_body(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    assert!(r.headers()["set-cookie"].to_str().unwrap().contains("Max-Age=0"));
    assert_eq!(with_cookie(&s, Method::GET, "/v1/sessions", &cookie, None, None).await.0, 401);

    // Revoking the key ends its logins at once.
    let (cookie, _, _) = login(&s, &member, false).await;
    let admin = make_key(&data, &["--role", "admin", "--org", "acme"]);
    let (_, keys) = call(&s, Some(&admin), Method::GET, "/v1/api-keys", None).await;
    let id = keys["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| member.starts_with(k["prefix"].as_str().unwrap()))
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(call(&s, Some(&admin), Method::DELETE, &format!("/v1/api-keys/{id}"), None).await.0, 200);
    assert_eq!(with_cookie(&s, Method::GET, "/v1/sessions", &cookie, None, None).await.0, 401);
    let r = c.get(format!("{}/", s.url)).header("cookie", &cookie).send().await.unwrap();
    assert_eq!(r.status(), 303, "back to the login page");
}

#[tokio::test(flavor = "multi_thread")]
async fn with_auth_off_the_console_needs_no_login() {
    let s = Server::start_with(Opts::default());
    let c = client();
    let r = c.get(format!("{}/", s.url)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let csp = r.headers()["content-security-policy"].to_str().unwrap().to_string();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
    assert!(r.text().await.unwrap().contains("/assets/app.js"));
    let r = c.get(format!("{}/login", s.url)).send().await.unwrap();
    assert_eq!((r.status().as_u16(), r.headers()["location"].to_str().unwrap()), (303, "/"));
    // Programs still get JSON for unknown routes.
    let (code, v) = s.get("/no/such/route").await;
    assert_eq!((code, v["error"]["code"].as_str()), (404, Some("route_not_found")));
}
