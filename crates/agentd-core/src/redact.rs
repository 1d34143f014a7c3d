//! Secret redaction: configured secret values and common key shapes are
//! masked before anything is stored, logged or answered. The stores call
//! [`redact_value`] on every event, so no path into the journal skips it.

use std::borrow::Cow;
use std::sync::{Arc, OnceLock, RwLock};

use regex::Regex;

/// What a secret is replaced with.
pub const MASK: &str = "[REDACTED]";

/// Shorter values are not masked (they would mask ordinary words).
pub const MIN_SECRET_LEN: usize = 8;

fn secrets() -> &'static RwLock<Arc<Vec<String>>> {
    static S: OnceLock<RwLock<Arc<Vec<String>>>> = OnceLock::new();
    S.get_or_init(|| RwLock::new(Arc::new(vec![])))
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
            // The password of a URL such as postgres://user:password@host.
            (r"([a-z][a-z0-9+.\-]*://[^:/\s@]+:)[^@\s/]+@", "${1}[REDACTED]@"),
        ];
        raw.iter().filter_map(|(re, with)| Regex::new(re).ok().map(|r| (r, *with))).collect()
    })
}

/// Replaces the set of secret values to mask (longest first, short ones dropped).
pub fn set_secrets(values: impl IntoIterator<Item = String>) {
    let mut v: Vec<String> = values.into_iter().filter(|s| s.len() >= MIN_SECRET_LEN).collect();
    v.sort_by_key(|s| std::cmp::Reverse(s.len()));
    v.dedup();
    *secrets().write().unwrap_or_else(|e| e.into_inner()) = Arc::new(v);
}

/// Adds secret values to the ones already masked.
pub fn add_secrets(values: impl IntoIterator<Item = String>) {
    let mut all: Vec<String> = secrets().read().unwrap_or_else(|e| e.into_inner()).as_ref().clone();
    all.extend(values);
    set_secrets(all);
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

/// The text with secrets masked (borrowed when nothing matched). NUL
/// characters, which databases cannot store as text, become U+FFFD.
pub fn redact(s: &str) -> Cow<'_, str> {
    let values = secrets().read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out: Cow<'_, str> =
        if s.contains('\0') { Cow::Owned(s.replace('\0', "\u{FFFD}")) } else { Cow::Borrowed(s) };
    for v in values.iter() {
        if out.contains(v.as_str()) {
            out = Cow::Owned(out.replace(v.as_str(), MASK));
        }
    }
    for (re, with) in shapes() {
        if re.is_match(&out) {
            out = Cow::Owned(re.replace_all(&out, *with).into_owned());
        }
    }
    out
}

/// The text with the server's own secret values masked (not key shapes:
/// for values a tenant supplies on purpose, such as its own auth headers).
pub fn redact_known(s: &str) -> Cow<'_, str> {
    let values = secrets().read().unwrap_or_else(|e| e.into_inner()).clone();
    let mut out: Cow<'_, str> = Cow::Borrowed(s);
    for v in values.iter() {
        if out.contains(v.as_str()) {
            out = Cow::Owned(out.replace(v.as_str(), MASK));
        }
    }
    out
}

/// A map key with secrets masked. Most keys are short names: those are
/// only checked against the known values, long ones against the key shapes too.
fn redact_key(k: &str) -> Cow<'_, str> {
    if k.len() < MIN_SECRET_LEN {
        Cow::Borrowed(k)
    } else if k.len() < 20 {
        redact_known(k)
    } else {
        redact(k)
    }
}

/// Masks secrets in every string of a JSON value; true if anything changed.
pub fn redact_value(v: &mut serde_json::Value) -> bool {
    match v {
        serde_json::Value::String(s) => match redact(s) {
            Cow::Borrowed(_) => false,
            Cow::Owned(o) => {
                *s = o;
                true
            }
        },
        serde_json::Value::Array(a) => a.iter_mut().fold(false, |acc, x| redact_value(x) | acc),
        serde_json::Value::Object(m) => {
            let mut changed = m.values_mut().fold(false, |acc, x| redact_value(x) | acc);
            // Keys can carry secrets too (a token used as a map key).
            if m.keys().any(|k| matches!(redact_key(k), Cow::Owned(_))) {
                let old = std::mem::take(m);
                for (k, v) in old {
                    m.insert(redact_key(&k).into_owned(), v);
                }
                changed = true;
            }
            changed
        }
        _ => false,
    }
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
        assert!(r.contains("Bearer [REDACTED]") && r.contains("postgres://app:[REDACTED]@db"), "{r}");
        let mut v = serde_json::json!({"a": ["x correct-horse-battery y"], "n": 1});
        assert!(redact_value(&mut v));
        assert_eq!(v["a"][0], "x [REDACTED] y");
        assert!(matches!(redact("nothing here"), Cow::Borrowed(_)));
    }
}
