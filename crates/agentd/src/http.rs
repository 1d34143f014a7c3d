//! The HTTP client every command that talks to a server uses; answers are
//! read as the API crate's types.

use anyhow::Context;
use serde::de::DeserializeOwned;

use crate::opts::RemoteOpts;

pub(crate) fn client(remote: Option<&RemoteOpts>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(r) = remote {
        for (name, v) in [("x-org-id", &r.org), ("x-user-id", &r.user), ("x-project-id", &r.project)] {
            if let Some(v) = v {
                headers.insert(name, v.parse().context("invalid scope value")?);
            }
        }
        if let Some(k) = &r.api_key {
            headers.insert(reqwest::header::AUTHORIZATION, bearer(k)?);
        }
    }
    Ok(reqwest::Client::builder().default_headers(headers).build()?)
}

/// A client that sends this API key (if any) on every request.
pub(crate) fn keyed_client(api_key: Option<&str>) -> anyhow::Result<reqwest::Client> {
    let mut headers = reqwest::header::HeaderMap::new();
    if let Some(k) = api_key {
        headers.insert(reqwest::header::AUTHORIZATION, bearer(k)?);
    }
    Ok(reqwest::Client::builder().default_headers(headers).build()?)
}

/// `Bearer <key>`, marked sensitive so it never shows in debug output.
pub(crate) fn bearer(key: &str) -> anyhow::Result<reqwest::header::HeaderValue> {
    let mut v: reqwest::header::HeaderValue = format!("Bearer {key}").parse().context("invalid API key")?;
    v.set_sensitive(true);
    Ok(v)
}

async fn error_of(resp: reqwest::Response) -> anyhow::Error {
    let status = resp.status();
    match resp.json::<agentd_api::ErrorBody>().await {
        Ok(b) => anyhow::anyhow!("server answered {status}: {} {}", b.error.code, b.error.message),
        Err(_) => anyhow::anyhow!("server answered {status}"),
    }
}

/// Sends a request; a non-2xx answer becomes an error with the server's code and message.
pub(crate) async fn send(req: reqwest::RequestBuilder, url: &str) -> anyhow::Result<reqwest::Response> {
    let resp = req.send().await.with_context(|| format!("cannot reach {url}"))?;
    if !resp.status().is_success() {
        return Err(error_of(resp).await);
    }
    Ok(resp)
}

/// Sends a request and reads its answer as `T`.
pub(crate) async fn fetch<T: DeserializeOwned>(req: reqwest::RequestBuilder, url: &str) -> anyhow::Result<T> {
    send(req, url).await?.json::<T>().await.context("the server's answer is not what this CLI expects")
}
