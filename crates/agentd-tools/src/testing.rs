//! Tools for tests and crash drills, registered only when the server is
//! started with `--enable-test-tools FILE`.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use agentd_core::ToolSpec;
use async_trait::async_trait;
use serde_json::json;

use crate::{Tool, ToolContext, ToolOutput};

/// Appends `<run id> <call id> <line>` to a file: a side effect that must
/// happen at most once per call, so it is declared not idempotent.
pub struct AppendLine {
    pub path: PathBuf,
}

#[async_trait]
impl Tool for AppendLine {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "test_append".into(),
            description: "Test tool: appends a line to the test side-effect file (optionally after delay_ms).".into(),
            input_schema: json!({"type": "object", "properties": {
                "line": {"type": "string"}, "delay_ms": {"type": "integer", "minimum": 0}
            }}),
        }
    }

    fn idempotent(&self) -> bool {
        false
    }

    async fn call(&self, args: serde_json::Value, ctx: ToolContext) -> ToolOutput {
        let delay = Duration::from_millis(args["delay_ms"].as_u64().unwrap_or(0));
        if !delay.is_zero() {
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = ctx.cancel.cancelled() => return ToolOutput::error("cancelled before writing"),
            }
        }
        let line = format!("{} {} {}\n", ctx.run_id, ctx.call_id, args["line"].as_str().unwrap_or(""));
        let path = self.path.clone();
        // One write(2) with O_APPEND: lines never interleave.
        let res = tokio::task::spawn_blocking(move || {
            std::fs::OpenOptions::new().create(true).append(true).open(&path)?.write_all(line.as_bytes())
        })
        .await;
        match res {
            Ok(Ok(())) => ToolOutput::text("appended"),
            Ok(Err(e)) => ToolOutput::error(format!("append failed: {e}")),
            Err(e) => ToolOutput::error(format!("append failed: {e}")),
        }
    }
}

/// Sleeps `ms` milliseconds unless cancelled first (reports which).
pub struct Sleep;

#[async_trait]
impl Tool for Sleep {
    fn spec(&self) -> ToolSpec {
        ToolSpec {
            name: "test_sleep".into(),
            description: "Test tool: waits `ms` milliseconds, or until the run is cancelled.".into(),
            input_schema: json!({"type": "object", "properties": {"ms": {"type": "integer", "minimum": 0}}}),
        }
    }

    fn idempotent(&self) -> bool {
        true
    }

    async fn call(&self, args: serde_json::Value, ctx: ToolContext) -> ToolOutput {
        let ms = args["ms"].as_u64().unwrap_or(1000);
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(ms)) => ToolOutput::text(format!("slept {ms} ms")),
            _ = ctx.cancel.cancelled() => ToolOutput::error("cancelled"),
        }
    }
}
