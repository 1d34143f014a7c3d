//! Tools registered at run time (`/v1/http-tools`): calling one POSTs the
//! arguments as JSON to its URL and answers the response.

use std::sync::OnceLock;
use std::time::Duration;

use agentd_core::{HttpToolDef, ToolSpec};
use async_trait::async_trait;
use futures::StreamExt;

use crate::{Tool, ToolContext, ToolOutput};

const MAX_BODY: usize = 1024 * 1024;
/// Secret headers may only come from variables with this prefix, so a
/// tenant cannot have the server send its own credentials anywhere.
pub const SECRET_ENV_PREFIX: &str = "AGENTD_SECRET_";

fn client() -> &'static reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT.get_or_init(|| {
        reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .user_agent("agentd-http-tool")
            .build()
            .unwrap_or_default()
    })
}

/// Checks a definition before it is stored; the error says what is wrong.
pub fn validate_http_tool(def: &HttpToolDef) -> Result<(), String> {
    let name_ok = !def.name.is_empty()
        && def.name.len() <= 64
        && def.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        && !def.name.starts_with("mcp__");
    if !name_ok {
        return Err("`name` must be 1-64 characters of [A-Za-z0-9_-] and not start with mcp__".into());
    }
    match reqwest::Url::parse(&def.url) {
        Ok(u) if matches!(u.scheme(), "http" | "https") => {}
        _ => return Err("`url` must be an http(s) URL".into()),
    }
    if !def.input_schema.is_object() {
        return Err("`input_schema` must be a JSON Schema object".into());
    }
    if let Err(e) = jsonschema::validator_for(&def.input_schema) {
        return Err(format!("`input_schema` is not a valid JSON Schema: {e}"));
    }
    for (h, var) in &def.secret_headers {
        if !var.starts_with(SECRET_ENV_PREFIX) {
            return Err(format!("secret header {h}: environment variable names must start with {SECRET_ENV_PREFIX}"));
        }
    }
    for h in def.headers.keys().chain(def.secret_headers.keys()) {
        if reqwest::header::HeaderName::from_bytes(h.as_bytes()).is_err() {
            return Err(format!("invalid header name {h:?}"));
        }
    }
    if def.timeout_ms == 0 || def.timeout_ms > 120_000 {
        return Err("`timeout_ms` must be between 1 and 120000".into());
    }
    Ok(())
}

/// A registered HTTP tool.
pub struct HttpTool {
    def: HttpToolDef,
}

impl HttpTool {
    pub fn new(def: HttpToolDef) -> Self {
        Self { def }
    }

    /// Checks arguments against the registered schema; the error names the field.
    pub fn check(&self, args: &serde_json::Value) -> Result<(), crate::InvalidArguments> {
        crate::check_args(&self.def.name, &self.def.input_schema, args)
    }
}

#[async_trait]
impl Tool for HttpTool {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: self.def.name.clone(),
            description: self.def.description.clone(),
            input_schema: self.def.input_schema.clone(),
        }
    }

    fn idempotent(&self) -> bool {
        false
    }
    fn fence(&self) -> serde_json::Value {
        serde_json::json!({"adapter": "in-process", "mode": "none", "network": true})
    }

    async fn call(&self, args: serde_json::Value, ctx: ToolContext) -> ToolOutput {
        if let Err(e) = self.check(&args) {
            return ToolOutput::error(e.to_string());
        }
        let mut req = client()
            .post(&self.def.url)
            .timeout(Duration::from_millis(self.def.timeout_ms))
            .header("Idempotency-Key", &ctx.idempotency_key)
            .json(&args);
        for (k, v) in &self.def.headers {
            req = req.header(k, v);
        }
        for (k, var) in &self.def.secret_headers {
            match std::env::var(var) {
                Ok(v) => req = req.header(k, v),
                Err(_) => {
                    return ToolOutput::error(format!("the secret for header {k} ({var}) is not set on the server"));
                }
            }
        }
        let resp = tokio::select! {
            r = req.send() => r,
            _ = ctx.cancel.cancelled() => return ToolOutput::error("cancelled"),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) if e.is_timeout() => {
                return ToolOutput::error(format!("no answer within {} ms", self.def.timeout_ms));
            }
            Err(e) => return ToolOutput::error(format!("request failed: {}", e.without_url())),
        };
        let status = resp.status();
        let mut body = Vec::new();
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { return ToolOutput::error("the response broke off") };
            if body.len() + chunk.len() > MAX_BODY {
                return ToolOutput::error(format!("the response is larger than {MAX_BODY} bytes"));
            }
            body.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&body).into_owned();
        if status.is_success() {
            ToolOutput::text(text)
        } else {
            ToolOutput::error(format!("HTTP {}: {text}", status.as_u16()))
        }
    }
}
