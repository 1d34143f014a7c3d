//! Rendering tenant templates in a worker process. Fuel bounds a render's
//! steps, not its memory: `{% set ns.a = ns.a ~ ns.a %}` thirty times over
//! doubles a string to gigabytes in a few steps, and an allocation that
//! fails aborts the whole process. So each render runs in a short-lived
//! child (this binary, started with [`WORKER_ARG`]) whose heap and CPU time
//! the kernel bounds: over them the child dies, never the server, and the
//! caller gets `400 template_too_large`. Without a worker set (library
//! tests), renders run on a thread here.

use agentd_core::Tenant;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::sync::OnceLock;

use agentd_core::ErrorCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::RuntimeError;

/// The first argument that makes the binary a template worker.
pub const WORKER_ARG: &str = "__render-template";
/// Heap (RLIMIT_DATA: writable private memory, stacks included) of one render.
pub const WORKER_MEMORY_BYTES: u64 = 128 * 1024 * 1024;
/// CPU seconds of one render (fuel stops loops long before this).
const WORKER_CPU_SECS: u64 = 2;
/// Wall time of one render, its wait for a slot included.
const WORKER_WALL: std::time::Duration = std::time::Duration::from_secs(10);
/// Renders running at once on this node; more wait their turn.
const WORKERS: usize = 4;
/// Of those, renders one organisation may run at once: another org's
/// template never queues behind a flood of one org's.
const WORKERS_PER_ORG: usize = 2;
/// Largest answer read back from a worker (the output cap and some JSON).
const MAX_ANSWER: u64 = (crate::templates::MAX_OUTPUT_BYTES as u64) * 7 + 64 * 1024;

static WORKER: OnceLock<PathBuf> = OnceLock::new();

/// Renders run in worker processes started from `exe` from now on.
pub fn use_worker(exe: PathBuf) {
    let _ = WORKER.set(exe);
}

#[derive(Serialize, Deserialize)]
struct Job {
    name: String,
    content: String,
    args: Value,
}

/// What a worker answers: the text or the error, as the runtime spells it.
#[derive(Serialize, Deserialize)]
enum Answer {
    Text(String),
    Missing { template: String, variable: String },
    Invalid { code: ErrorCode, message: String },
}

fn answer_of(r: Result<String, RuntimeError>) -> Answer {
    match r {
        Ok(t) => Answer::Text(t),
        Err(RuntimeError::MissingVariable { template, variable }) => Answer::Missing { template, variable },
        Err(e) => Answer::Invalid { code: e.code(), message: e.to_string() },
    }
}

fn result_of(a: Answer) -> Result<String, RuntimeError> {
    match a {
        Answer::Text(t) => Ok(t),
        Answer::Missing { template, variable } => Err(RuntimeError::MissingVariable { template, variable }),
        Answer::Invalid { code, message } => Err(RuntimeError::bad(code, message)),
    }
}

fn too_large() -> RuntimeError {
    RuntimeError::bad(
        ErrorCode::TemplateTooLarge,
        format!(
            "rendering the template needed more than {} MiB of memory or {WORKER_CPU_SECS} s of CPU",
            WORKER_MEMORY_BYTES / (1024 * 1024)
        ),
    )
}

fn worker_failed(why: impl std::fmt::Display) -> RuntimeError {
    RuntimeError::bad(ErrorCode::TemplateError, format!("the template worker failed: {why}"))
}

fn org_slots(org: &str) -> std::sync::Arc<tokio::sync::Semaphore> {
    static ORGS: OnceLock<std::sync::Mutex<std::collections::HashMap<String, std::sync::Arc<tokio::sync::Semaphore>>>> =
        OnceLock::new();
    let mut all = ORGS.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner());
    if all.len() > 10_000 {
        all.retain(|_, s| s.available_permits() < WORKERS_PER_ORG);
    }
    all.entry(org.to_string())
        .or_insert_with(|| std::sync::Arc::new(tokio::sync::Semaphore::new(WORKERS_PER_ORG)))
        .clone()
}

/// Renders a tenant's `content` with `arguments` (a JSON object), bounded
/// in steps (fuel), output, memory and CPU (in a worker process).
pub async fn render(org: &str, name: &str, content: &str, arguments: &Value) -> Result<String, RuntimeError> {
    let args = crate::templates::object_args(arguments)?;
    crate::templates::check_complexity(content)?;
    render_checked(org, name, content, args).await
}

impl crate::Runtime {
    /// Renders the tenant's template `name` with `arguments`.
    pub async fn render_template(&self, t: &Tenant, name: &str, arguments: &Value) -> Result<String, RuntimeError> {
        let tpl = self.documents().get::<crate::templates::Template>(t, name).await?;
        render(&t.org, name, &tpl.body.content, arguments).await
    }
}

/// Renders `content` (already checked) with `args` (a JSON object) for `org`.
async fn render_checked(org: &str, name: &str, content: &str, args: Value) -> Result<String, RuntimeError> {
    match tokio::time::timeout(WORKER_WALL, render_inner(org, name, content, args)).await {
        Ok(r) => r,
        // Dropping the future kills the worker (kill_on_drop).
        Err(_) => Err(RuntimeError::bad(
            ErrorCode::TemplateTooLarge,
            format!("rendering the template took more than {} s", WORKER_WALL.as_secs()),
        )),
    }
}

async fn render_inner(org: &str, name: &str, content: &str, args: Value) -> Result<String, RuntimeError> {
    let Some(exe) = WORKER.get() else {
        let (name, content) = (name.to_string(), content.to_string());
        return tokio::task::spawn_blocking(move || crate::templates::render_here(&name, &content, &args))
            .await
            .map_err(worker_failed)?;
    };
    static SLOTS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(WORKERS);
    let _mine = org_slots(org).acquire_owned().await.map_err(worker_failed)?;
    let _slot = SLOTS.acquire().await.map_err(worker_failed)?;
    let job = serde_json::to_vec(&Job { name: name.into(), content: content.into(), args }).map_err(worker_failed)?;
    let mut cmd = tokio::process::Command::new(exe);
    cmd.arg(WORKER_ARG)
        .env_clear()
        // One malloc arena: the heap the limit counts is the one rendering uses.
        .env("MALLOC_ARENA_MAX", "1")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    agentd_tools::sandbox::set_rlimits(
        &mut cmd,
        vec![(libc::RLIMIT_DATA, WORKER_MEMORY_BYTES), (libc::RLIMIT_CPU, WORKER_CPU_SECS)],
    );
    let mut child = cmd.spawn().map_err(worker_failed)?;
    let (Some(mut stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
        return Err(worker_failed("no pipes"));
    };
    // The worker reads the whole job before it writes: no pipe can fill both ways.
    stdin.write_all(&job).await.map_err(worker_failed)?;
    drop(stdin);
    let mut out = Vec::new();
    stdout.take(MAX_ANSWER).read_to_end(&mut out).await.map_err(worker_failed)?;
    let status = child.wait().await.map_err(worker_failed)?;
    if !status.success() {
        // Killed by a limit (SIGABRT on a failed allocation, SIGXCPU/SIGKILL on CPU).
        return Err(too_large());
    }
    result_of(serde_json::from_slice(&out).map_err(worker_failed)?)
}

/// The worker's `main`: one job from stdin, its answer to stdout.
pub fn worker_main() -> std::process::ExitCode {
    let mut input = Vec::new();
    if std::io::stdin().read_to_end(&mut input).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    let answer = match serde_json::from_slice::<Job>(&input) {
        Ok(job) => answer_of(crate::templates::render_here(&job.name, &job.content, &job.args)),
        Err(e) => Answer::Invalid { code: ErrorCode::TemplateError, message: format!("bad job: {e}") },
    };
    drop(input);
    let Ok(text) = serde_json::to_vec(&answer) else { return std::process::ExitCode::FAILURE };
    let mut out = std::io::stdout().lock();
    if out.write_all(&text).and_then(|_| out.flush()).is_err() {
        return std::process::ExitCode::FAILURE;
    }
    std::process::ExitCode::SUCCESS
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn answers_carry_every_outcome_across_the_pipe() {
        for r in [
            Ok("text".to_string()),
            Err(RuntimeError::MissingVariable { template: "t".into(), variable: "v".into() }),
            Err(RuntimeError::bad(ErrorCode::TemplateTooLarge, "big")),
        ] {
            let want = format!("{r:?}");
            let wire = serde_json::to_vec(&answer_of(r)).unwrap();
            let back = result_of(serde_json::from_slice(&wire).unwrap());
            assert_eq!(format!("{back:?}"), want);
        }
    }
}
