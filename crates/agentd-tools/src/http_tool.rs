//! Tools registered at run time (`/v1/http-tools`): calling one POSTs the
//! arguments as JSON to its URL and answers the response.

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use agentd_core::{HeaderSpec, HttpToolDef, ToolSpec};
use async_trait::async_trait;
use futures::StreamExt;

use crate::{Tool, ToolContext, ToolOutput};

const MAX_BODY: usize = 1024 * 1024;
/// Secret headers may only come from variables with this prefix, so a
/// tenant cannot have the server send its own credentials anywhere.
pub const SECRET_ENV_PREFIX: &str = "AGENTD_SECRET_";

/// Which hosts each secret may be sent to (`[secrets.http_hosts]`); a
/// secret without an entry is sent nowhere.
fn secret_hosts() -> &'static std::sync::RwLock<std::collections::BTreeMap<String, Vec<String>>> {
    static H: OnceLock<std::sync::RwLock<std::collections::BTreeMap<String, Vec<String>>>> = OnceLock::new();
    H.get_or_init(Default::default)
}

/// Sets the hosts each `AGENTD_SECRET_*` variable may be sent to.
pub fn set_secret_hosts(map: std::collections::BTreeMap<String, Vec<String>>) {
    *secret_hosts().write().unwrap_or_else(|e| e.into_inner()) = map;
}

/// Refuses sending secret `var` to `url` when the operator limited where it may go.
fn secret_allowed(var: &str, url: &str) -> Result<(), String> {
    let map = secret_hosts().read().unwrap_or_else(|e| e.into_inner());
    let Some(hosts) = map.get(var) else {
        return Err(format!("{var} is not listed in [secrets.http_hosts], so it is sent to no host"));
    };
    let Ok(u) = reqwest::Url::parse(url) else { return Err(format!("{var}: the URL does not parse")) };
    if hosts.iter().any(|entry| secret_entry_matches(entry, &u)) {
        Ok(())
    } else {
        let host = u.host_str().unwrap_or_default();
        Err(format!(
            "{var} may only be sent to {} (see [secrets.http_hosts]), not to {}://{host}",
            hosts.join(", "),
            u.scheme()
        ))
    }
}

/// An entry is `host` or `host:port` (HTTPS only, so a secret never travels
/// in clear text), or `http://host[:port]` / `https://host[:port]`.
fn secret_entry_matches(entry: &str, u: &reqwest::Url) -> bool {
    let (scheme, rest) = match entry.split_once("://") {
        Some((s, r)) => (s.to_ascii_lowercase(), r),
        None => ("https".to_string(), entry),
    };
    let (host, port) = match rest.rsplit_once(':').filter(|(_, p)| p.chars().all(|c| c.is_ascii_digit())) {
        Some((h, p)) => (h, p.parse::<u16>().ok()),
        None => (rest, None),
    };
    let host_ok =
        u.host_str().is_some_and(|h| h.trim_matches(['[', ']']).eq_ignore_ascii_case(host.trim_matches(['[', ']'])));
    host_ok && u.scheme() == scheme && port.is_none_or(|p| u.port_or_known_default() == Some(p))
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
    if let Err(e) = crate::compile_schema(&def.input_schema) {
        return Err(format!("`input_schema` is not a valid JSON Schema: {e}"));
    }
    for (h, var) in &def.secret_headers {
        if !var.starts_with(SECRET_ENV_PREFIX) {
            return Err(format!("secret header {h}: environment variable names must start with {SECRET_ENV_PREFIX}"));
        }
        secret_allowed(var, &def.url).map_err(|e| format!("secret header {h}: {e}"))?;
    }
    for (h, v) in &def.headers {
        if let HeaderSpec::Secret { secret } = v
            && (secret.is_empty() || secret.len() > 128)
        {
            return Err(format!("header {h}: the secret's name must be 1-128 characters"));
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
    /// The values of headers that name a tenant secret (or why it could not be opened).
    secrets: BTreeMap<String, Result<String, String>>,
}

impl HttpTool {
    /// A tool whose headers name no tenant secret.
    pub fn new(def: HttpToolDef) -> Self {
        Self { def, secrets: BTreeMap::new() }
    }

    /// A tool with the opened values of the secrets its headers name (header → value).
    pub fn with_secrets(def: HttpToolDef, secrets: BTreeMap<String, Result<String, String>>) -> Self {
        Self { def, secrets }
    }

    /// The headers that name a tenant secret: (header, secret name).
    pub fn secret_refs(def: &HttpToolDef) -> Vec<(String, String)> {
        def.headers
            .iter()
            .filter_map(|(h, v)| match v {
                HeaderSpec::Secret { secret } => Some((h.clone(), secret.clone())),
                HeaderSpec::Value(_) => None,
            })
            .collect()
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
        let Ok(url) = reqwest::Url::parse(&self.def.url) else { return ToolOutput::error("the tool's URL is invalid") };
        let mut headers = reqwest::header::HeaderMap::new();
        let mut pairs = vec![];
        for (k, v) in &self.def.headers {
            match v {
                HeaderSpec::Value(v) => pairs.push((k, v.clone())),
                HeaderSpec::Secret { secret } => match self.secrets.get(k) {
                    Some(Ok(v)) => pairs.push((k, v.clone())),
                    Some(Err(why)) => return ToolOutput::error(format!("header {k}: {why}")),
                    None => return ToolOutput::error(format!("header {k}: the secret {secret:?} was not opened")),
                },
            }
        }
        let mut secret_pairs = vec![];
        for (k, var) in &self.def.secret_headers {
            // Checked again at call time: the allowlist may have changed since registration.
            if let Err(e) = secret_allowed(var, &self.def.url) {
                return ToolOutput::error(e);
            }
            match std::env::var(var) {
                Ok(v) => secret_pairs.push((k, v)),
                Err(_) => {
                    return ToolOutput::error(format!("the secret for header {k} ({var}) is not set on the server"));
                }
            }
        }
        for (k, v) in pairs.into_iter().chain(secret_pairs) {
            match (reqwest::header::HeaderName::from_bytes(k.as_bytes()), reqwest::header::HeaderValue::from_str(&v)) {
                (Ok(k), Ok(mut v)) => {
                    v.set_sensitive(true);
                    headers.insert(k, v);
                }
                _ => return ToolOutput::error(format!("header {k} is not a valid header")),
            }
        }
        let (timeout, key) = (Duration::from_millis(self.def.timeout_ms), ctx.idempotency_key.clone());
        let build = move |r: reqwest::RequestBuilder, _| {
            r.timeout(timeout).header("Idempotency-Key", &key).headers(headers.clone()).json(&args)
        };
        let sent = crate::egress::send(&ctx.org, reqwest::Method::POST, url, false, build);
        let resp = tokio::select! {
            r = sent => r,
            _ = ctx.cancel.cancelled() => return ToolOutput::error("cancelled"),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) if e == "no answer in time" => {
                return ToolOutput::error(format!("no answer within {} ms", self.def.timeout_ms));
            }
            Err(e) => return ToolOutput::error(e),
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
