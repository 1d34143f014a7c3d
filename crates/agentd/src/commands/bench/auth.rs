//! `agentd bench --scenario auth`: what checking an API key adds to a
//! request, in-process (the cached check) and over loopback HTTP (the same
//! read with auth off and on).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_runtime::Runtime;
use agentd_runtime::access::NewKey;

/// Serves the router on a loopback port; returns its URL.
async fn serve(rt: Arc<Runtime>, auth: bool) -> anyhow::Result<String> {
    let app = agentd_server::router(rt, agentd_server::DEFAULT_MAX_BODY, auth);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Mean time of `n` sequential `GET /v1/sessions?limit=1`.
async fn mean_request(url: &str, key: Option<&str>, n: u32) -> anyhow::Result<Duration> {
    let http = reqwest::Client::new();
    let get = || {
        let r = http.get(format!("{url}/v1/sessions?limit=1"));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    };
    get().send().await?.error_for_status()?;
    let start = Instant::now();
    for _ in 0..n {
        get().send().await?.error_for_status()?;
    }
    Ok(start.elapsed() / n)
}

pub(super) async fn auth(rt: Arc<Runtime>, requests: u32) -> anyhow::Result<ExitCode> {
    let new = NewKey {
        name: "bench".into(),
        role: agentd_core::KeyRole::Member,
        org: Some("bench".into()),
        user: None,
        project: None,
        expires_at: None,
    };
    let (_, secret) = rt.create_key(None, None, new).await.map_err(|e| anyhow::anyhow!(e))?;
    let start = Instant::now();
    rt.authenticate(&secret).await.map_err(|e| anyhow::anyhow!(e))?;
    let first = start.elapsed();
    let n = 100_000u32;
    let start = Instant::now();
    for _ in 0..n {
        rt.authenticate(&secret).await.map_err(|e| anyhow::anyhow!(e))?;
    }
    let cached = start.elapsed() / n;
    println!("agentd bench: API key check (SHA-256, cache for 1 s, database on a miss)");
    println!("  first check (database): {:.1} µs", first.as_secs_f64() * 1e6);
    println!("  cached check, mean of {n}: {:.2} µs", cached.as_secs_f64() * 1e6);
    let (open, keyed) = (serve(rt.clone(), false).await?, serve(rt, true).await?);
    let mut rows = vec![];
    for _ in 0..3 {
        rows.push((mean_request(&open, None, requests).await?, mean_request(&keyed, Some(&secret), requests).await?));
    }
    println!("  GET /v1/sessions over loopback, mean of {requests} sequential requests:");
    for (off, on) in &rows {
        let diff = on.as_secs_f64() - off.as_secs_f64();
        println!(
            "    auth off {:>7.1} µs   auth on {:>7.1} µs   difference {:>+6.1} µs",
            off.as_secs_f64() * 1e6,
            on.as_secs_f64() * 1e6,
            diff * 1e6
        );
    }
    Ok(ExitCode::SUCCESS)
}
