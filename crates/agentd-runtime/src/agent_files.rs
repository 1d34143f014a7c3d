//! Agents from files: each directory of `agents_dirs` holds `<name>/AGENT.md`,
//! whose front matter (between `---` lines) sets model, tools, skills,
//! policy, sandbox, limits and description, and whose body is the system
//! prompt, rendered as a template with each run's `arguments`.
//!
//! The front matter is TOML (`tools = ["echo"]`, `[policy]` tables), or the
//! plain `key: value` form with flow lists (`tools: [echo, read_file]`).

use std::path::Path;

use crate::config::AgentConfig;
use crate::{AgentSettings, MAX_STEPS_LIMIT};

/// Largest AGENT.md read.
const MAX_AGENT_BYTES: u64 = 256 * 1024;

/// An AGENT.md that could not be loaded, and why.
#[derive(Debug, Clone)]
pub struct AgentFileError {
    pub path: String,
    pub reason: String,
}

/// Loads every `<name>/AGENT.md` under these directories; fields an agent
/// leaves unset come from `base`. A broken file never stops the others.
pub fn load_agent_dirs(dirs: &[std::path::PathBuf], base: &AgentSettings) -> (Vec<AgentSettings>, Vec<AgentFileError>) {
    let (mut ok, mut bad) = (vec![], vec![]);
    for dir in dirs {
        let Ok(rd) = std::fs::read_dir(dir) else {
            bad.push(AgentFileError { path: dir.display().to_string(), reason: "cannot read the directory".into() });
            continue;
        };
        let mut entries: Vec<_> = rd.filter_map(Result::ok).filter(|e| e.path().join("AGENT.md").is_file()).collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let path = e.path().join("AGENT.md");
            let name = e.file_name().to_string_lossy().to_string();
            match load_one(&path, &name, base) {
                Ok(a) => ok.push(a),
                Err(reason) => bad.push(AgentFileError { path: path.display().to_string(), reason }),
            }
        }
    }
    (ok, bad)
}

fn load_one(path: &Path, name: &str, base: &AgentSettings) -> Result<AgentSettings, String> {
    if !crate::valid_catalog_name(name) {
        return Err(format!("bad agent name {name:?}: 1-64 characters of [A-Za-z0-9_-]"));
    }
    let len = std::fs::metadata(path).map_err(|e| e.to_string())?.len();
    if len > MAX_AGENT_BYTES {
        return Err(format!("AGENT.md is {len} bytes; the limit is {MAX_AGENT_BYTES}"));
    }
    let text = std::fs::read_to_string(path).map_err(|e| e.to_string())?;
    let (cfg, body) = parse_agent_md(&text)?;
    let mut a = AgentSettings::from_agent_config(name, &cfg, base);
    if a.max_steps > MAX_STEPS_LIMIT {
        a.max_steps = MAX_STEPS_LIMIT;
    }
    if !body.trim().is_empty() {
        a.system_prompt = body.trim().to_string();
        a.render_prompt = a.system_prompt.contains("{{") || a.system_prompt.contains("{%");
        if a.render_prompt {
            // A template that does not parse is refused now, not at the first run.
            crate::templates::render_here(name, &a.system_prompt, &serde_json::json!({}))
                .map(drop)
                .or_else(|e| if e.code() == agentd_core::ErrorCode::MissingVariable { Ok(()) } else { Err(e) })
                .map_err(|e| e.to_string())?;
        }
    }
    a.file = Some(path.to_path_buf());
    Ok(a)
}

/// Splits an AGENT.md into its settings and its body.
pub fn parse_agent_md(text: &str) -> Result<(AgentConfig, String), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text).replace("\r\n", "\n");
    let rest = text.strip_prefix("---\n").ok_or("missing front matter (the file must start with ---)")?;
    let end = rest.find("\n---").ok_or("front matter is not closed with ---")?;
    let (head, body) = (&rest[..end], &rest[end + 4..]);
    let body = body.split_once('\n').map_or("", |(_, b)| b).to_string();
    let table: toml::Table = match head.parse::<toml::Table>() {
        Ok(t) => t,
        Err(toml_err) => plain_front_matter(head).map_err(|e| format!("{e} (nor is it TOML: {toml_err})"))?,
    };
    let cfg: AgentConfig = toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| e.to_string())?;
    Ok((cfg, body))
}

/// `key: value` lines: numbers, booleans, `[a, b]` lists and strings.
fn plain_front_matter(head: &str) -> Result<toml::Table, String> {
    let mut t = toml::Table::new();
    for line in head.lines() {
        let line = line.trim_end();
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let (k, v) = line.split_once(':').ok_or_else(|| format!("front matter line is not `key: value`: {line:?}"))?;
        let v = v.trim();
        let scalar = |s: &str| -> toml::Value {
            let s = s.trim();
            let unquoted = s.trim_matches('"').trim_matches('\'');
            if let Ok(n) = s.parse::<i64>() {
                toml::Value::Integer(n)
            } else if s == "true" || s == "false" {
                toml::Value::Boolean(s == "true")
            } else {
                toml::Value::String(unquoted.to_string())
            }
        };
        let value = match v.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
            Some(inner) => toml::Value::Array(
                inner
                    .split(',')
                    .map(|x| x.trim().trim_matches('"').trim_matches('\'').to_string())
                    .filter(|x| !x.is_empty())
                    .map(toml::Value::String)
                    .collect(),
            ),
            None => scalar(v),
        };
        t.insert(k.trim().to_string(), value);
    }
    Ok(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_toml_and_plain_front_matter() {
        let (c, body) =
            parse_agent_md("---\nmodel = \"m\"\ntools = [\"echo\"]\n[limits]\nmax_depth = 1\n---\nHi\n").unwrap();
        assert_eq!(c.model.as_deref(), Some("m"));
        assert_eq!(c.tools, Some(vec!["echo".to_string()]));
        assert_eq!(c.limits.map(|l| l.max_depth), Some(1));
        assert_eq!(body, "Hi\n");
        let (c, _) =
            parse_agent_md("---\ndescription: Reviews code\ntools: [echo, read_file]\nmax_steps: 4\n---\nx").unwrap();
        assert_eq!(c.description.as_deref(), Some("Reviews code"));
        assert_eq!(c.tools, Some(vec!["echo".to_string(), "read_file".to_string()]));
        assert_eq!(c.max_steps, Some(4));
        assert!(parse_agent_md("no front matter").is_err());
        assert!(parse_agent_md("---\nnot a pair\n---\n").is_err());
    }
}
