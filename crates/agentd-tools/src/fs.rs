//! File tools over the run's workspace: read_file, write_file, edit_file,
//! list_dir, glob, grep. Every file and directory is opened beneath the
//! workspace in one step (see [`Workspace`]); only regular files are read.

use std::io::{BufRead, BufReader};

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
/// Longest line `read_file` returns whole; longer ones are cut.
const MAX_LINE: usize = 16 * 1024;
/// Bytes of one file `grep` searches.
const MAX_GREP_FILE: usize = 8 * 1024 * 1024;
/// Longest glob or regex pattern accepted.
const MAX_PATTERN: usize = 4096;

fn ws(ctx: &ToolContext) -> Result<&Workspace, ToolOutput> {
    ctx.workspace.as_ref().ok_or_else(|| ToolOutput::error("this call has no workspace"))
}

fn str_arg<'a>(args: &'a Value, name: &str) -> Result<&'a str, ToolOutput> {
    args[name].as_str().ok_or_else(|| ToolOutput::error(format!("`{name}` must be a string")))
}

/// Runs blocking file work on the tool pool, off the async threads and
/// away from the store's own threads.
async fn blocking<F: FnOnce() -> ToolOutput + Send + 'static>(ctx: &ToolContext, f: F) -> ToolOutput {
    crate::pool::run_blocking(&ctx.org, f).await.unwrap_or_else(|e| ToolOutput::error(format!("tool task failed: {e}")))
}

fn perr(e: crate::workspace::PathError) -> ToolOutput {
    ToolOutput::error(e.to_string())
}

/// Lines `offset..offset+limit` (1-based) of a reader, streamed: skipped
/// lines are never held, output stops at [`MAX_OUTPUT`], long lines are cut.
fn read_lines(r: impl std::io::Read, offset: usize, limit: usize) -> std::io::Result<(String, Option<usize>)> {
    let mut r = BufReader::with_capacity(64 * 1024, r);
    let (mut line_no, mut out, mut cur, mut taken) = (1usize, Vec::new(), Vec::new(), 0usize);
    let mut cut = false;
    loop {
        let buf = r.fill_buf()?;
        if buf.is_empty() {
            break;
        }
        let (chunk, ends_line) = match buf.iter().position(|b| *b == b'\n') {
            Some(i) => (&buf[..i], Some(i + 1)),
            None => (buf, None),
        };
        let in_range = line_no >= offset && taken < limit;
        if in_range && cur.len() < MAX_LINE {
            let room = MAX_LINE - cur.len();
            cur.extend_from_slice(&chunk[..chunk.len().min(room)]);
            cut |= chunk.len() > room;
        }
        let n = ends_line.unwrap_or(chunk.len());
        r.consume(n);
        if ends_line.is_some() {
            if in_range {
                if !out.is_empty() {
                    out.push(b'\n');
                }
                out.append(&mut cur);
                if std::mem::take(&mut cut) {
                    out.extend_from_slice(b" [\xe2\x80\xa6 line cut]");
                }
                taken += 1;
            }
            line_no += 1;
            if taken >= limit || out.len() >= MAX_OUTPUT {
                // Anything after this line? One more byte tells.
                let more = !r.fill_buf()?.is_empty();
                return Ok((String::from_utf8_lossy(&out).into_owned(), more.then_some(line_no)));
            }
        }
    }
    if line_no >= offset && taken < limit && !cur.is_empty() {
        if !out.is_empty() {
            out.push(b'\n');
        }
        out.append(&mut cur);
    }
    Ok((String::from_utf8_lossy(&out).into_owned(), None))
}

fn truncate_output(s: String) -> String {
    if s.len() > MAX_OUTPUT { agentd_core::text::truncate(&s, MAX_OUTPUT, "\n[… output truncated]") } else { s }
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
pub(crate) struct ReadFile;

#[async_trait]
impl Tool for ReadFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "read_file".into(),
            description: "Reads a text file in the workspace. offset is the first line (1-based), limit the number of lines (default 2000).".into(),
            input_schema: json!({"type": "object", "required": ["path"], "additionalProperties": false, "properties": {
                "path": {"type": "string", "maxLength": 4096},
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
        blocking(&ctx, move || {
            let f = match ws.open_read(&path) {
                Ok(f) => f,
                Err(crate::workspace::PathError::IsDir(_)) => {
                    return ToolOutput::error(format!("{path} is a directory; use list_dir"));
                }
                Err(e) => return perr(e),
            };
            let mut head = [0u8; 8192];
            let n = std::os::unix::fs::FileExt::read_at(&f, &mut head, 0).unwrap_or(0);
            let invalid = std::str::from_utf8(&head[..n]).err().is_some_and(|e| e.error_len().is_some());
            if head[..n].contains(&0) || invalid {
                return ToolOutput::error(format!("{path} is not a UTF-8 text file"));
            }
            let (mut out, next) = match read_lines(f, offset, limit) {
                Ok(r) => r,
                Err(e) => return ToolOutput::error(format!("cannot read {path}: {e}")),
            };
            if let Some(next) = next {
                out.push_str(&format!("\n[… more lines; continue with offset {next}]"));
            }
            ToolOutput::text(truncate_output(out))
        })
        .await
    }
}

/// `write_file {path, content}`: creates or replaces a file (and its parent directories).
pub(crate) struct WriteFile;

#[async_trait]
impl Tool for WriteFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "write_file".into(),
            description: "Creates or overwrites a file in the workspace with the given content.".into(),
            input_schema: json!({"type": "object", "required": ["path", "content"], "additionalProperties": false, "properties": {
                "path": {"type": "string", "maxLength": 4096}, "content": {"type": "string"}
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
        blocking(&ctx, move || {
            let rel = tool_body!(ws.check(&path).map_err(perr));
            match ws.write(&path, content.as_bytes()) {
                Ok(()) => ToolOutput::text(format!("wrote {} bytes to {}", content.len(), rel.display())),
                Err(e) => perr(e),
            }
        })
        .await
    }
}

/// `edit_file {path, old, new}`: replaces the one occurrence of `old`.
pub(crate) struct EditFile;

#[async_trait]
impl Tool for EditFile {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "edit_file".into(),
            description:
                "Replaces the exact text `old` with `new` in a file. Fails if `old` is absent or occurs more than once."
                    .into(),
            input_schema: json!({"type": "object", "required": ["path", "old", "new"], "additionalProperties": false, "properties": {
                "path": {"type": "string", "maxLength": 4096}, "old": {"type": "string", "minLength": 1}, "new": {"type": "string"}
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
        blocking(&ctx, move || {
            use std::io::{Read, Seek, Write};
            // One open for read and write: the file edited is the file read.
            let mut f = tool_body!(ws.open_rw(&path).map_err(perr));
            let mut bytes = vec![];
            if let Err(e) = (&mut f).take(MAX_WRITE as u64 + 1).read_to_end(&mut bytes) {
                return ToolOutput::error(format!("cannot read {path}: {e}"));
            }
            if bytes.len() > MAX_WRITE {
                return ToolOutput::error(format!("{path} is larger than {MAX_WRITE} bytes; edit it with the shell"));
            }
            let Ok(text) = String::from_utf8(bytes) else {
                return ToolOutput::error(format!("{path} is not a UTF-8 text file"));
            };
            match text.matches(old.as_str()).count() {
                0 => ToolOutput::error(format!("`old` was not found in {path}")),
                1 => {
                    let updated = text.replacen(old.as_str(), &new, 1);
                    if updated.len() > MAX_WRITE {
                        return ToolOutput::error("the edited file would exceed the size limit");
                    }
                    let _held = ws.quota_lock();
                    tool_body!(ws.check_quota(&path, text.len() as u64, updated.len() as u64).map_err(perr));
                    let written = f.set_len(0).and_then(|()| f.rewind()).and_then(|()| f.write_all(updated.as_bytes()));
                    match written {
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
pub(crate) struct ListDir;

#[async_trait]
impl Tool for ListDir {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "list_dir".into(),
            description: "Lists a directory of the workspace (default: its root).".into(),
            input_schema: json!({"type": "object", "additionalProperties": false, "properties": {"path": {"type": "string", "maxLength": 4096}}}),
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
        blocking(&ctx, move || {
            let entries = tool_body!(ws.list(&path).map_err(perr));
            let mut rows: Vec<String> = entries
                .into_iter()
                .map(|(name, is_dir, is_link, size)| match (is_dir, is_link) {
                    (true, _) => format!("{name}/"),
                    (_, true) => format!("{name}@"),
                    _ => format!("{name}\t{size}"),
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

fn check_pattern(pattern: &str) -> Result<(), ToolOutput> {
    if pattern.len() > MAX_PATTERN {
        return Err(ToolOutput::error(format!("patterns are limited to {MAX_PATTERN} bytes")));
    }
    Ok(())
}

/// `glob {pattern}`: workspace files matching a glob such as `src/**/*.rs`.
pub(crate) struct Glob;

#[async_trait]
impl Tool for Glob {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "glob".into(),
            description: "Finds workspace files whose relative path matches a glob (e.g. `**/*.md`).".into(),
            input_schema: json!({"type": "object", "required": ["pattern"], "additionalProperties": false, "properties": {"pattern": {"type": "string", "maxLength": 4096}}}),
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
        tool_body!(check_pattern(&pattern));
        if pattern.starts_with('/') || pattern.split('/').any(|c| c == "..") {
            return ToolOutput::error("patterns are relative to the workspace and may not contain `..`");
        }
        let matcher = match globset::GlobBuilder::new(&pattern).literal_separator(true).build() {
            Ok(g) => g.compile_matcher(),
            Err(e) => return ToolOutput::error(format!("invalid glob: {e}")),
        };
        blocking(&ctx, move || {
            let files = tool_body!(ws.walk_files(".").map_err(perr));
            let mut hits: Vec<String> =
                files.into_iter().filter(|rel| matcher.is_match(rel)).take(MAX_LIST + 1).collect();
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
pub(crate) struct Grep;

#[async_trait]
impl Tool for Grep {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "grep".into(),
            description: "Searches workspace files for a regular expression; answers `path:line:text` lines.".into(),
            input_schema: json!({"type": "object", "required": ["pattern"], "additionalProperties": false, "properties": {
                "pattern": {"type": "string", "maxLength": 4096}, "path": {"type": "string", "maxLength": 4096}
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
        tool_body!(check_pattern(&pattern));
        let re =
            match regex::RegexBuilder::new(&pattern).size_limit(1 << 20).dfa_size_limit(1 << 20).nest_limit(64).build()
            {
                Ok(r) => r,
                Err(e) => return ToolOutput::error(format!("invalid regex: {e}")),
            };
        blocking(&ctx, move || {
            let files = match ws.kind(&path) {
                Ok(crate::workspace::Want::Dir) => tool_body!(ws.walk_files(&path).map_err(perr)),
                Ok(crate::workspace::Want::File) => {
                    vec![tool_body!(ws.check(&path).map_err(perr)).display().to_string()]
                }
                Err(e) => return perr(e),
            };
            let mut out = String::new();
            let mut n = 0;
            'files: for rel in files {
                let Ok((bytes, _)) = ws.read_capped(&rel, MAX_GREP_FILE) else { continue };
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
