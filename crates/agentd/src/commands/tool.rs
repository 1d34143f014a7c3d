//! `agentd tool list`, `agentd tool call`.

use std::process::ExitCode;

use agentd_api::{CallTool, ContentPart, Page, ToolCallResult, ToolInfo};
use anyhow::Context;

use crate::http::{client, fetch};
use crate::opts::RemoteOpts;

use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum ToolCmd {
    /// List the tools the server offers.
    List {
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Call a tool directly with JSON arguments.
    Call {
        name: String,
        /// Arguments as a JSON object.
        #[arg(long, default_value = "{}")]
        args: String,
        /// Use this session's workspace (the tenant's scratch workspace otherwise).
        #[arg(long)]
        session: Option<String>,
        #[command(flatten)]
        remote: RemoteOpts,
    },
}

pub(crate) async fn tool_list(remote: &RemoteOpts) -> anyhow::Result<ExitCode> {
    let url = format!("{}/v1/tools", remote.url.trim_end_matches('/'));
    let page: Page<ToolInfo> = fetch(client(Some(remote))?.get(url), &remote.url).await?;
    for t in &page.data {
        println!("{:<28} {:<8} {}", t.name, t.source, t.description);
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn tool_call(
    remote: &RemoteOpts,
    name: &str,
    args: &str,
    session: Option<String>,
) -> anyhow::Result<ExitCode> {
    let arguments = serde_json::from_str(args).context("--args must be a JSON object")?;
    let url = format!("{}/v1/tools/{name}/call", remote.url.trim_end_matches('/'));
    let body = CallTool { arguments, session_id: session };
    let out: ToolCallResult = fetch(client(Some(remote))?.post(url).json(&body), &remote.url).await?;
    for part in &out.content {
        match part {
            ContentPart::Text { text } => println!("{text}"),
            other => println!("{}", serde_json::to_string(other)?),
        }
    }
    Ok(if out.is_error { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
