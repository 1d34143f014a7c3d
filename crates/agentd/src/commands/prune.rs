//! `agentd prune --older-than AGE`.

use std::process::ExitCode;

use agentd_store::PruneScope;

use crate::opts::LocalOpts;
use crate::setup::{open_store, parse_age, setup};

/// `agentd prune --older-than AGE`.
pub(crate) async fn prune(local: LocalOpts, older_than: &str, org: Option<String>) -> anyhow::Result<ExitCode> {
    let age = parse_age(older_than)?;
    let s = setup(&local)?;
    let opened = open_store(&s, false).await?;
    let cutoff = agentd_store::ago(age);
    let stats = opened.store.prune(&cutoff, &PruneScope { org, except_orgs: vec![] }).await?;
    println!(
        "pruned {} runs, {} events, {} sessions, {} messages, {} direct tool calls finished before {cutoff}",
        stats.runs, stats.events, stats.sessions, stats.messages, stats.tool_calls
    );
    Ok(ExitCode::SUCCESS)
}
