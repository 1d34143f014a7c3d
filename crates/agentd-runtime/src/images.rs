//! Images sent with a run's input: data URLs (or bare base64 with a media
//! type) and https URLs, size-limited, checked before anything is stored.

use agentd_core::ContentPart;
use agentd_core::ErrorCode;
use serde_json::Value;

use crate::RuntimeError;

/// Most images per message.
pub const MAX_IMAGES: usize = 8;
/// Largest decoded image.
pub const MAX_IMAGE_BYTES: usize = 5 * 1024 * 1024;
const TYPES: &[&str] = &["image/png", "image/jpeg", "image/gif", "image/webp"];

fn bad(i: usize, why: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::bad(ErrorCode::InvalidImage, format!("images[{i}]: {why}"))
}

/// One `images` entry: `"data:image/png;base64,…"`, `"https://…"`,
/// `{"url": …}` or `{"data": "<base64>", "media_type": "image/png"}`.
fn parse_one(i: usize, v: &Value) -> Result<ContentPart, RuntimeError> {
    let (url, given_type) = match v {
        Value::String(s) => (s.clone(), None),
        Value::Object(o) => match (o.get("url"), o.get("data"), o.get("media_type").and_then(Value::as_str)) {
            (Some(Value::String(u)), None, _) => (u.clone(), None),
            (None, Some(Value::String(d)), Some(t)) => (format!("data:{t};base64,{d}"), Some(t.to_string())),
            (None, Some(_), None) => return Err(bad(i, "base64 `data` needs a `media_type`")),
            _ => return Err(bad(i, "give `url`, or `data` with `media_type`")),
        },
        _ => return Err(bad(i, "must be a data URL, an https URL or an object")),
    };
    if url.starts_with("https://") {
        return Ok(ContentPart::Image { url, mime_type: given_type });
    }
    let Some(rest) = url.strip_prefix("data:") else {
        return Err(bad(i, "only data: URLs with base64 content and https: URLs are accepted"));
    };
    let Some((meta, data)) = rest.split_once(',') else { return Err(bad(i, "malformed data URL")) };
    let Some(media) = meta.strip_suffix(";base64") else { return Err(bad(i, "data URLs must be base64")) };
    if !TYPES.contains(&media) {
        return Err(bad(i, format!("unsupported media type {media:?} (use {})", TYPES.join(", "))));
    }
    let valid = data.len() % 4 == 0
        && !data.is_empty()
        && data.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/' || b == b'=');
    if !valid {
        return Err(bad(i, "the data is not valid base64"));
    }
    let size = data.len() / 4 * 3 - data.bytes().rev().take_while(|b| *b == b'=').count();
    if size > MAX_IMAGE_BYTES {
        return Err(bad(i, format!("{size} bytes is over the {MAX_IMAGE_BYTES}-byte limit")));
    }
    let media = media.to_string();
    Ok(ContentPart::Image { url, mime_type: Some(media) })
}

/// Checks the `images` of a request.
pub fn parse(v: &[Value]) -> Result<Vec<ContentPart>, RuntimeError> {
    if v.len() > MAX_IMAGES {
        return Err(RuntimeError::bad(ErrorCode::InvalidImage, format!("at most {MAX_IMAGES} images per message")));
    }
    v.iter().enumerate().map(|(i, x)| parse_one(i, x)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn accepts_data_urls_and_https_and_refuses_the_rest() {
        let ok = parse(&[
            json!("data:image/png;base64,iVBORw0KGgo="),
            json!({"data": "iVBORw0KGgo=", "media_type": "image/png"}),
            json!({"url": "https://example.com/cat.jpg"}),
        ])
        .unwrap();
        assert_eq!(ok.len(), 3);
        for bad in [
            json!("http://example.com/x.png"),
            json!("data:text/html;base64,PGI+"),
            json!("data:image/png;base64,not base64!"),
            json!({"data": "iVBORw0KGgo="}),
            json!(42),
        ] {
            assert!(parse(std::slice::from_ref(&bad)).is_err(), "{bad}");
        }
        let big = format!("data:image/png;base64,{}", "A".repeat(MAX_IMAGE_BYTES / 3 * 4 + 8));
        assert!(parse(&[json!(big)]).is_err());
        assert!(parse(&vec![json!("https://x.io/a.png"); MAX_IMAGES + 1]).is_err());
    }
}
