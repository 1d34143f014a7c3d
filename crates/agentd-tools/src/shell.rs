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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    /// bubblewrap: read-only root, writable workspace, no network.
    #[default]
    Restricted,
    /// No sandbox: the command runs as the server's user.
    None,
}

impl SandboxMode {
    pub fn as_str(&self) -> &'static str {
        match self {
            SandboxMode::Restricted => "restricted",
            SandboxMode::None => "none",
        }
    }
}

/// `[agents.<name>.sandbox]`: the fence around shell commands.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(default)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    /// Commands may open network connections (off: only a private loopback).
    pub network: bool,
    /// CPU time per command (RLIMIT_CPU).
    pub cpu_seconds: u64,
    /// Address space per process (RLIMIT_AS).
    pub memory_mb: u64,
    /// Processes a command may hold at once (a pids cgroup where the host
    /// has one, plus RLIMIT_NPROC for the unprivileged sandbox user).
    pub max_processes: u64,
    /// Largest file a command may write (RLIMIT_FSIZE).
    pub max_file_mb: u64,
    /// Bytes of stdout and of stderr kept each.
    pub max_output_bytes: usize,
}

impl Default for SandboxSettings {
    fn default() -> Self {
        Self {
            mode: SandboxMode::Restricted,
            network: false,
            cpu_seconds: 60,
            memory_mb: 4096,
            max_processes: 512,
            max_file_mb: 1024,
            max_output_bytes: 64 * 1024,
        }
    }
}

impl SandboxSettings {
    /// What a tool result records about the fence.
    pub fn evidence(&self, adapter: &str) -> Value {
        json!({
            "adapter": adapter,
            "mode": self.mode.as_str(),
            "network": self.network || self.mode == SandboxMode::None,
            "limits": {
                "cpu_seconds": self.cpu_seconds, "memory_mb": self.memory_mb,
                "max_processes": self.max_processes, "max_file_mb": self.max_file_mb,
                "max_output_bytes": self.max_output_bytes,
            }
        })
    }
}

const DEFAULT_TIMEOUT_MS: u64 = 120_000;
const MAX_TIMEOUT_MS: u64 = 600_000;

/// `shell`; how it is fenced comes with each call ([`ToolContext::sandbox`]).
pub(crate) struct Shell;

/// Where bubblewrap is, if installed.
/// Only `PATH` is searched, so an operator (or a test) can take it away.
pub fn find_bwrap() -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|p| std::env::split_paths(&p).map(|d| d.join("bwrap")).find(|c| c.is_file()))
}

/// Reads a stream to the end, keeping at most `max` bytes.
async fn read_capped(mut r: impl tokio::io::AsyncRead + Unpin, max: usize) -> (String, bool) {
    let mut kept = Vec::new();
    let mut buf = [0u8; 8192];
    let mut cut = false;
    loop {
        match r.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                let room = max.saturating_sub(kept.len());
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
                "command": {"type": "string", "maxLength": 65536},
                "argv": {"type": "array", "items": {"type": "string", "maxLength": 65536}, "minItems": 1, "maxItems": 4096},
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
        // No file a command writes may be larger than the room left under the
        // workspace's quota (RLIMIT_FSIZE; none left: reading and `rm` still
        // work). The kernel cannot bound the total across many files here:
        // the next command, upload or file tool sees it.
        let room = ws.quota_room();
        let sb = ctx.sandbox.clone();
        let (mut cmd, adapter, mut guard, mut evidence) = match sb.mode {
            SandboxMode::None => {
                let mut c = tokio::process::Command::new(&argv[0]);
                c.args(&argv[1..]);
                (c, "none", None, sb.evidence("none"))
            }
            SandboxMode::Restricted => {
                let Some(bwrap) = find_bwrap() else {
                    return ToolOutput::error(format!(
                        "{}: shell runs sandboxed with bubblewrap, which is not installed: install \
                         the `bubblewrap` package, or set `[agents.default.sandbox] mode = \"none\"` to run commands \
                         unsandboxed",
                        agentd_core::Refusal::SandboxUnavailable
                    ));
                };
                let mut c = tokio::process::Command::new(bwrap);
                let spec = crate::sandbox::FenceSpec {
                    writable: Some(root.clone()),
                    read_only: vec![],
                    network: sb.network,
                    max_processes: sb.max_processes,
                    hidden: vec![],
                };
                let (fence, guard) = crate::sandbox::build(&mut c, &spec);
                c.arg("--").args(&argv);
                let mut ev = sb.evidence("bubblewrap");
                if let (Some(o), serde_json::Value::Object(f)) = (ev.as_object_mut(), fence.evidence()) {
                    o.extend(f);
                }
                (c, "bubblewrap", Some(guard), ev)
            }
        };
        let mut limits = vec![
            (libc::RLIMIT_CPU, sb.cpu_seconds),
            (libc::RLIMIT_AS, sb.memory_mb.saturating_mul(1024 * 1024)),
            (libc::RLIMIT_FSIZE, sb.max_file_mb.saturating_mul(1024 * 1024).min(room.unwrap_or(u64::MAX))),
        ];
        // RLIMIT_NPROC counts every process of agentd's uid, other tenants'
        // included: only a fallback where no pids cgroup bounds this command.
        if evidence["pids_limit"] != "cgroup" {
            limits.push((libc::RLIMIT_NPROC, sb.max_processes));
        }
        crate::sandbox::set_rlimits(&mut cmd, limits);
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
        if let Some(g) = guard.as_mut() {
            g.spawned();
        }
        if adapter == "none" {
            evidence["uid"] = json!(unsafe { libc::geteuid() });
        }
        let pid = child.id();
        let (Some(out), Some(err)) = (child.stdout.take(), child.stderr.take()) else {
            kill_group(pid);
            return ToolOutput::error("cannot capture output");
        };
        let readers =
            futures::future::join(read_capped(out, sb.max_output_bytes), read_capped(err, sb.max_output_bytes));
        let waited = async {
            let (o, e) = readers.await;
            (child.wait().await, o, e)
        };
        // Whatever the command wrote bypassed the quota's checks: measure again next time.
        let _remeasure = remeasure_on_drop(&ws);
        let (status, (stdout, cut_out), (stderr, cut_err)) = tokio::select! {
            r = waited => r,
            _ = tokio::time::sleep(timeout) => {
                kill_group(pid);
                return ToolOutput::error(format!("timed out after {} ms; the command and its children were killed", timeout.as_millis()))
                    .with_sandbox(evidence.clone());
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
        if adapter == "bubblewrap" && code == "1" && stdout.is_empty() && stderr.starts_with("bwrap:") {
            // bubblewrap itself failed (no user namespaces, a bind it cannot make): never run unfenced.
            return ToolOutput::error(format!(
                "{}: bubblewrap could not set up the sandbox: {}",
                agentd_core::Refusal::SandboxUnavailable,
                stderr.trim()
            ))
            .with_sandbox(evidence.clone());
        }
        ToolOutput {
            content: vec![agentd_core::ContentPart::text(text)],
            is_error: code != "0",
            sandbox: Some(evidence),
        }
    }
}

/// Forgets the workspace's quota measure when dropped (the command ended,
/// however it ended).
fn remeasure_on_drop(ws: &crate::Workspace) -> impl Drop + '_ {
    struct Forget<'a>(&'a crate::Workspace);
    impl Drop for Forget<'_> {
        fn drop(&mut self) {
            self.0.quota_forget();
        }
    }
    Forget(ws)
}
