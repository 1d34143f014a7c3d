//! `agentd approvals`, `agentd approve`, `agentd deny`.

use std::process::ExitCode;

use agentd_api::{AnswerApproval, Approval, Page};
use anyhow::Context;

use crate::http::{client, fetch};
use crate::opts::RemoteOpts;
use crate::print::describe;

pub(crate) async fn list(remote: &RemoteOpts, run: Option<String>, status: &str) -> anyhow::Result<ExitCode> {
    let mut url = format!("{}/v1/approvals?limit=200", remote.url.trim_end_matches('/'));
    if status != "all" {
        url.push_str(&format!("&status={status}"));
    }
    if let Some(r) = run {
        url.push_str(&format!("&run_id={r}"));
    }
    let page: Page<Approval> = fetch(client(Some(remote))?.get(url), &remote.url).await?;
    if page.data.is_empty() {
        eprintln!("no {} approvals", if status == "all" { "" } else { status });
    }
    for a in &page.data {
        println!("{}  run {}", describe(&a.into()), a.run_id);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn answer(
    remote: &RemoteOpts,
    id: &str,
    decision: agentd_core::Decision,
    reason: Option<String>,
    args: Option<String>,
) -> anyhow::Result<ExitCode> {
    let arguments = args.map(|a| serde_json::from_str(&a).context("--args must be a JSON object")).transpose()?;
    let body = AnswerApproval { decision: decision.as_str().to_string(), reason, arguments };
    let url = format!("{}/v1/approvals/{id}", remote.url.trim_end_matches('/'));
    let a: Approval = fetch(client(Some(remote))?.post(url).json(&body), &remote.url).await?;
    println!("{}", describe(&(&a).into()));
    Ok(ExitCode::SUCCESS)
}
