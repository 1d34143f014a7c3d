//! `agentd run`: one run, in this process or against a server.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentd_core::Tenant;
use agentd_runtime::{CreateRun, Live, Runtime};
use anyhow::Context;

use crate::opts::LocalOpts;
use crate::print::Printer;
use crate::setup::{build_runtime, open_store, setup};

/// `agentd run` without a server: the runtime lives in this process.
pub(crate) async fn run_local(local: LocalOpts, req: CreateRun, show_events: bool) -> anyhow::Result<ExitCode> {
    let s = setup(&local)?;
    let opened = open_store(&s, true).await?;
    let rt = build_runtime(&s, &opened)?;
    rt.start().await?;
    let t = Tenant::default();
    let created = rt.create_run(&t, req, true).await.map_err(|e| anyhow::anyhow!(e))?;
    let run = created.run;
    let mut rx = created.live.context("no live channel")?;
    let mut printer = Printer::default();
    loop {
        let item = tokio::select! {
            r = rx.recv() => r,
            _ = tokio::signal::ctrl_c() => {
                let _ = rt.cancel(&t, &run.id, Some("interrupted from the terminal".into())).await;
                eprintln!("\ncancelled");
                rt.shutdown(Duration::from_secs(2)).await;
                return Ok(ExitCode::from(130));
            }
        };
        match item {
            Ok(Live::Delta(d)) => printer.delta(&d),
            Ok(Live::Event(ev)) => {
                if show_events {
                    eprintln!("[{}] {}", ev.seq, ev.type_name);
                }
                if ev.is_terminal() {
                    break;
                }
            }
            Ok(Live::Changed(_)) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                // The run's task ended: finished, or paused for a person.
                let now = rt.get_run(&t, &run.id).await.map_err(|e| anyhow::anyhow!(e))?;
                if now.status.is_terminal() {
                    break;
                }
                // Listen again before answering, so nothing of the resumed run is missed.
                rx = rt.hub().open(&run.id);
                if now.status == agentd_core::RunStatus::WaitingApproval && !answer_locally(&rt, &t, &run.id).await? {
                    eprintln!(
                        "\nrun {} is waiting for approval; start `agentd serve` on this data dir and answer with \
                         `agentd approvals` / `agentd approve ID`",
                        run.id
                    );
                    rt.shutdown(Duration::from_secs(2)).await;
                    return Ok(ExitCode::from(3));
                }
            }
        }
    }
    rt.shutdown(Duration::from_secs(2)).await;
    let run = rt.get_run(&t, &run.id).await.map_err(|e| anyhow::anyhow!(e))?;
    Ok(printer.finish(
        run.status.as_str(),
        run.output.as_deref(),
        run.error.as_ref().map(|e| (e.code.as_str(), e.message.as_str())),
    ))
}

/// Asks at the terminal for each pending approval of the run; false when
/// nobody can be asked (no terminal, or stdin closed).
async fn answer_locally(rt: &Arc<Runtime>, t: &Tenant, run_id: &str) -> anyhow::Result<bool> {
    if !crate::prompt::interactive() {
        return Ok(false);
    }
    let f = agentd_store::ApprovalFilter {
        run_id: Some(run_id.to_string()),
        status: Some(agentd_core::ApprovalStatus::Pending),
        ..Default::default()
    };
    let pending = rt
        .list_approvals(t, &f, &agentd_store::Page { after: None, limit: 100 })
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    for a in pending {
        let Some((decision, reason)) = crate::prompt::prompt(&(&a).into()).await else { return Ok(false) };
        rt.answer_approval(t, &a.id, decision.as_str(), reason, None, None).await.map_err(|e| anyhow::anyhow!(e))?;
    }
    Ok(true)
}

pub(crate) async fn run_remote(
    url: &str,
    api_key: Option<&str>,
    req: CreateRun,
    show_events: bool,
) -> anyhow::Result<ExitCode> {
    let client = crate::http::keyed_client(api_key)?;
    let body = agentd_api::CreateRun {
        input: Some(req.input),
        session_id: req.session_id,
        model: req.model,
        max_steps: req.max_steps,
        agent: req.agent,
        stream: true,
        ..Default::default()
    };
    let resp =
        crate::http::send(client.post(format!("{}/v1/runs", url.trim_end_matches('/'))).json(&body), url).await?;
    if let Some(id) = resp.headers().get("x-run-id").and_then(|v| v.to_str().ok()) {
        eprintln!("run {id}");
    }
    crate::stream::follow_answering(resp, show_events, Some((url.trim_end_matches('/'), &client))).await
}
