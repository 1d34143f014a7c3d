//! `http_fetch`: GET or POST a URL with size and time limits; HTML comes
//! back as readable text.

use std::time::Duration;

use agentd_core::ToolSpec;
use async_trait::async_trait;
use futures::StreamExt;
use serde_json::{Value, json};

use crate::{Tool, ToolContext, ToolOutput};

const MAX_BODY: usize = 2 * 1024 * 1024;
const MAX_TEXT: usize = 256 * 1024;

/// Every request and every redirect goes through the egress guard.
#[derive(Default)]
pub(crate) struct HttpFetch;

/// Visible text of an HTML page: no scripts, styles or tags; entities decoded.
pub fn html_to_text(html: &str) -> String {
    let lower = html.to_ascii_lowercase();
    let mut out = String::with_capacity(html.len() / 2);
    let mut i = 0;
    let bytes = html.as_bytes();
    while i < bytes.len() {
        if bytes[i] == b'<' {
            let rest = &lower[i..];
            let skip_to = ["script", "style", "noscript"]
                .iter()
                .find_map(|t| rest.starts_with(&format!("<{t}")).then(|| rest.find(&format!("</{t}")).map(|e| i + e)));
            let from = match skip_to {
                Some(Some(end)) => end,
                Some(None) => break,
                None => i,
            };
            match html[from..].find('>') {
                Some(e) => {
                    let tag = &lower[from..from + e];
                    if ["<br", "<p", "</p", "<div", "</div", "<li", "<h", "</h", "<tr"]
                        .iter()
                        .any(|t| tag.starts_with(t))
                    {
                        out.push('\n');
                    } else {
                        out.push(' ');
                    }
                    i = from + e + 1;
                }
                None => break,
            }
        } else {
            let next = html[i..].find('<').map_or(html.len(), |n| i + n);
            out.push_str(&html[i..next]);
            i = next;
        }
    }
    let decoded = out
        .replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&");
    let mut lines: Vec<String> = vec![];
    for l in decoded.lines() {
        let l = l.split_whitespace().collect::<Vec<_>>().join(" ");
        if !l.is_empty() {
            lines.push(l);
        }
    }
    lines.join("\n")
}

#[async_trait]
impl Tool for HttpFetch {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "http_fetch".into(),
            description:
                "Fetches a URL (GET, or POST with a body). HTML is returned as text; bodies are capped at 2 MiB.".into(),
            input_schema: json!({"type": "object", "required": ["url"], "additionalProperties": false, "properties": {
                "url": {"type": "string", "pattern": "^https?://"},
                "method": {"type": "string", "enum": ["GET", "POST"]},
                "body": {"type": ["string", "object", "array"]}
            }}),
        }
    }

    fn idempotent(&self) -> bool {
        false
    }
    fn fence(&self) -> serde_json::Value {
        serde_json::json!({"adapter": "in-process", "mode": "none", "network": true})
    }

    async fn call(&self, args: Value, ctx: ToolContext) -> ToolOutput {
        let Some(url) = args["url"].as_str() else { return ToolOutput::error("`url` must be a string") };
        let Ok(parsed) = reqwest::Url::parse(url) else { return ToolOutput::error(format!("invalid URL {url:?}")) };
        if !matches!(parsed.scheme(), "http" | "https") {
            return ToolOutput::error("only http and https URLs can be fetched");
        }
        let method = match args["method"].as_str().unwrap_or("GET") {
            "GET" => reqwest::Method::GET,
            "POST" => reqwest::Method::POST,
            m => return ToolOutput::error(format!("method {m:?} is not supported (GET or POST)")),
        };
        let (body, key) = (args["body"].clone(), ctx.idempotency_key.clone());
        let build = move |r: reqwest::RequestBuilder, with_body: bool| {
            let r = r.timeout(Duration::from_secs(30)).header("Idempotency-Key", &key);
            match (&body, with_body) {
                (Value::Null, _) | (_, false) => r,
                (Value::String(s), true) => r.body(s.clone()),
                (other, true) => r.json(other),
            }
        };
        let sent = crate::egress::send(&ctx.org, method, parsed, true, build);
        let resp = tokio::select! {
            r = sent => r,
            _ = ctx.cancel.cancelled() => return ToolOutput::error("cancelled"),
        };
        let resp = match resp {
            Ok(r) => r,
            Err(e) => return ToolOutput::error(e),
        };
        let status = resp.status();
        let ctype = resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
        let mut body = Vec::new();
        let mut cut = false;
        let mut stream = resp.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let Ok(chunk) = chunk else { return ToolOutput::error("the response broke off") };
            if body.len() + chunk.len() > MAX_BODY {
                body.extend_from_slice(&chunk[..MAX_BODY - body.len()]);
                cut = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        let raw = String::from_utf8_lossy(&body);
        let mut text = if ctype.contains("html") { html_to_text(&raw) } else { raw.into_owned() };
        if text.len() > MAX_TEXT {
            text = agentd_core::text::prefix(&text, MAX_TEXT).to_string();
            cut = true;
        }
        if cut {
            text.push_str("\n[… truncated]");
        }
        let out = format!("HTTP {}\ncontent-type: {ctype}\n\n{text}", status.as_u16());
        ToolOutput {
            content: vec![agentd_core::ContentPart::text(out)],
            is_error: status.is_client_error() || status.is_server_error(),
            sandbox: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_becomes_text() {
        let t = html_to_text(
            "<html><head><style>p{}</style><script>x()</script></head><body><h1>Title</h1><p>a &amp; b</p>x<br>y</body></html>",
        );
        assert_eq!(t, "Title\na & b\nx\ny");
    }
}
