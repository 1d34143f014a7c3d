//! What every HTTP adapter shares: the client, error mapping (with
//! `Retry-After`), and helpers for images and text.

use std::time::Duration;

use serde_json::Value;

use crate::ProviderError;

/// A client with these default headers; secret values are marked sensitive.
pub(crate) fn client(
    headers: &[(String, String)],
    secret: Option<(&str, String)>,
    timeout: Duration,
    guard: Option<&crate::Guard>,
) -> Result<reqwest::Client, ProviderError> {
    let mut map = reqwest::header::HeaderMap::new();
    for (k, v) in headers {
        let name = reqwest::header::HeaderName::from_bytes(k.as_bytes())
            .map_err(|_| ProviderError::Config(format!("invalid header name {k:?}")))?;
        let value = reqwest::header::HeaderValue::from_str(v)
            .map_err(|_| ProviderError::Config(format!("invalid value for header {k:?}")))?;
        map.insert(name, value);
    }
    if let Some((name, value)) = secret {
        let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| ProviderError::Config(format!("invalid header name {name:?}")))?;
        let mut v = reqwest::header::HeaderValue::from_str(&value)
            .map_err(|_| ProviderError::Config("api key contains invalid characters".into()))?;
        v.set_sensitive(true);
        map.insert(name, v);
    }
    let mut b =
        reqwest::Client::builder().default_headers(map).connect_timeout(Duration::from_secs(10)).read_timeout(timeout);
    if let Some(g) = guard {
        // A proxy would resolve the name itself, and a redirect could lead anywhere.
        b = b.dns_resolver(g.0.clone()).no_proxy().redirect(reqwest::redirect::Policy::none());
    }
    b.build().map_err(|e| ProviderError::Config(e.to_string()))
}

/// A whole (non-streamed) JSON answer; anything else is a malformed response.
pub(crate) async fn json_body(resp: reqwest::Response) -> Result<Value, ProviderError> {
    let bytes = resp.bytes().await.map_err(map_send_error)?;
    serde_json::from_slice(&bytes).map_err(|e| ProviderError::InvalidResponse(format!("body is not JSON: {e}")))
}

/// A provider's `check`: GET `url` answers 2xx.
pub(crate) async fn check(http: &reqwest::Client, url: String, base: &str) -> Result<String, ProviderError> {
    let resp = http.get(url).send().await.map_err(map_send_error)?;
    if !resp.status().is_success() {
        return Err(http_error(resp).await);
    }
    Ok(format!("{} reachable", without_userinfo(base)))
}

/// A URL as it may be shown: any `user:password@` dropped.
pub fn without_userinfo(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut u) if !u.username().is_empty() || u.password().is_some() => {
            let _ = u.set_username("");
            let _ = u.set_password(None);
            u.to_string()
        }
        Ok(_) => url.to_string(),
        // Unparsable: show nothing that might be a credential.
        Err(_) => agentd_core::redact::redact(url).into_owned(),
    }
}

pub(crate) fn map_send_error(e: reqwest::Error) -> ProviderError {
    if e.is_timeout() {
        ProviderError::Timeout
    } else {
        // Without the URL: it may carry credentials in query strings.
        ProviderError::Connect(e.without_url().to_string())
    }
}

/// `Retry-After` as seconds or an HTTP date; capped at ten minutes.
pub(crate) fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?.trim().to_string();
    let d = match v.parse::<f64>() {
        Ok(secs) if secs >= 0.0 => Duration::from_secs_f64(secs),
        _ => {
            let at = chrono::DateTime::parse_from_rfc2822(&v).ok()?;
            (at.with_timezone(&chrono::Utc) - chrono::Utc::now()).to_std().unwrap_or_default()
        }
    };
    Some(d.min(Duration::from_secs(600)))
}

/// Turns an error response into a short message: the provider's own
/// `error.message` (OpenAI, Anthropic) or `error` string (Ollama).
pub(crate) async fn http_error(resp: reqwest::Response) -> ProviderError {
    let status = resp.status().as_u16();
    let retry_after = retry_after(resp.headers());
    let body = resp.text().await.unwrap_or_default();
    let message = serde_json::from_str::<Value>(&body)
        .ok()
        .and_then(|v| v["error"]["message"].as_str().or(v["error"].as_str()).map(str::to_string))
        .unwrap_or(body);
    ProviderError::Http { status, message: truncate(&message, 500), retry_after }
}

pub(crate) fn truncate(s: &str, max: usize) -> String {
    agentd_core::text::truncate(s, max, "…")
}

/// A `data:` URL split into (media type, base64 payload).
pub(crate) fn data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media = meta.strip_suffix(";base64")?;
    Some((if media.is_empty() { "application/octet-stream" } else { media }, data))
}

/// A model's tool-call arguments: a JSON object, or the raw text kept as a string.
pub(crate) fn parse_arguments(raw: &str) -> Value {
    if raw.trim().is_empty() {
        return serde_json::json!({});
    }
    serde_json::from_str(raw.trim()).unwrap_or_else(|_| Value::String(raw.to_string()))
}

#[cfg(test)]
mod userinfo_tests {
    use super::without_userinfo;

    #[test]
    fn credentials_in_urls_are_never_shown() {
        assert_eq!(without_userinfo("http://user:PASSWORD@host:8080/v1"), "http://host:8080/v1");
        assert_eq!(without_userinfo("http://tok@host/v1"), "http://host/v1");
        assert_eq!(without_userinfo("http://host/v1"), "http://host/v1");
    }
}
