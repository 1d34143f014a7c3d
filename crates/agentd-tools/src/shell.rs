//! `shell`: runs a command in the workspace, sandboxed with bubblewrap by
//! default (read-only system, writable workspace, no network, own PID
//! namespace), with a timeout, output limits and a clean environment.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use agentd_core::ToolSpec;
use async_trait::async_trait;
use serde_json::{Value, json};
use tokio::io::AsyncReadExt;

use crate::{Tool, ToolContext, ToolOutput};

/// How far a shell command can reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// bubblewrap: read-only root, writable workspace, no network.
    #[default]
    Restricted,
    /// No sandbox: the command runs as the server's user.
    None,
}

const MAX_STREAM: usize = 64 * 1024;
const DEFAULT_TIMEOUT_MS: u64 = 120_000;
const MAX_TIMEOUT_MS: u64 = 600_000;

pub struct Shell {
    pub sandbox: SandboxMode,
}

/// Where bubblewrap is, if installed.
pub fn find_bwrap() -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join("bwrap")).find(|c| c.is_file()))
        .unwrap_or(None)
        .or_else(|| Some(PathBuf::from("/usr/bin/bwrap")).filter(|p| p.is_file()))
}

/// Reads a stream to the end, keeping at most `MAX_STREAM` bytes.
async fn read_capped(mut r: impl tokio::io::AsyncRead + Unpin) -> (String, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut cut = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = MAX_STREAM.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                cut |= n > room;
            }
        }
    }
    (String::from_utf8_lossy(&kept).into_owned(), cut)
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid {
        // SAFETY: killpg only sends a signal; the group id is our child's pid.
        unsafe {
            libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        }
    }
}

#[async_trait]
impl Tool for Shell {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "shell".into(),
            description:
                "Runs a command in the workspace: `command` (a string for sh -c) or `argv` (a list, no shell). \
                          Answers the exit code, stdout and stderr."
                    .into(),
            input_schema: json!({"type": "object", "additionalProperties": false, "properties": {
                "command": {"type": "string"},
                "argv": {"type": "array", "items": {"type": "string"}, "minItems": 1},
                "timeout_ms": {"type": "integer", "minimum": 1, "maximum": MAX_TIMEOUT_MS}
            }, "oneOf": [{"required": ["command"]}, {"required": ["argv"]}]}),
        }
    }

    fn needs_workspace(&self) -> bool {
        true
    }
    fn idempotent(&self) -> bool {
        false
    }

    async fn call(&self, args: Value, ctx: ToolContext) -> ToolOutput {
        let Some(ws) = ctx.workspace.clone() else { return ToolOutput::error("this call has no workspace") };
        let argv: Vec<String> = match (&args["command"], &args["argv"]) {
            (Value::String(c), Value::Null) => vec!["sh".into(), "-c".into(), c.clone()],
            (Value::Null, Value::Array(a)) if !a.is_empty() => {
                match a.iter().map(|v| v.as_str().map(str::to_string)).collect::<Option<Vec<_>>>() {
                    Some(v) => v,
                    None => return ToolOutput::error("`argv` must be a list of strings"),
                }
            }
            _ => return ToolOutput::error("give exactly one of `command` (string) or `argv` (non-empty list)"),
        };
        if argv.iter().any(|a| a.contains('\0')) {
            return ToolOutput::error("arguments may not contain NUL bytes");
        }
        let timeout =
            Duration::from_millis(args["timeout_ms"].as_u64().unwrap_or(DEFAULT_TIMEOUT_MS).min(MAX_TIMEOUT_MS));
        let root = ws.root().to_path_buf();
        let mut cmd = match self.sandbox {
            SandboxMode::None => {
                let mut c = tokio::process::Command::new(&argv[0]);
                c.args(&argv[1..]);
                c
            }
            SandboxMode::Restricted => {
                let Some(bwrap) = find_bwrap() else {
                    return ToolOutput::error(
                        "shell runs sandboxed with bubblewrap, which is not installed: install the `bubblewrap` \
                         package, or set `[agents.default.sandbox] mode = \"none\"` to run commands unsandboxed",
                    );
                };
                let mut c = tokio::process::Command::new(bwrap);
                c.args(["--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc", "--tmpfs", "/tmp"])
                    .arg("--bind")
                    .arg(&root)
                    .arg(&root)
                    .args(["--unshare-net", "--unshare-pid", "--die-with-parent", "--new-session", "--chdir"])
                    .arg(&root)
                    .arg("--")
                    .args(&argv);
                c
            }
        };
        // A clean environment: the server's secrets never reach commands.
        cmd.env_clear()
            .env("PATH", "/usr/local/bin:/usr/bin:/bin")
            .env("HOME", &root)
            .env("LANG", "C.UTF-8")
            .current_dir(&root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .kill_on_drop(true);
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => return ToolOutput::error(format!("cannot start {:?}: {e}", argv[0])),
        };
        let pid = child.id();
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            kill_group(pid);
            return ToolOutput::error("cannot capture output");
        };
        let readers = futures::future::join(read_capped(out), read_capped(err));
        let waited = async {
            let (o, e) = readers.await;
            (child.wait().await, o, e)
        };
        let (status, (stdout, cut_out), (stderr, cut_err)) = tokio::select! {
            r = waited => r,
            _ = tokio::time::sleep(timeout) => {
                kill_group(pid);
                return ToolOutput::error(format!("timed out after {} ms; the command and its children were killed", timeout.as_millis()));
            }
            _ = ctx.cancel.cancelled() => {
                kill_group(pid);
                return ToolOutput::error("cancelled; the command and its children were killed");
            }
        };
        let code = match status {
            Ok(s) => s.code().map(|c| c.to_string()).unwrap_or_else(|| "killed by a signal".into()),
            Err(e) => return ToolOutput::error(format!("waiting for the command failed: {e}")),
        };
        let mark = |cut: bool| if cut { "\n[… truncated]" } else { "" };
        let text = format!(
            "exit code: {code}\n--- stdout ---\n{stdout}{}\n--- stderr ---\n{stderr}{}",
            mark(cut_out),
            mark(cut_err)
        );
        ToolOutput { content: vec![agentd_core::ContentPart::text(text)], is_error: code != "0" }
    }
}
