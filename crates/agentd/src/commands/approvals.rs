//! `agentd approvals`, `agentd approve`, `agentd deny`.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::RemoteOpts;
use crate::http::{client, send};
use crate::print::describe;

pub(crate) async fn list(remote: &RemoteOpts, run: Option<String>, status: &str) -> anyhow::Result<ExitCode> {
    let mut url = format!("{}/v1/approvals?limit=200", remote.url.trim_end_matches('/'));
    if status != "all" {
        url.push_str(&format!("&status={status}"));
    }
    if let Some(r) = run {
        url.push_str(&format!("&run_id={r}"));
    }
    let body: Value = send(client(Some(remote))?.get(url), &remote.url).await?.json().await?;
    let rows = body["data"].as_array().cloned().unwrap_or_default();
    if rows.is_empty() {
        eprintln!("no {} approvals", if status == "all" { "" } else { status });
    }
    for a in rows {
        println!("{}  run {}", describe(&a), a["run_id"].as_str().unwrap_or(""));
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn answer(
    remote: &RemoteOpts,
    id: &str,
    decision: &str,
    reason: Option<String>,
    args: Option<String>,
) -> anyhow::Result<ExitCode> {
    let mut body = json!({"decision": decision, "reason": reason});
    if let Some(a) = args {
        body["arguments"] = serde_json::from_str(&a).context("--args must be a JSON object")?;
    }
    let url = format!("{}/v1/approvals/{id}", remote.url.trim_end_matches('/'));
    let a: Value = send(client(Some(remote))?.post(url).json(&body), &remote.url).await?.json().await?;
    println!("{}", describe(&a));
    Ok(ExitCode::SUCCESS)
}
