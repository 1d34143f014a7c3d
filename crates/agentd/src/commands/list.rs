//! `agentd sessions`, `agentd runs`: listings from a server.

use std::process::ExitCode;

use agentd_api::{Page, Run, Session};

use crate::http::{client, fetch};
use crate::opts::RemoteOpts;

async fn page<T: serde::de::DeserializeOwned>(remote: &RemoteOpts, path: &str) -> anyhow::Result<Page<T>> {
    fetch(client(Some(remote))?.get(format!("{}{path}", remote.url.trim_end_matches('/'))), &remote.url).await
}

fn more<T>(p: &Page<T>) {
    match &p.next_cursor {
        Some(agentd_api::Cursor::Id(c)) => eprintln!("more: pass after={c}"),
        Some(agentd_api::Cursor::Seq(c)) => eprintln!("more: pass after={c}"),
        None => {}
    }
}

pub(crate) async fn runs(remote: &RemoteOpts, path: &str) -> anyhow::Result<ExitCode> {
    let p: Page<Run> = page(remote, path).await?;
    for r in &p.data {
        let input: String = r.input.chars().take(60).collect();
        println!("{}  {}  {:<10} {input}", r.id, r.created_at, r.status.as_str());
    }
    more(&p);
    Ok(ExitCode::SUCCESS)
}

pub(crate) async fn sessions(remote: &RemoteOpts, path: &str) -> anyhow::Result<ExitCode> {
    let p: Page<Session> = page(remote, path).await?;
    for s in &p.data {
        println!("{}  {}  {}", s.id, s.created_at, s.title.as_deref().unwrap_or(""));
    }
    more(&p);
    Ok(ExitCode::SUCCESS)
}
