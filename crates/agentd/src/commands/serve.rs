//! `agentd serve`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use agentd_runtime::config::RetentionConfig;
use agentd_store::{PruneScope, Store};
use anyhow::Context;

use crate::opts::LocalOpts;

pub(crate) async fn serve(listen: Option<String>, auth: Option<String>, local: LocalOpts) -> anyhow::Result<ExitCode> {
    let s = crate::setup::setup(&local)?;
    let listen = listen.or_else(|| s.config.listen.clone()).unwrap_or_else(|| "127.0.0.1:7700".into());
    let opened = crate::setup::open_store(&s, true).await?;
    let rt = crate::setup::build_runtime(&s, &opened)?;
    if rt.models().is_empty() {
        tracing::warn!(
            "no provider configured: set OPENAI_API_KEY (and OPENAI_BASE_URL) or add [providers.*] to agentd.toml; /readyz answers 503"
        );
    }
    let keys_exist = rt.keys_exist().await.map_err(|e| anyhow::anyhow!(e)).context("reading API keys")?;
    // Decided before binding when the address is literal, so a refusal never opens the port.
    if let Ok(a) = listen.parse::<std::net::SocketAddr>() {
        auth_mode(auth.as_deref(), keys_exist, a)?;
    }
    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    let auth = auth_mode(auth.as_deref(), keys_exist, addr)?;
    if !auth && !addr.ip().is_loopback() {
        tracing::warn!(%addr, "auth is off on a non-loopback address: anyone who can reach it can act as any tenant");
    }
    let max_body = s.config.max_body_bytes.unwrap_or(agentd_server::DEFAULT_MAX_BODY);
    let browser = agentd_server::BrowserPolicy {
        allowed_hosts: s.config.allowed_hosts.clone(),
        allowed_origins: s.config.allowed_origins.clone(),
    };
    let app = agentd_server::router_with(rt.clone(), max_body, auth, browser);
    // No tool, HTTP tool or MCP server may reach agentd itself.
    agentd_tools::egress::add_own_address(addr);
    // Unfinished runs (ours from before a restart, or expired leases) resume from here on.
    rt.start().await.context("starting the scheduler")?;
    // Tests and scripts read this line to find the port when listening on :0.
    let auth_state = if auth { "on" } else { "off" };
    println!(
        "agentd listening on http://{addr} (node {}, database {}, auth {auth_state})",
        rt.node_id(),
        opened.description
    );
    tracing::info!(%addr, "serving");
    let pruner = tokio::spawn(retention_loop(opened.store.clone(), s.config.retention.clone()));

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    // SSE writes many small frames: send each at once (no Nagle delay).
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    shutdown_signal().await;
    tracing::info!("shutting down: no new runs are claimed; running ones stop at their next step");
    pruner.abort();
    let _ = stop_tx.send(());
    rt.shutdown(Duration::from_millis(s.config.scheduler.shutdown_grace_ms)).await;
    // Open SSE streams would hold graceful shutdown forever: give them a moment.
    let _ = tokio::time::timeout(Duration::from_secs(2), server).await;
    drop(opened);
    Ok(ExitCode::SUCCESS)
}

/// Whether `/v1` needs a key: as asked, else on once a key exists, else
/// off on loopback; serving a network address with no key is refused.
fn auth_mode(asked: Option<&str>, keys_exist: bool, addr: std::net::SocketAddr) -> anyhow::Result<bool> {
    match asked {
        Some("on") => Ok(true),
        Some(_) => Ok(false),
        None if keys_exist => Ok(true),
        None if addr.ip().is_loopback() => Ok(false),
        None => anyhow::bail!(
            "refusing to serve on {addr} without API keys: anyone who can reach it could act as any tenant. \
             Create the first key with `agentd keys create --role operator` (same --data-dir / --database), \
             or pass --auth off to serve without keys anyway"
        ),
    }
}

/// Prunes finished runs past their tenant's time-to-live, periodically.
async fn retention_loop(store: Arc<dyn Store>, cfg: RetentionConfig) {
    let every = Duration::from_secs(cfg.prune_interval_secs.unwrap_or(3600).max(1));
    loop {
        let overrides: Vec<String> = cfg.tenants.keys().cloned().collect();
        for (org, t) in &cfg.tenants {
            if let Some(days) = t.finished_runs_days {
                let scope = PruneScope { org: Some(org.clone()), except_orgs: vec![] };
                report(store.prune(&agentd_store::ago(Duration::from_secs(days * 86_400)), &scope).await);
            }
        }
        if let Some(days) = cfg.finished_runs_days {
            let scope = PruneScope { org: None, except_orgs: overrides };
            report(store.prune(&agentd_store::ago(Duration::from_secs(days * 86_400)), &scope).await);
        }
        tokio::time::sleep(every).await;
    }
}

fn report(r: Result<agentd_store::PruneStats, agentd_store::StoreError>) {
    match r {
        Ok(s) if s.runs > 0 || s.sessions > 0 => {
            tracing::info!(runs = s.runs, events = s.events, sessions = s.sessions, "pruned finished runs")
        }
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "pruning failed"),
    }
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
                return;
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
