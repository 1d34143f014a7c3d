//! `agentd serve`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;

use crate::cli::LocalOpts;

pub async fn serve(listen: Option<String>, local: LocalOpts) -> anyhow::Result<ExitCode> {
    let s = crate::local::setup(&local)?;
    let listen = listen.or_else(|| s.config.listen.clone()).unwrap_or_else(|| "127.0.0.1:7700".into());
    let rt = crate::local::runtime(&s).await?;
    let n = rt.recover().await.context("recovering unfinished runs")?;
    if n > 0 {
        tracing::warn!(runs = n, "marked runs left unfinished by a previous process as failed (interrupted)");
    }
    if rt.models.is_empty() {
        tracing::warn!(
            "no provider configured: set OPENAI_API_KEY (and OPENAI_BASE_URL) or add [providers.*] to agentd.toml; /readyz answers 503"
        );
    }
    let max_body = s.config.max_body_bytes.unwrap_or(agentd_server::DEFAULT_MAX_BODY);
    let app = agentd_server::router(rt.clone(), max_body);
    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let addr = listener.local_addr()?;
    // Tests and scripts read this line to find the port when listening on :0.
    println!("agentd listening on http://{addr} (data dir {})", s.data_dir.display());
    tracing::info!(%addr, "serving");

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stop_rx.await;
            })
            .await
    });
    shutdown_signal().await;
    tracing::info!("shutting down");
    let _ = stop_tx.send(());
    // Runs stop at their next await point; the next start deals with them.
    rt.shutdown().await;
    // Open SSE streams would hold graceful shutdown forever: give them a grace period.
    let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    Ok(ExitCode::SUCCESS)
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
