//! Skills: directories with a `SKILL.md` (front matter with `name` and
//! `description`, then a markdown body, optional files beside it). Only the
//! name and description reach the system prompt; the body is loaded when the
//! model calls `load_skill`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::Serialize;

/// Largest accepted `SKILL.md`.
pub const MAX_SKILL_BYTES: usize = 256 * 1024;
/// Largest file beside a skill that is carried along.
const MAX_FILE_BYTES: usize = 1024 * 1024;

/// A loaded skill.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct Skill {
    pub name: String,
    pub description: String,
    #[serde(skip_serializing_if = "String::is_empty", default)]
    pub body: String,
    /// Files beside `SKILL.md`: relative path → text content.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// `config` (a configured directory) or `tenant` (uploaded).
    #[serde(default)]
    pub source: String,
}

/// A skill that could not be loaded, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkillError {
    pub path: String,
    pub reason: String,
}

/// Parses the `key: value` front matter used by SKILL.md files: plain or
/// quoted scalars and `|` / `>` block scalars. Anything fancier is refused
/// rather than guessed at.
fn front_matter(text: &str) -> Result<(BTreeMap<String, String>, String), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let rest = text
        .strip_prefix("---\n")
        .or_else(|| text.strip_prefix("---\r\n"))
        .ok_or("missing front matter (the file must start with ---)")?;
    let end = rest.find("\n---").ok_or("front matter is not closed with ---")?;
    let (head, body) = (&rest[..end], &rest[end + 4..]);
    let body = body.split_once('\n').map_or("", |(_, b)| b).to_string();
    let mut map = BTreeMap::new();
    let lines: Vec<&str> = head.lines().collect();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i];
        i += 1;
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        if line.starts_with(' ') || line.starts_with('\t') {
            continue; // nested data of a key we do not read
        }
        let (k, v) = line.split_once(':').ok_or_else(|| format!("front matter line is not `key: value`: {line:?}"))?;
        let v = v.trim();
        let value = if v == "|" || v == ">" || v == "|-" || v == ">-" {
            let mut block = vec![];
            while i < lines.len() && (lines[i].starts_with(' ') || lines[i].trim().is_empty()) {
                block.push(lines[i].trim());
                i += 1;
            }
            if v.starts_with('|') { block.join("\n").trim().to_string() } else { block.join(" ").trim().to_string() }
        } else if (v.starts_with('"') && v.ends_with('"') && v.len() >= 2)
            || (v.starts_with('\'') && v.ends_with('\'') && v.len() >= 2)
        {
            v[1..v.len() - 1].to_string()
        } else {
            v.to_string()
        };
        map.insert(k.trim().to_string(), value);
    }
    Ok((map, body))
}

/// Parses a `SKILL.md`, checking the name and description.
pub fn parse_skill(text: &str) -> Result<Skill, String> {
    if text.len() > MAX_SKILL_BYTES {
        return Err(format!("SKILL.md is {} bytes; the limit is {MAX_SKILL_BYTES}", text.len()));
    }
    let (fm, body) = front_matter(text)?;
    let name = fm.get("name").cloned().unwrap_or_default();
    let description = fm.get("description").cloned().unwrap_or_default();
    check_head(&name, &description)?;
    Ok(Skill { name, description, body, files: BTreeMap::new(), source: String::new() })
}

fn check_head(name: &str, description: &str) -> Result<(), String> {
    if name.is_empty()
        || name.len() > 64
        || !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(format!("bad name {name:?}: 1-64 characters of lowercase letters, digits and hyphens"));
    }
    if description.trim().is_empty() || description.len() > 1024 {
        return Err("`description` is required and at most 1024 characters".into());
    }
    Ok(())
}

/// Files beside SKILL.md a tenant may send, in all.
pub const MAX_TENANT_FILES_BYTES: usize = 4 * 1024 * 1024;

/// The one check of a skill a tenant supplies, however it arrives (an
/// upload, an agent import): its name and description as `SKILL.md` must
/// have them, its body and files bounded, every file path relative without
/// `..`, and its source `tenant` whatever it claimed.
pub fn check_tenant_skill(mut skill: Skill) -> Result<Skill, String> {
    check_head(&skill.name, &skill.description)?;
    if skill.body.len() > MAX_SKILL_BYTES {
        return Err(format!("the skill's body is over {MAX_SKILL_BYTES} bytes"));
    }
    for rel in skill.files.keys() {
        let p = Path::new(rel);
        let ok = !rel.is_empty()
            && p.components().all(|c| matches!(c, std::path::Component::Normal(_)))
            && !rel.contains('\0');
        if !ok {
            return Err(format!("file path {rel:?} must be relative, without `..`"));
        }
    }
    if skill.files.values().map(String::len).sum::<usize>() > MAX_TENANT_FILES_BYTES {
        return Err("files beside SKILL.md may total at most 4 MiB".into());
    }
    skill.source = "tenant".into();
    Ok(skill)
}

/// Loads every skill under `dir` (one level of subdirectories, each with a
/// SKILL.md). A broken skill is reported and never stops the others.
pub fn load_dir(dir: &Path) -> (Vec<Skill>, Vec<SkillError>) {
    let (mut ok, mut bad) = (vec![], vec![]);
    let Ok(rd) = std::fs::read_dir(dir) else {
        bad.push(SkillError { path: dir.display().to_string(), reason: "cannot read the skills directory".into() });
        return (ok, bad);
    };
    let mut dirs: Vec<_> = rd.filter_map(Result::ok).filter(|e| e.path().join("SKILL.md").is_file()).collect();
    dirs.sort_by_key(|e| e.file_name());
    for d in dirs {
        let path = d.path().join("SKILL.md");
        let parsed = std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| String::from_utf8(b).map_err(|_| "SKILL.md is not UTF-8".to_string()))
            .and_then(|t| parse_skill(&t));
        match parsed {
            Ok(mut s) => {
                s.source = "config".into();
                s.files = side_files(&d.path());
                ok.push(s);
            }
            Err(reason) => bad.push(SkillError { path: path.display().to_string(), reason }),
        }
    }
    (ok, bad)
}

/// Text files beside SKILL.md (recursively, no symlinks, size-capped).
fn side_files(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.filter_map(Result::ok) {
            let Ok(ft) = e.file_type() else { continue };
            let p = e.path();
            if ft.is_dir() {
                stack.push(p);
            } else if ft.is_file() && p.file_name().is_some_and(|n| n != "SKILL.md") {
                let Ok(meta) = e.metadata() else { continue };
                if meta.len() as usize > MAX_FILE_BYTES {
                    continue;
                }
                if let (Ok(text), Ok(rel)) = (std::fs::read_to_string(&p), p.strip_prefix(dir)) {
                    out.insert(rel.display().to_string(), text);
                }
            }
        }
    }
    out
}

/// `load_skill {name}`: the full instructions of a skill; its files are put
/// under `.skills/<name>/` in the workspace so the file tools can read them.
pub struct LoadSkill {
    pub skills: std::sync::Arc<Vec<Skill>>,
}

/// Skills the text names explicitly as `/name` or `$name` (a word of its own).
pub fn mentioned<'a>(skills: &'a [Skill], text: &str) -> Vec<&'a Skill> {
    let words: Vec<&str> = text.split(|c: char| c.is_whitespace() || ",.;:!?()\"'".contains(c)).collect();
    skills
        .iter()
        .filter(|s| words.iter().any(|w| w.strip_prefix('/').or_else(|| w.strip_prefix('$')) == Some(s.name.as_str())))
        .collect()
}

/// The system-prompt section listing skills (name + description only),
/// cut to `budget` characters.
pub fn skills_prompt(skills: &[Skill], budget: usize) -> String {
    if skills.is_empty() {
        return String::new();
    }
    let mut out = String::from(
        "\n\n## Skills\nCall the load_skill tool with a skill's name to get its full instructions before using it.\n",
    );
    for (i, s) in skills.iter().enumerate() {
        let line = format!("- {}: {}\n", s.name, s.description.replace('\n', " "));
        if out.len() + line.len() > budget {
            out.push_str(&format!(
                "- … and {} more skills (load_skill lists them all on an unknown name)\n",
                skills.len() - i
            ));
            break;
        }
        out.push_str(&line);
    }
    out
}

#[async_trait::async_trait]
impl crate::Tool for LoadSkill {
    fn spec(&self) -> agentd_core::ToolSpec {
        let names: Vec<&str> = self.skills.iter().map(|s| s.name.as_str()).collect();
        agentd_core::ToolSpec {
            name: "load_skill".into(),
            description: "Loads the full instructions of a skill listed in the system prompt.".into(),
            input_schema: serde_json::json!({"type": "object", "required": ["name"], "additionalProperties": false,
                "properties": {"name": {"type": "string", "enum": names}}}),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    fn needs_workspace(&self) -> bool {
        true
    }

    async fn call(&self, args: serde_json::Value, ctx: crate::ToolContext) -> crate::ToolOutput {
        let name = args["name"].as_str().unwrap_or_default();
        let Some(skill) = self.skills.iter().find(|s| s.name == name) else {
            let all: Vec<&str> = self.skills.iter().map(|s| s.name.as_str()).collect();
            return crate::ToolOutput::error(format!("no skill named {name:?}; skills: {}", all.join(", ")));
        };
        let mut text = skill.body.clone();
        if !skill.files.is_empty() {
            if let Some(ws) = &ctx.workspace {
                for (rel, content) in &skill.files {
                    let path = format!(".skills/{}/{rel}", skill.name);
                    // Opened beneath the workspace in one step, like every file tool.
                    if let Err(e) = ws.write(&path, content.as_bytes()) {
                        return crate::ToolOutput::error(format!("skill file {rel}: {e}"));
                    }
                }
            }
            let files: Vec<String> = skill.files.keys().map(|f| format!(".skills/{}/{f}", skill.name)).collect();
            text.push_str(&format!("\n\n[files of this skill, readable with read_file: {}]", files.join(", ")));
        }
        crate::ToolOutput::text(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_front_matter_and_body() {
        let s = parse_skill(
            "---\nname: pdf-tools\ndescription: >\n  Work with PDF\n  files.\nlicense: MIT\n---\n# PDF\nUse it well.\n",
        )
        .unwrap();
        assert_eq!(s.name, "pdf-tools");
        assert_eq!(s.description, "Work with PDF files.");
        assert_eq!(s.body, "# PDF\nUse it well.\n");
        let q = parse_skill("---\nname: \"x\"\ndescription: 'quoted: yes'\n---\nbody").unwrap();
        assert_eq!(q.description, "quoted: yes");
    }

    #[test]
    fn explicit_mentions_are_found() {
        let s = parse_skill("---\nname: pdf\ndescription: d\n---\nbody").unwrap();
        let skills = vec![s];
        assert_eq!(mentioned(&skills, "use /pdf for this").len(), 1);
        assert_eq!(mentioned(&skills, "with $pdf, please").len(), 1);
        assert!(mentioned(&skills, "a pdf file or /pdfs").is_empty());
    }

    #[test]
    fn rejects_broken_skills_with_a_reason() {
        assert!(parse_skill("# no front matter").unwrap_err().contains("missing front matter"));
        assert!(parse_skill("---\nname: x\n").unwrap_err().contains("not closed"));
        assert!(parse_skill("---\nname: Bad Name\ndescription: d\n---\n").unwrap_err().contains("bad name"));
        assert!(parse_skill("---\nname: ok\n---\n").unwrap_err().contains("description"));
        assert!(
            parse_skill(&format!("---\nname: big\ndescription: d\n---\n{}", "x".repeat(MAX_SKILL_BYTES)))
                .unwrap_err()
                .contains("limit")
        );
    }
}
