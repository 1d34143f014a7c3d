//! `agentd docs list|show|put|delete KIND …`: the tenant documents of any simple kind
//! (`prompts`, …) on a server: list, show, put (create or replace), delete.
//! One command for every kind the server serves under `/v1/KIND`.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use serde_json::Value;

use crate::http::{client, fetch, send};
use crate::opts::RemoteOpts;

#[derive(Subcommand)]
pub(crate) enum DocsCmd {
    /// The tenant's documents of the kind, one a line (name, then a field's start).
    List {
        /// The kind's collection, as in `/v1/KIND` (`prompts`).
        kind: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// One document, as JSON.
    Show {
        kind: String,
        name: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Creates a document, or replaces it when the name is taken (`--json '{"text": …}'`).
    Put {
        kind: String,
        name: String,
        /// The kind's fields as a JSON object.
        #[arg(long)]
        json: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Removes a document.
    Delete {
        kind: String,
        name: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
}

/// A document's name as one path segment: the server's name rule, checked here first.
fn checked_name(name: &str) -> anyhow::Result<&str> {
    agentd_runtime::documents::check_name(name).map_err(|e| anyhow::anyhow!("a name is not valid here: {e}"))?;
    Ok(name)
}

/// Text from the server as it may reach a terminal: no control characters
/// (escape sequences from a hostile server), C1 included.
fn printable(s: &str) -> String {
    s.chars().map(|c| if (c.is_control() && c != '\n') || is_format(c) { ' ' } else { c }).collect()
}

/// Invisible characters that reorder or hide text (bidirectional overrides, zero-width marks).
fn is_format(c: char) -> bool {
    matches!(c, '\u{200B}'..='\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2060}'..='\u{2069}' | '\u{FEFF}')
}

fn checked_kind(kind: &str) -> anyhow::Result<&str> {
    let ok = !kind.is_empty() && kind.chars().all(|c| c.is_ascii_lowercase() || c == '-');
    anyhow::ensure!(ok, "a kind is the collection's name, e.g. `prompts`");
    Ok(kind)
}

pub(crate) async fn run(cmd: DocsCmd) -> anyhow::Result<ExitCode> {
    let (DocsCmd::List { kind, remote }
    | DocsCmd::Show { kind, remote, .. }
    | DocsCmd::Put { kind, remote, .. }
    | DocsCmd::Delete { kind, remote, .. }) = &cmd;
    anyhow::ensure!(!remote.url.contains(['?', '#']), "--url is a server's address, without a query or fragment");
    let base = format!("{}/v1/{}", remote.url.trim_end_matches('/'), checked_kind(kind)?);
    let http = client(Some(remote))?;
    match &cmd {
        DocsCmd::List { .. } => {
            let page: Value = fetch(http.get(&base), &remote.url).await?;
            for d in page["data"].as_array().into_iter().flatten() {
                let first = d
                    .as_object()
                    .into_iter()
                    .flatten()
                    .find(|(k, v)| !["name", "created_at", "updated_at"].contains(&k.as_str()) && v.is_string())
                    .and_then(|(_, v)| v.as_str())
                    .unwrap_or_default();
                let first: String = first.chars().take(60).collect();
                println!(
                    "{}  {}",
                    printable(d["name"].as_str().unwrap_or_default()),
                    printable(&first).replace('\n', " ")
                );
            }
        }
        DocsCmd::Show { name, .. } => {
            let d: Value = fetch(http.get(format!("{base}/{}", checked_name(name)?)), &remote.url).await?;
            println!("{}", printable(&serde_json::to_string_pretty(&d)?));
        }
        DocsCmd::Put { name, json, .. } => {
            let name = checked_name(name)?;
            let mut body: Value = serde_json::from_str(json).context("--json is not a JSON object")?;
            anyhow::ensure!(body.is_object(), "--json is not a JSON object");
            let exists = http.get(format!("{base}/{name}")).send().await.is_ok_and(|r| r.status().is_success());
            let req = if exists {
                http.put(format!("{base}/{name}")).json(&body)
            } else {
                body["name"] = Value::String(name.to_string());
                http.post(&base).json(&body)
            };
            send(req, &remote.url).await?;
            println!("{} {name}", if exists { "replaced" } else { "created" });
        }
        DocsCmd::Delete { name, .. } => {
            send(http.delete(format!("{base}/{}", checked_name(name)?)), &remote.url).await?;
            println!("deleted {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
