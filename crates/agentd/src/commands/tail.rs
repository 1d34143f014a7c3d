//! `agentd tail`: follow a run's journal over SSE.

use std::process::ExitCode;

use crate::http::{client, send};
use crate::opts::RemoteOpts;

pub(crate) async fn tail(remote: &RemoteOpts, run_id: &str, after: i64) -> anyhow::Result<ExitCode> {
    let resp = send(
        client(Some(remote))?
            .get(format!("{}/v1/runs/{run_id}/events?after={after}", remote.url.trim_end_matches('/')))
            .header("accept", "text/event-stream"),
        &remote.url,
    )
    .await?;
    crate::stream::follow(resp, true).await
}
