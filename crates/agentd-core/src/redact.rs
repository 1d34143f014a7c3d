//! Secret redaction: configured secret values and common key shapes are
//! masked before anything is stored, logged or answered. The stores call
//! [`redact_value_for`] on every event, so no path into the journal skips it.
//!
//! Masks are scoped: the server's own secrets (its environment, its
//! providers' keys) mask everything; a tenant's secrets mask only that
//! tenant's data, so one tenant's secret never rewrites, nor is confirmed
//! by, another's. Logs, which only operators read, mask every tenant's.
//! Only string values change: object keys and the identifiers a run needs
//! to be replayed (call ids, tool names, event types) are never touched.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, OnceLock, RwLock};

use regex::Regex;

use crate::Tenant;

/// What a secret is replaced with.
pub const MASK: &str = "[REDACTED]";

/// Shorter values are not masked (they would mask ordinary words).
pub const MIN_SECRET_LEN: usize = 8;

/// Values masked for one tenant at most (a tenant cannot grow the list,
/// and the time each write spends on it, without bound).
const MAX_TENANT_VALUES: usize = 1_000;

#[derive(Default)]
struct Masks {
    server: Arc<Vec<String>>,
    tenants: HashMap<Tenant, Arc<Vec<String>>>,
}

fn masks() -> &'static RwLock<Masks> {
    static S: OnceLock<RwLock<Masks>> = OnceLock::new();
    S.get_or_init(|| RwLock::new(Masks::default()))
}

fn server_values() -> Arc<Vec<String>> {
    masks().read().unwrap_or_else(|e| e.into_inner()).server.clone()
}

fn tenant_values(t: &Tenant) -> Option<Arc<Vec<String>>> {
    masks().read().unwrap_or_else(|e| e.into_inner()).tenants.get(t).cloned()
}

/// Common key shapes: OpenAI/Anthropic, AWS, GitHub, Slack, Google, JWTs,
/// bearer tokens, private keys.
fn shapes() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        let raw: &[(&str, &str)] = &[
            (r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----", MASK),
            (r"\bsk-[A-Za-z0-9_\-]{16,}", MASK),
            (r"\bAKIA[0-9A-Z]{16}\b", MASK),
            (r"\bgh[pousr]_[A-Za-z0-9]{30,}", MASK),
            (r"\bgithub_pat_[A-Za-z0-9_]{30,}", MASK),
            (r"\bxox[abprs]-[A-Za-z0-9\-]{10,}", MASK),
            (r"\bAIza[0-9A-Za-z_\-]{35}", MASK),
            (r"\beyJ[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}\.[A-Za-z0-9_\-]{10,}", MASK),
            (r"(?i)\b(bearer|token)\s+[A-Za-z0-9\-._~+/]{16,}=*", "$1 [REDACTED]"),
            // The userinfo of a URL such as postgres://user:password@host
            // or https://token@host.
            (r"([a-z][a-z0-9+.\-]*://)[^/\s@]+@", "${1}[REDACTED]@"),
        ];
        raw.iter().filter_map(|(re, with)| Regex::new(re).ok().map(|r| (r, *with))).collect()
    })
}

fn normalised(values: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut v: Vec<String> = values.into_iter().filter(|s| s.len() >= MIN_SECRET_LEN).collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    v.dedup();
    v
}

/// Replaces the server's secret values (longest first, short ones dropped).
pub fn set_secrets(values: impl IntoIterator<Item = String>) {
    masks().write().unwrap_or_else(|e| e.into_inner()).server = Arc::new(normalised(values));
}

/// Adds values to the server's secrets (they mask every tenant's data).
pub fn add_secrets(values: impl IntoIterator<Item = String>) {
    let mut all: Vec<String> = server_values().as_ref().clone();
    all.extend(values);
    set_secrets(all);
}

/// Adds values to one tenant's secrets: they mask that tenant's data only.
pub fn add_tenant_secrets(t: &Tenant, values: impl IntoIterator<Item = String>) {
    let mut m = masks().write().unwrap_or_else(|e| e.into_inner());
    let mut all: Vec<String> = m.tenants.get(t).map(|v| v.as_ref().clone()).unwrap_or_default();
    let before = all.len();
    all.extend(values.into_iter().filter(|v| !all_contains(&m.server, v)));
    if all.len() == before {
        return;
    }
    let mut all = normalised(all);
    all.truncate(MAX_TENANT_VALUES);
    m.tenants.insert(t.clone(), Arc::new(all));
}

fn all_contains(v: &[String], x: &str) -> bool {
    v.iter().any(|y| y == x)
}

/// Values of environment variables that look secret (`*_KEY`, `*TOKEN*`,
/// `*SECRET*`, `*PASSWORD*`, …) plus the named ones.
pub fn secrets_from_env(also: &[String]) -> Vec<String> {
    let secretish = |name: &str| {
        let n = name.to_ascii_uppercase();
        ["KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL", "PRIVATE"].iter().any(|w| n.contains(w))
    };
    std::env::vars().filter(|(k, _)| secretish(k) || also.contains(k)).map(|(_, v)| v).collect()
}

fn mask_values<'a>(mut out: Cow<'a, str>, values: &[String]) -> Cow<'a, str> {
    for v in values {
        if out.contains(v.as_str()) {
            out = Cow::Owned(out.replace(v.as_str(), MASK));
        }
    }
    out
}

fn mask_shapes(mut out: Cow<'_, str>) -> Cow<'_, str> {
    for (re, with) in shapes() {
        if re.is_match(&out) {
            out = Cow::Owned(re.replace_all(&out, *with).into_owned());
        }
    }
    out
}

fn without_nul(s: &str) -> Cow<'_, str> {
    if s.contains('\0') { Cow::Owned(s.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(s) }
}

/// The text with the server's secrets and key shapes masked (borrowed when
/// nothing matched); for text that belongs to no tenant. NUL characters,
/// which databases cannot store as text, become U+FFFD.
pub fn redact(s: &str) -> Cow<'_, str> {
    mask_shapes(mask_values(without_nul(s), &server_values()))
}

/// The text of one tenant with the server's secrets, the tenant's own and
/// key shapes masked.
pub fn redact_for<'a>(t: &Tenant, s: &'a str) -> Cow<'a, str> {
    mask_with(s, &server_values(), tenant_values(t).as_deref().map(Vec::as_slice))
}

/// Masks a stream of text chunks (a model's live answer) for one tenant: the
/// end of what was seen is held back while it could still be the start of
/// a secret, so a secret split across chunks never streams in clear.
#[derive(Debug)]
pub struct StreamMask {
    tenant: Tenant,
    held: String,
}

impl StreamMask {
    pub fn new(tenant: &Tenant) -> Self {
        Self { tenant: tenant.clone(), held: String::new() }
    }

    /// The text of `chunk` that may be shown now (possibly empty).
    pub fn push(&mut self, chunk: &str) -> String {
        let mut buf = std::mem::take(&mut self.held);
        buf.push_str(chunk);
        let masked = redact_for(&self.tenant, &buf).into_owned();
        let server = server_values();
        let own = tenant_values(&self.tenant);
        let values = server.iter().chain(own.iter().flat_map(|v| v.iter()));
        // The earliest place a secret may begin and run past the end.
        let mut cut = masked.len();
        for v in values {
            let from = masked.len().saturating_sub(v.len().saturating_sub(1));
            for (i, _) in masked.char_indices().filter(|(i, _)| *i >= from && *i < cut) {
                if v.starts_with(&masked[i..]) {
                    cut = i;
                    break;
                }
            }
        }
        self.held = masked[cut..].to_string();
        masked[..cut].to_string()
    }

    /// What is still held back, when the stream ends.
    pub fn finish(&mut self) -> String {
        let rest = std::mem::take(&mut self.held);
        redact_for(&self.tenant, &rest).into_owned()
    }
}

/// For log lines, which only operators read: every tenant's secrets too.
pub fn redact_all(s: &str) -> Cow<'_, str> {
    let lists: Vec<Arc<Vec<String>>> = {
        let m = masks().read().unwrap_or_else(|e| e.into_inner());
        std::iter::once(m.server.clone()).chain(m.tenants.values().cloned()).collect()
    };
    let mut out = without_nul(s);
    for l in &lists {
        out = mask_values(out, l);
    }
    mask_shapes(out)
}

/// The text with the server's own secret values masked (not key shapes:
/// for values a tenant supplies on purpose, such as its own auth headers).
pub fn redact_known(s: &str) -> Cow<'_, str> {
    mask_values(Cow::Borrowed(s), &server_values())
}

/// Masks secrets in every string value of a JSON value, never a key; true
/// if anything changed. `None`: the server's secrets only. Masking is
/// deterministic, so an identifier holding a secret (a call id a model
/// chose) becomes the same text wherever it appears: a call and its result
/// stay paired, and a run replays from the journal as it ran. Fit secrets
/// (see [`unfit_secret`]) are never the words a run's structure is made of.
pub fn redact_value_for(t: Option<&Tenant>, v: &mut serde_json::Value) -> bool {
    let server = server_values();
    let own = t.and_then(tenant_values);
    redact_in(v, &|s| mask_with(s, &server, own.as_deref().map(Vec::as_slice)))
}

/// [`redact_value_for`] with the server's secrets only.
pub fn redact_value(v: &mut serde_json::Value) -> bool {
    redact_value_for(None, v)
}

fn mask_with<'a>(s: &'a str, server: &[String], own: Option<&[String]>) -> Cow<'a, str> {
    let mut out = mask_values(without_nul(s), server);
    if let Some(own) = own {
        out = mask_values(out, own);
    }
    mask_shapes(out)
}

fn redact_in(v: &mut serde_json::Value, mask: &dyn for<'a> Fn(&'a str) -> Cow<'a, str>) -> bool {
    match v {
        serde_json::Value::String(s) => match mask(s) {
            Cow::Borrowed(_) => false,
            Cow::Owned(o) => {
                *s = o;
                true
            }
        },
        serde_json::Value::Array(a) => a.iter_mut().fold(false, |acc, x| redact_in(x, mask) | acc),
        serde_json::Value::Object(m) => m.values_mut().fold(false, |acc, x| redact_in(x, mask) | acc),
        _ => false,
    }
}

/// Why a value may not be a tenant secret, if it may not: too short, or so
/// common (a plain word or phrase, a field name) that masking it would
/// rewrite ordinary text.
pub fn unfit_secret(value: &str) -> Option<String> {
    if value.len() < MIN_SECRET_LEN {
        return Some(format!("a secret must be at least {MIN_SECRET_LEN} bytes: shorter values are not masked"));
    }
    let classes = [
        value.bytes().any(|b| b.is_ascii_lowercase()),
        value.bytes().any(|b| b.is_ascii_uppercase()),
        value.bytes().any(|b| b.is_ascii_digit()),
        value.bytes().any(|b| !b.is_ascii_alphanumeric() && !b" _-".contains(&b)),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    // Text every tenant's data is full of: protocol words, URL and date pieces.
    const COMMON: &[&str] = &[
        "application/json",
        "text/plain",
        "https://",
        "http://",
        "\"content\":",
        "\"role\":",
        "tool_calls",
        "content-type",
        "authorization",
        "assistant",
        "function",
        "[REDACTED]",
    ];
    if value.contains(MASK) || COMMON.iter().any(|c| c.contains(value)) {
        return Some("this value is common protocol text: masking it would rewrite ordinary data".into());
    }
    if value.chars().count() < 24 && value.chars().all(|c| c.is_ascii_digit() || "-:T.Z+ /".contains(c)) {
        return Some("this value looks like a date, a time or a number: masking it would rewrite ordinary data".into());
    }
    // A word with digits after it (`assistant1`, `Password123`) is a word.
    let stem = value.trim_end_matches(|c: char| c.is_ascii_digit());
    let wordlike = stem.chars().all(|c| c.is_alphabetic() || " _-".contains(c));
    if wordlike && value.chars().count() < 24 {
        return Some(
            "this value looks like ordinary words (letters only, under 24 characters): masking it would \
             rewrite ordinary text; use a real credential"
                .into(),
        );
    }
    if classes < 2 && value.len() < 16 {
        return Some("this value is too simple to mask safely: under 16 bytes of one kind of character".into());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_shapes_are_masked() {
        set_secrets(["correct-horse-battery".to_string(), "short".to_string()]);
        let s = "key correct-horse-battery, short, sk-abcdefghijklmnopqrstuv, AKIAABCDEFGHIJKLMNOP, \
                 Authorization: Bearer abcdefghijklmnop1234, postgres://app:pw123456@db:5432/x";
        let r = redact(s);
        for leaked in ["correct-horse", "sk-abc", "AKIAABCD", "abcdefghijklmnop1234", "pw123456"] {
            assert!(!r.contains(leaked), "{leaked} leaked: {r}");
        }
        assert!(r.contains("short"), "short values are not secrets: {r}");
        assert!(r.contains("Bearer [REDACTED]") && r.contains("postgres://[REDACTED]@db"), "{r}");
        let mut v = serde_json::json!({"a": ["x correct-horse-battery y"], "n": 1});
        assert!(redact_value(&mut v));
        assert_eq!(v["a"][0], "x [REDACTED] y");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
        assert_eq!(redact("https://tok123@host/x"), "https://[REDACTED]@host/x");
    }

    #[test]
    fn a_tenants_secret_masks_its_own_data_only_and_never_structure() {
        let a = Tenant { org: "mask-a".into(), ..Tenant::default() };
        let b = Tenant { org: "mask-b".into(), ..Tenant::default() };
        add_tenant_secrets(&a, ["quarterly forecast".to_string(), "tool_calls".to_string(), "call_1234567".into()]);
        let text = "the quarterly forecast is fine";
        assert_eq!(redact_for(&a, text), "the [REDACTED] is fine");
        assert_eq!(redact_for(&b, text), text, "another tenant's secret changes nothing of b's");
        assert_eq!(redact(text), text, "nor text of no tenant");
        assert!(redact_all(text).contains(MASK), "logs mask every tenant's");
        // A call id holding the secret is masked the same way wherever it
        // appears: the call and its result stay paired.
        let mut call =
            serde_json::json!({"tool_calls": [{"id": "x-call_1234567", "name": "echo", "arguments": "call_1234567!"}]});
        let mut result = serde_json::json!({"role": "tool", "tool_call_id": "x-call_1234567"});
        assert!(redact_value_for(Some(&a), &mut call) && redact_value_for(Some(&a), &mut result));
        assert_eq!(call["tool_calls"][0]["id"], result["tool_call_id"], "{call} {result}");
        assert_eq!(call["tool_calls"][0]["id"], "x-[REDACTED]");
        assert_eq!(
            (call["tool_calls"][0]["name"].as_str(), call["tool_calls"][0]["arguments"].as_str()),
            (Some("echo"), Some("[REDACTED]!"))
        );
        // Another tenant's ids, names and keys are untouched.
        let msg = serde_json::json!({"tool_calls": [{"id": "call_1234567", "name": "x", "arguments": "tool_calls!"}]});
        let mut v = msg.clone();
        assert!(!redact_value_for(Some(&b), &mut v));
        assert_eq!(v, msg);
        // No key name exempts a value: `name` inside arguments, `id` in metadata.
        let mut v = serde_json::json!({"arguments_sanitized": {"name": "call_1234567", "x": {"id": "call_1234567"}}});
        assert!(redact_value_for(Some(&a), &mut v));
        assert_eq!(v["arguments_sanitized"]["name"], MASK, "{v}");
    }

    #[test]
    fn common_or_short_values_are_unfit_secrets() {
        for bad in [
            "short",
            "tool_calls",
            "quarterly forecast",
            "password",
            "12345678",
            "aaaaaaaaaaaa",
            "application/json",
            "https://",
            "2026-12-08T",
            "[REDACTED]",
            "assistant1",
            "\"content\":",
        ] {
            assert!(unfit_secret(bad).is_some(), "{bad} accepted");
        }
        for good in ["hunter2-password", "sk_live_abc123XYZ", "correct-horse-battery-staple-9", "Zq7#pL2!"] {
            assert!(unfit_secret(good).is_none(), "{good} refused: {:?}", unfit_secret(good));
        }
    }

    #[test]
    fn a_secret_split_across_chunks_never_streams() {
        let t = Tenant { org: "stream-a".into(), ..Tenant::default() };
        add_tenant_secrets(&t, ["Zq7pL2xx-hunter-99".to_string()]);
        for size in [1, 3, 7, 18, 40] {
            let text = "before Zq7pL2xx-hunter-99 after Zq7pL2 then Zq7pL2xx-hunter-99";
            let mut m = StreamMask::new(&t);
            let mut shown = String::new();
            let chars: Vec<char> = text.chars().collect();
            for c in chars.chunks(size) {
                shown.push_str(&m.push(&c.iter().collect::<String>()));
                assert!(!shown.contains("Zq7pL2xx-hunter-99"), "{size}: {shown}");
            }
            shown.push_str(&m.finish());
            assert_eq!(shown, "before [REDACTED] after Zq7pL2 then [REDACTED]", "chunks of {size}");
        }
    }
}
