//! `agentd sessions`, `agentd runs`: listings from a server.

use std::process::ExitCode;

use serde_json::Value;

use crate::cli::RemoteOpts;
use crate::http::{client, send};

pub(crate) async fn list(remote: &RemoteOpts, path: &str) -> anyhow::Result<ExitCode> {
    let resp =
        send(client(Some(remote))?.get(format!("{}{path}", remote.url.trim_end_matches('/'))), &remote.url).await?;
    let body: Value = resp.json().await?;
    for row in body["data"].as_array().into_iter().flatten() {
        let id = row["id"].as_str().unwrap_or("?");
        let when = row["created_at"].as_str().unwrap_or("");
        match row.get("status") {
            Some(status) => {
                let input: String = row["input"].as_str().unwrap_or("").chars().take(60).collect();
                println!("{id}  {when}  {:<10} {input}", status.as_str().unwrap_or(""));
            }
            None => println!("{id}  {when}  {}", row["title"].as_str().unwrap_or("")),
        }
    }
    if let Some(c) = body["next_cursor"].as_str() {
        eprintln!("more: pass after={c}");
    }
    Ok(ExitCode::SUCCESS)
}
