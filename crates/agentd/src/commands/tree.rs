//! `agentd tree`, `agentd inject`, `agentd agents …`, `agentd teams …`:
//! delegation, versioned agents and teams from the command line.

use std::process::ExitCode;

use anyhow::Context;
use serde_json::{Value, json};

use crate::http::{client, fetch};
use crate::opts::RemoteOpts;

use clap::Subcommand;

#[derive(Subcommand)]
pub(crate) enum AgentsCmd {
    /// Configured, file and tenant agents.
    List {
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Every version of a tenant agent.
    Versions {
        name: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Print an agent as one portable JSON file (with its skills and template).
    Export {
        name: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Take an exported agent back.
    Import {
        file: std::path::PathBuf,
        /// Overwrite what exists (a new version of the agent).
        #[arg(long)]
        replace: bool,
        #[command(flatten)]
        remote: RemoteOpts,
    },
}

impl AgentsCmd {
    pub(crate) fn remote(&self) -> &RemoteOpts {
        match self {
            Self::List { remote }
            | Self::Versions { remote, .. }
            | Self::Export { remote, .. }
            | Self::Import { remote, .. } => remote,
        }
    }
}

#[derive(Subcommand)]
pub(crate) enum TeamsCmd {
    List {
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// Start a team run; prints its id (follow it with `agentd tail` or `agentd tree`).
    Run {
        name: String,
        input: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
    /// The team's blackboard.
    Board {
        name: String,
        #[command(flatten)]
        remote: RemoteOpts,
    },
}

impl TeamsCmd {
    pub(crate) fn remote(&self) -> &RemoteOpts {
        match self {
            Self::List { remote } | Self::Run { remote, .. } | Self::Board { remote, .. } => remote,
        }
    }
}

fn url(remote: &RemoteOpts, path: &str) -> String {
    format!("{}{path}", remote.url.trim_end_matches('/'))
}

async fn get(remote: &RemoteOpts, path: &str) -> anyhow::Result<Value> {
    fetch(client(Some(remote))?.get(url(remote, path)), &remote.url).await
}

async fn post(remote: &RemoteOpts, path: &str, body: &Value) -> anyhow::Result<Value> {
    fetch(client(Some(remote))?.post(url(remote, path)).json(body), &remote.url).await
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or("-")
}

/// Prints a run and its descendants, one line each, indented by depth.
pub(crate) async fn tree(remote: &RemoteOpts, run_id: &str) -> anyhow::Result<ExitCode> {
    let mut todo = vec![(get(remote, &format!("/v1/runs/{run_id}")).await?, 0usize)];
    while let Some((run, indent)) = todo.pop() {
        let tokens = run["tree_usage"]["total_tokens"].as_u64().unwrap_or(0);
        println!(
            "{}{} {:<17} {:<12} {tokens} tokens",
            "  ".repeat(indent),
            s(&run, "id"),
            s(&run, "status"),
            s(&run, "agent")
        );
        let kids = get(remote, &format!("/v1/runs/{}/children", s(&run, "id"))).await?;
        for k in kids["data"].as_array().into_iter().flatten().rev() {
            todo.push((k.clone(), indent + 1));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Adds a user message to a running or waiting run.
pub(crate) async fn inject(remote: &RemoteOpts, run_id: &str, input: &str) -> anyhow::Result<ExitCode> {
    let out = post(remote, &format!("/v1/runs/{run_id}/messages"), &json!({"input": input})).await?;
    println!("queued as event {} of {run_id} ({})", out["queued_seq"], s(&out["run"], "status"));
    Ok(ExitCode::SUCCESS)
}

/// `agentd agents list | versions NAME | export NAME | import FILE [--replace]`.
pub(crate) async fn agents(remote: &RemoteOpts, cmd: &AgentsCmd) -> anyhow::Result<ExitCode> {
    use AgentsCmd::*;
    match cmd {
        List { .. } => {
            for a in get(remote, "/v1/agents").await?["data"].as_array().into_iter().flatten() {
                println!("{:<24} {:<7} {}", s(a, "name"), s(a, "source"), a["description"].as_str().unwrap_or(""));
            }
        }
        Versions { name, .. } => {
            for v in get(remote, &format!("/v1/agents/{name}/versions")).await?["data"].as_array().into_iter().flatten()
            {
                println!("v{:<4} {}", v["version"], s(v, "created_at"));
            }
        }
        Export { name, .. } => {
            println!("{}", serde_json::to_string_pretty(&get(remote, &format!("/v1/agents/{name}/export")).await?)?)
        }
        Import { file, replace, .. } => {
            let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))?;
            let bundle: Value = serde_json::from_str(&text).context("the file is not JSON")?;
            let q = if *replace { "?replace=true" } else { "" };
            let out = post(remote, &format!("/v1/agents/import{q}"), &bundle).await?;
            println!("imported {} as version {}", s(&out["agent"], "name"), out["version"]);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `agentd teams list | run NAME INPUT | board NAME`.
pub(crate) async fn teams(remote: &RemoteOpts, cmd: &TeamsCmd) -> anyhow::Result<ExitCode> {
    use TeamsCmd::*;
    match cmd {
        List { .. } => {
            for t in get(remote, "/v1/teams").await?["data"].as_array().into_iter().flatten() {
                let members = t["members"].as_array().map_or(0, Vec::len);
                println!(
                    "{:<24} {:<9} {members} members, lead {}",
                    s(t, "name"),
                    s(t, "strategy"),
                    s(&t["lead"], "role")
                );
            }
        }
        Run { name, input, .. } => {
            let run = post(remote, &format!("/v1/teams/{name}/runs"), &json!({"input": input})).await?;
            println!("{}", s(&run, "id"));
        }
        Board { name, .. } => {
            for e in
                get(remote, &format!("/v1/teams/{name}/blackboard")).await?["data"].as_array().into_iter().flatten()
            {
                println!("[{}] {}: {}", s(e, "kind"), s(e, "author"), s(e, "content"));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
