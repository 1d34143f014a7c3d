//! File tools over the run's workspace: read_file, write_file, edit_file,
//! list_dir, glob, grep. All paths go through [`Workspace::resolve`].

use std::path::Path;

use agentd_core::ToolSpec;
use async_trait::async_trait;
use serde_json::{Value, json};

use crate::workspace::Workspace;
use crate::{Tool, ToolContext, ToolOutput};

/// Most bytes a read or search returns to the model.
const MAX_OUTPUT: usize = 256 * 1024;
/// Largest file `write_file` / `edit_file` accept.
const MAX_WRITE: usize = 10 * 1024 * 1024;
const MAX_LIST: usize = 1000;

fn ws(ctx: &ToolContext) -> Result<&Workspace, ToolOutput> {
    ctx.workspace.as_ref().ok_or_else(|| ToolOutput::error("this call has no workspace"))
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolOutput> {
    args[name].as_str().ok_or_else(|| ToolOutput::error(format!("`{name}` must be a string")))
}

/// Runs blocking file work off the async threads.
async fn blocking<F: FnOnce() -> ToolOutput + Send + 'static>(f: F) -> ToolOutput {
    tokio::task::spawn_blocking(f).await.unwrap_or_else(|e| ToolOutput::error(format!("tool task failed: {e}")))
}

fn truncate_output(mut s: String) -> String {
    if s.len() > MAX_OUTPUT {
        let mut end = MAX_OUTPUT;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push_str("\n[… output truncated]");
    }
    s
}

macro_rules! tool_body {
    ($e:expr) => {
        match $e {
            Ok(v) => v,
            Err(out) => return out,
        }
    };
}

/// `read_file {path, offset?, limit?}`: lines `offset..offset+limit` (1-based).
pub struct ReadFile;

#[async_trait]
impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description: "Reads a text file in the workspace. offset is the first line (1-based), limit the number of lines (default 2000).".into(),
            input_schema: json!({"type": "object", "required": ["path"], "additionalProperties": false, "properties": {
                "path": {"type": "string"},
                "offset": {"type": "integer", "minimum": 1},
                "limit": {"type": "integer", "minimum": 1}
            }}),
        }
    }
    fn needs_workspace(&self) -> bool {
        true
    }
    fn fence(&self) -> serde_json::Value {
        workspace_fence()
    }
    fn idempotent(&self) -> bool {
        true
    }
    async fn call(&self, args: Value, ctx: ToolContext) -> ToolOutput {
        let ws = tool_body!(ws(&ctx)).clone();
        let path = tool_body!(str_arg(&args, "path")).to_string();
        let offset = args["offset"].as_u64().unwrap_or(1).max(1) as usize;
        let limit = args["limit"].as_u64().unwrap_or(2000).max(1) as usize;
        blocking(move || {
            let p = tool_body!(ws.resolve(&path, true).map_err(|e| ToolOutput::error(e.to_string())));
            if p.is_dir() {
                return ToolOutput::error(format!("{path} is a directory; use list_dir"));
            }
            let bytes = match std::fs::read(&p) {
                Ok(b) => b,
                Err(e) => return ToolOutput::error(format!("cannot read {path}: {e}")),
            };
            let Ok(text) = String::from_utf8(bytes) else {
                return ToolOutput::error(format!("{path} is not a UTF-8 text file"));
            };
            let total = text.lines().count();
            let chunk: Vec<&str> = text.lines().skip(offset - 1).take(limit).collect();
            let mut out = chunk.join("\n");
            if offset - 1 + chunk.len() < total {
                out.push_str(&format!(
                    "\n[… {} more lines; continue with offset {}]",
                    total - (offset - 1 + chunk.len()),
                    offset + chunk.len()
                ));
            }
            ToolOutput::text(truncate_output(out))
        })
        .await
    }
}

/// `write_file {path, content}`: creates or replaces a file (and its parent directories).
pub struct WriteFile;

#[async_trait]
impl Tool for WriteFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write_file".into(),
            description: "Creates or overwrites a file in the workspace with the given content.".into(),
            input_schema: json!({"type": "object", "required": ["path", "content"], "additionalProperties": false, "properties": {
                "path": {"type": "string"}, "content": {"type": "string"}
            }}),
        }
    }
    fn needs_workspace(&self) -> bool {
        true
    }
    fn fence(&self) -> serde_json::Value {
        workspace_fence()
    }
    fn idempotent(&self) -> bool {
        true
    }
    async fn call(&self, args: Value, ctx: ToolContext) -> ToolOutput {
        let ws = tool_body!(ws(&ctx)).clone();
        let path = tool_body!(str_arg(&args, "path")).to_string();
        let content = tool_body!(str_arg(&args, "content")).to_string();
        if content.len() > MAX_WRITE {
            return ToolOutput::error(format!("content is {} bytes; the limit is {MAX_WRITE}", content.len()));
        }
        blocking(move || {
            let p = tool_body!(ws.resolve(&path, false).map_err(|e| ToolOutput::error(e.to_string())));
            if p.is_dir() {
                return ToolOutput::error(format!("{path} is a directory"));
            }
            if let Some(parent) = p.parent()
                && let Err(e) = std::fs::create_dir_all(parent)
            {
                return ToolOutput::error(format!("cannot create directories for {path}: {e}"));
            }
            match std::fs::write(&p, content.as_bytes()) {
                Ok(()) => ToolOutput::text(format!("wrote {} bytes to {}", content.len(), ws.display(&p))),
                Err(e) => ToolOutput::error(format!("cannot write {path}: {e}")),
            }
        })
        .await
    }
}

/// `edit_file {path, old, new}`: replaces the one occurrence of `old`.
pub struct EditFile;

#[async_trait]
impl Tool for EditFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "edit_file".into(),
            description:
                "Replaces the exact text `old` with `new` in a file. Fails if `old` is absent or occurs more than once."
                    .into(),
            input_schema: json!({"type": "object", "required": ["path", "old", "new"], "additionalProperties": false, "properties": {
                "path": {"type": "string"}, "old": {"type": "string", "minLength": 1}, "new": {"type": "string"}
            }}),
        }
    }
    fn needs_workspace(&self) -> bool {
        true
    }
    fn fence(&self) -> serde_json::Value {
        workspace_fence()
    }
    fn idempotent(&self) -> bool {
        // A second identical call finds `old` gone and fails: not safe to repeat blindly.
        false
    }
    async fn call(&self, args: Value, ctx: ToolContext) -> ToolOutput {
        let ws = tool_body!(ws(&ctx)).clone();
        let path = tool_body!(str_arg(&args, "path")).to_string();
        let old = tool_body!(str_arg(&args, "old")).to_string();
        let new = tool_body!(str_arg(&args, "new")).to_string();
        if old.is_empty() {
            return ToolOutput::error("`old` must not be empty");
        }
        blocking(move || {
            let p = tool_body!(ws.resolve(&path, true).map_err(|e| ToolOutput::error(e.to_string())));
            let text = match std::fs::read_to_string(&p) {
                Ok(t) => t,
                Err(e) => return ToolOutput::error(format!("cannot read {path}: {e}")),
            };
            match text.matches(old.as_str()).count() {
                0 => ToolOutput::error(format!("`old` was not found in {path}")),
                1 => {
                    let updated = text.replacen(old.as_str(), &new, 1);
                    if updated.len() > MAX_WRITE {
                        return ToolOutput::error("the edited file would exceed the size limit");
                    }
                    match std::fs::write(&p, updated) {
                        Ok(()) => ToolOutput::text(format!("edited {path}")),
                        Err(e) => ToolOutput::error(format!("cannot write {path}: {e}")),
                    }
                }
                n => ToolOutput::error(format!(
                    "`old` is ambiguous: it occurs {n} times in {path}; include more context"
                )),
            }
        })
        .await
    }
}

/// `list_dir {path}`: entries with kind and size.
pub struct ListDir;

#[async_trait]
impl Tool for ListDir {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "list_dir".into(),
            description: "Lists a directory of the workspace (default: its root).".into(),
            input_schema: json!({"type": "object", "additionalProperties": false, "properties": {"path": {"type": "string"}}}),
        }
    }
    fn needs_workspace(&self) -> bool {
        true
    }
    fn fence(&self) -> serde_json::Value {
        workspace_fence()
    }
    fn idempotent(&self) -> bool {
        true
    }
    async fn call(&self, args: Value, ctx: ToolContext) -> ToolOutput {
        let ws = tool_body!(ws(&ctx)).clone();
        let path = args["path"].as_str().unwrap_or(".").to_string();
        blocking(move || {
            let p = tool_body!(ws.resolve(&path, true).map_err(|e| ToolOutput::error(e.to_string())));
            let rd = match std::fs::read_dir(&p) {
                Ok(rd) => rd,
                Err(e) => return ToolOutput::error(format!("cannot list {path}: {e}")),
            };
            let mut rows: Vec<String> = rd
                .filter_map(Result::ok)
                .map(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    match e.file_type() {
                        Ok(t) if t.is_dir() => format!("{name}/"),
                        Ok(t) if t.is_symlink() => format!("{name}@"),
                        _ => format!("{name}\t{}", e.metadata().map(|m| m.len()).unwrap_or(0)),
                    }
                })
                .collect();
            rows.sort();
            let n = rows.len();
            rows.truncate(MAX_LIST);
            let mut out = rows.join("\n");
            if n > MAX_LIST {
                out.push_str(&format!("\n[… {} more entries]", n - MAX_LIST));
            }
            ToolOutput::text(if out.is_empty() { "(empty)".into() } else { out })
        })
        .await
    }
}

/// Files under `dir` (relative to the workspace), skipping symlinks.
fn walk(ws: &Workspace, dir: &Path) -> impl Iterator<Item = (String, std::path::PathBuf)> {
    let root = ws.root().to_path_buf();
    ignore::WalkBuilder::new(dir)
        .standard_filters(false)
        .hidden(false)
        .follow_links(false)
        .build()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_some_and(|t| t.is_file()))
        .map(move |e| {
            let rel = e.path().strip_prefix(&root).unwrap_or(e.path()).display().to_string();
            (rel, e.path().to_path_buf())
        })
}

/// `glob {pattern}`: workspace files matching a glob such as `src/**/*.rs`.
pub struct Glob;

#[async_trait]
impl Tool for Glob {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "glob".into(),
            description: "Finds workspace files whose relative path matches a glob (e.g. `**/*.md`).".into(),
            input_schema: json!({"type": "object", "required": ["pattern"], "additionalProperties": false, "properties": {"pattern": {"type": "string"}}}),
        }
    }
    fn needs_workspace(&self) -> bool {
        true
    }
    fn fence(&self) -> serde_json::Value {
        workspace_fence()
    }
    fn idempotent(&self) -> bool {
        true
    }
    async fn call(&self, args: Value, ctx: ToolContext) -> ToolOutput {
        let ws = tool_body!(ws(&ctx)).clone();
        let pattern = tool_body!(str_arg(&args, "pattern")).to_string();
        if pattern.starts_with('/') || pattern.split('/').any(|c| c == "..") {
            return ToolOutput::error("patterns are relative to the workspace and may not contain `..`");
        }
        let matcher = match globset::GlobBuilder::new(&pattern).literal_separator(true).build() {
            Ok(g) => g.compile_matcher(),
            Err(e) => return ToolOutput::error(format!("invalid glob: {e}")),
        };
        blocking(move || {
            let mut hits: Vec<String> = walk(&ws, ws.root())
                .filter(|(rel, _)| matcher.is_match(rel))
                .map(|(rel, _)| rel)
                .take(MAX_LIST + 1)
                .collect();
            hits.sort();
            let more = hits.len() > MAX_LIST;
            hits.truncate(MAX_LIST);
            let mut out = hits.join("\n");
            if more {
                out.push_str("\n[… more matches; narrow the pattern]");
            }
            ToolOutput::text(if out.is_empty() { "(no matches)".into() } else { out })
        })
        .await
    }
}

/// `grep {pattern, path?}`: regex search, `path:line:text` per match.
pub struct Grep;

#[async_trait]
impl Tool for Grep {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "grep".into(),
            description: "Searches workspace files for a regular expression; answers `path:line:text` lines.".into(),
            input_schema: json!({"type": "object", "required": ["pattern"], "additionalProperties": false, "properties": {
                "pattern": {"type": "string"}, "path": {"type": "string"}
            }}),
        }
    }
    fn needs_workspace(&self) -> bool {
        true
    }
    fn fence(&self) -> serde_json::Value {
        workspace_fence()
    }
    fn idempotent(&self) -> bool {
        true
    }
    async fn call(&self, args: Value, ctx: ToolContext) -> ToolOutput {
        let ws = tool_body!(ws(&ctx)).clone();
        let pattern = tool_body!(str_arg(&args, "pattern")).to_string();
        let path = args["path"].as_str().unwrap_or(".").to_string();
        let re = match regex::RegexBuilder::new(&pattern).size_limit(1 << 20).build() {
            Ok(r) => r,
            Err(e) => return ToolOutput::error(format!("invalid regex: {e}")),
        };
        blocking(move || {
            let start = tool_body!(ws.resolve(&path, true).map_err(|e| ToolOutput::error(e.to_string())));
            let mut out = String::new();
            let mut n = 0;
            'files: for (rel, full) in walk(&ws, &start) {
                let Ok(bytes) = std::fs::read(&full) else { continue };
                if bytes.iter().take(8192).any(|b| *b == 0) {
                    continue; // binary
                }
                let text = String::from_utf8_lossy(&bytes);
                for (i, line) in text.lines().enumerate() {
                    if re.is_match(line) {
                        out.push_str(&format!("{rel}:{}:{line}\n", i + 1));
                        n += 1;
                        if n >= 500 || out.len() > MAX_OUTPUT {
                            out.push_str("[… more matches; narrow the search]\n");
                            break 'files;
                        }
                    }
                }
            }
            ToolOutput::text(if out.is_empty() { "(no matches)".into() } else { truncate_output(out) })
        })
        .await
    }
}

/// File tools are confined to the workspace by path checks, not by the OS.
fn workspace_fence() -> serde_json::Value {
    serde_json::json!({"adapter": "workspace", "mode": "confined", "network": false})
}
