//! The HTTP client every command that talks to a server uses.

use anyhow::Context;
use serde_json::Value;

use crate::cli::RemoteOpts;

pub(crate) fn client(remote: Option<&RemoteOpts>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(r) = remote {
        for (name, v) in [("x-org-id", &r.org), ("x-user-id", &r.user), ("x-project-id", &r.project)] {
            if let Some(v) = v {
                headers.insert(name, v.parse().context("invalid scope value")?);
            }
        }
    }
    Ok(reqwest::Client::builder().default_headers(headers).build()?)
}

async fn error_of(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    anyhow::anyhow!(
        "server answered {status}: {} {}",
        body["error"]["code"].as_str().unwrap_or(""),
        body["error"]["message"].as_str().unwrap_or("")
    )
}

/// Sends a request; a non-2xx answer becomes an error with the server's code and message.
pub(crate) async fn send(req: reqwest::RequestBuilder, url: &str) -> anyhow::Result<reqwest::Response> {
    let resp = req.send().await.with_context(|| format!("cannot reach {url}"))?;
    if !resp.status().is_success() {
        return Err(error_of(resp).await);
    }
    Ok(resp)
}
