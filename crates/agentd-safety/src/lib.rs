//! Safety: the guard that rates a tool call's risk, the policy that decides
//! allow / ask / deny, and what an approval shows a person (the sanitised
//! request and its key). No I/O.

pub mod guard;
pub mod policy;
pub mod shellparse;

pub use guard::{Assessment, Risk, ToolFacts, assess, assess_shell};
pub use policy::{Decision, Policy, PolicyConfig, RuleError, Verdict};

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// Lowercase hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// JSON with object keys sorted at every level, no whitespace.
pub fn canonical_json(v: &Value) -> String {
    fn sorted(v: &Value) -> Value {
        match v {
            Value::Object(m) => {
                let mut keys: Vec<&String> = m.keys().collect();
                keys.sort();
                let mut out = serde_json::Map::new();
                for k in keys {
                    out.insert(k.clone(), sorted(&m[k]));
                }
                Value::Object(out)
            }
            Value::Array(a) => Value::Array(a.iter().map(sorted).collect()),
            other => other.clone(),
        }
    }
    // serde_json's map keeps insertion order only with `preserve_order`;
    // writing keys in sorted order gives the same bytes either way.
    let mut out = String::new();
    write_canonical(&sorted(v), &mut out);
    out
}

fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String((*k).clone()).to_string());
                out.push(':');
                write_canonical(&m[*k], out);
            }
            out.push('}');
        }
        Value::Array(a) => {
            out.push('[');
            for (i, x) in a.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(x, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// What a person is shown for a call: shell as argv lists, redirections
/// (here-documents by size and sha256), the text of command substitutions,
/// the names (never values) of environment assignments and the sha256 of
/// the exact command, so two different commands never share an approval
/// key; file writes as path, size and sha256 (never content); other tools'
/// arguments as they are.
pub fn sanitize(tool: &str, args: &Value) -> Value {
    match tool {
        "shell" => {
            let (mut env, mut redirects, mut substitutions): (Vec<String>, Vec<String>, Vec<String>) =
                (vec![], vec![], vec![]);
            let commands: Vec<Vec<String>> = match args["command"].as_str() {
                Some(cmd) => match shellparse::parse(cmd) {
                    Ok(s) => {
                        substitutions.extend(s.substitutions.iter().cloned());
                        s.pipelines
                            .iter()
                            .flat_map(|p| p.commands.iter())
                            .map(|c| {
                                for a in &c.assignments {
                                    env.push(a.split('=').next().unwrap_or_default().to_string());
                                }
                                for r in &c.redirects {
                                    let heredoc =
                                        (r.op.ends_with("<<") && !r.op.ends_with("<<<")) || r.op.ends_with("<<-");
                                    redirects.push(if heredoc {
                                        let (n, h) = (r.target.len(), sha256_hex(r.target.as_bytes()));
                                        format!("{} [here-document, {n} bytes, sha256 {h}]", r.op)
                                    } else {
                                        format!("{} {}", r.op, r.target)
                                    });
                                }
                                c.argv.iter().map(|w| w.text.clone()).collect()
                            })
                            .collect()
                    }
                    Err(_) => vec![vec![cmd.to_string()]],
                },
                None => vec![
                    args["argv"]
                        .as_array()
                        .map(|a| a.iter().map(|x| x.as_str().unwrap_or_default().to_string()).collect())
                        .unwrap_or_default(),
                ],
            };
            let mut out = json!({"commands": commands, "env": env});
            if !redirects.is_empty() {
                out["redirects"] = json!(redirects);
            }
            if !substitutions.is_empty() {
                out["substitutions"] = json!(substitutions);
            }
            let exact = match args.get("command") {
                Some(c) => canonical_json(c),
                None => canonical_json(&args["argv"]),
            };
            out["command_sha256"] = json!(sha256_hex(exact.as_bytes()));
            if args.get("command").is_some() {
                out["shell"] = json!(true);
            }
            if let Some(t) = args.get("timeout_ms") {
                out["timeout_ms"] = t.clone();
            }
            out
        }
        "write_file" => {
            let content = args["content"].as_str().unwrap_or_default();
            json!({"path": args["path"], "size": content.len(), "sha256": sha256_hex(content.as_bytes())})
        }
        "edit_file" => {
            let old = args["old"].as_str().unwrap_or_default();
            let new = args["new"].as_str().unwrap_or_default();
            json!({
                "path": args["path"],
                "old_size": old.len(), "old_sha256": sha256_hex(old.as_bytes()),
                "new_size": new.len(), "new_sha256": sha256_hex(new.as_bytes()),
            })
        }
        _ => args.clone(),
    }
}

/// The key identical requests share: sha256 of canonical JSON of (tool, sanitised request).
pub fn approval_key(tool: &str, sanitized: &Value) -> String {
    sha256_hex(canonical_json(&json!({"tool": tool, "request": sanitized})).as_bytes())
}
