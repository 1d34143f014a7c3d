//! `agentd tool list`, `agentd tool call`.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::cli::RemoteOpts;
use crate::http::{client, send};

pub(crate) async fn tool_list(remote: &RemoteOpts) -> anyhow::Result<ExitCode> {
    let resp =
        send(client(Some(remote))?.get(format!("{}/v1/tools", remote.url.trim_end_matches('/'))), &remote.url).await?;
    let body: Value = resp.json().await?;
    for t in body["data"].as_array().into_iter().flatten() {
        println!(
            "{:<28} {:<8} {}",
            t["name"].as_str().unwrap_or(""),
            t["source"].as_str().unwrap_or(""),
            t["description"].as_str().unwrap_or("")
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn tool_call(
    remote: &RemoteOpts,
    name: &str,
    args: &str,
    session: Option<String>,
) -> anyhow::Result<ExitCode> {
    let arguments: Value = serde_json::from_str(args).context("--args must be a JSON object")?;
    let resp = send(
        client(Some(remote))?
            .post(format!("{}/v1/tools/{name}/call", remote.url.trim_end_matches('/')))
            .json(&json!({"arguments": arguments, "session_id": session})),
        &remote.url,
    )
    .await?;
    let body: Value = resp.json().await?;
    for part in body["content"].as_array().into_iter().flatten() {
        match part["type"].as_str() {
            Some("text") => println!("{}", part["text"].as_str().unwrap_or("")),
            _ => println!("{part}"),
        }
    }
    Ok(if body["is_error"] == true { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
