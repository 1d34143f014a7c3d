//! A small W3C WebDriver client over reqwest, driving Debian's Chromium
//! through `chromedriver` (headless, fresh profile, no network chatter):
//! enough to load pages, type, click, run scripts, read the browser's
//! console and save screenshots. Nothing is downloaded.

use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The W3C key for an element reference in JSON.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub(crate) struct Browser {
    http: reqwest::Client,
    session: String,
    driver: Child,
    _profile: tempfile::TempDir,
    /// Where screenshots go (`<artifacts>/<test>/`).
    shots: PathBuf,
}

impl Drop for Browser {
    /// Ends the WebDriver session (chromedriver closes Chromium), then kills
    /// chromedriver's whole process group: no browser outlives its test,
    /// even one that panicked mid-way.
    fn drop(&mut self) {
        end_session(&self.session);
        let pgid = self.driver.id();
        let _ = Command::new("kill").args(["-KILL", "--", &format!("-{pgid}")]).status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// `DELETE /session/{id}` over a plain socket (no runtime in `drop`).
fn end_session(session_url: &str) {
    use std::io::{Read, Write};
    let Some(rest) = session_url.strip_prefix("http://") else { return };
    let Some((host, path)) = rest.split_once('/') else { return };
    let Ok(mut s) = std::net::TcpStream::connect(host) else { return };
    let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
    let req = format!("DELETE /{path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).is_ok() {
        // The answer comes once the browser is closed; one read is enough to wait for it.
        let mut buf = [0u8; 1024];
        let _ = s.read(&mut buf);
    }
}

fn env(name: &str) -> String {
    std::env::var(name)
        .unwrap_or_else(|_| panic!("{name} is not set: run the suite with scripts/test (it installs Chromium)"))
}

impl Browser {
    /// Starts chromedriver and a headless Chromium window of this size.
    pub(crate) async fn start(test: &str, width: u32, height: u32) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // Its own process group, so the browser it starts can be killed with it.
        let driver = Command::new(env("AGENTD_TEST_CHROMEDRIVER"))
            .process_group(0)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let http = reqwest::Client::new();
        let base = format!("http://127.0.0.1:{port}");
        let ready = Instant::now();
        while http.get(format!("{base}/status")).send().await.is_err() {
            assert!(ready.elapsed() < Duration::from_secs(20), "chromedriver did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-quic".into(),
            "--no-first-run".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {"binary": env("AGENTD_TEST_CHROMIUM"), "args": args},
            "goog:loggingPrefs": {"browser": "ALL"},
        }}});
        let resp: Value = http.post(format!("{base}/session")).json(&caps).send().await.unwrap().json().await.unwrap();
        let id = resp["value"]["sessionId"].as_str().unwrap_or_else(|| panic!("no WebDriver session: {resp}"));
        let shots = PathBuf::from(std::env::var("AGENTD_TEST_ARTIFACTS").unwrap_or_else(|_| "target/artifacts".into()))
            .join(test);
        std::fs::create_dir_all(&shots).unwrap();
        Self { http, session: format!("{base}/session/{id}"), driver, _profile: profile, shots }
    }

    async fn cmd(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut r = self.http.request(method, format!("{}{path}", self.session));
        if let Some(b) = body {
            r = r.json(&b);
        }
        let v: Value = r.send().await.unwrap().json().await.unwrap();
        if let Some(e) = v["value"]["error"].as_str() {
            panic!("WebDriver {path}: {e}: {}", v["value"]["message"]);
        }
        v["value"].clone()
    }

    pub(crate) async fn goto(&self, url: &str) {
        self.cmd(reqwest::Method::POST, "/url", Some(json!({"url": url}))).await;
    }

    pub(crate) async fn url(&self) -> String {
        self.cmd(reqwest::Method::GET, "/url", None).await.as_str().unwrap_or_default().to_string()
    }

    /// The first element matching `css`, waiting up to 15 s for it.
    pub(crate) async fn find(&self, css: &str) -> String {
        let start = Instant::now();
        loop {
            let r: Value = self
                .http
                .post(format!("{}/element", self.session))
                .json(&json!({"using": "css selector", "value": css}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if let Some(id) = r["value"][ELEMENT].as_str() {
                return id.to_string();
            }
            assert!(start.elapsed() < Duration::from_secs(15), "no element {css} on {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub(crate) async fn click(&self, css: &str) {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/click"), Some(json!({}))).await;
    }

    /// Types into an element (WebDriver key codes: `\u{E007}` is Enter).
    pub(crate) async fn type_into(&self, css: &str, text: &str) {
        let id = self.find(css).await;
        self.cmd(reqwest::Method::POST, &format!("/element/{id}/value"), Some(json!({"text": text}))).await;
    }

    /// Runs a script in the page and returns its value.
    pub(crate) async fn exec(&self, script: &str) -> Value {
        self.cmd(reqwest::Method::POST, "/execute/sync", Some(json!({"script": script, "args": []}))).await
    }

    /// Waits up to 15 s for a script to return true.
    pub(crate) async fn wait_until(&self, what: &str, script: &str) {
        let start = Instant::now();
        while self.exec(script).await != Value::Bool(true) {
            assert!(start.elapsed() < Duration::from_secs(15), "timed out waiting for {what} on {}", self.url().await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The page's visible text.
    pub(crate) async fn text(&self) -> String {
        self.exec("return document.body.innerText").await.as_str().unwrap_or_default().to_string()
    }

    pub(crate) async fn resize(&self, width: u32, height: u32) {
        self.cmd(reqwest::Method::POST, "/window/rect", Some(json!({"width": width, "height": height}))).await;
    }

    /// Saves a PNG of the window as `<name>.png` among the test's artifacts.
    pub(crate) async fn screenshot(&self, name: &str) {
        use base64::Engine;
        let b64 = self.cmd(reqwest::Method::GET, "/screenshot", None).await;
        let png = base64::engine::general_purpose::STANDARD.decode(b64.as_str().unwrap()).unwrap();
        std::fs::write(self.shots.join(format!("{name}.png")), png).unwrap();
    }

    /// Errors the page logged since the last call (console errors, uncaught exceptions, failed loads).
    pub(crate) async fn console_errors(&self) -> Vec<String> {
        let v = self.cmd(reqwest::Method::POST, "/se/log", Some(json!({"type": "browser"}))).await;
        v.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["level"] == "SEVERE")
            .map(|e| e["message"].as_str().unwrap_or_default().to_string())
            .collect()
    }

    /// axe-core's serious and critical violations on the current page.
    pub(crate) async fn axe(&self) -> Vec<String> {
        let src = std::fs::read_to_string(env("AGENTD_TEST_AXE")).unwrap();
        let script = format!(
            "{src}\n;const done = arguments[arguments.length - 1];\
             axe.run(document, {{resultTypes: ['violations']}}).then(r => done(r.violations\
               .filter(v => v.impact === 'serious' || v.impact === 'critical')\
               .map(v => v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))\
             .catch(e => done(['axe failed: ' + e]));"
        );
        let v = self.cmd(reqwest::Method::POST, "/execute/async", Some(json!({"script": script, "args": []}))).await;
        v.as_array().unwrap().iter().map(|s| s.as_str().unwrap_or_default().to_string()).collect()
    }

    /// Checks the page: no console errors, axe clean, and a screenshot.
    pub(crate) async fn check(&self, name: &str) {
        self.screenshot(name).await;
        let errors = self.console_errors().await;
        assert!(errors.is_empty(), "console errors on {name}: {errors:?}");
        let bad = self.axe().await;
        assert!(bad.is_empty(), "accessibility violations on {name}: {bad:#?}");
    }
}
