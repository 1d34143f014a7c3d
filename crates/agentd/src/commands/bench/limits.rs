//! `agentd bench --scenario limits`: what the operator's bounds cost and
//! hold. Stalled downloads (48 clients asking for a 10 MiB workspace file
//! and never reading: the server's RSS), and the template worker (the
//! largest doubling render allowed, how long a render takes, and the
//! worker's peak memory).

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_runtime::{AgentSettings, ModelRegistry, Runtime, SchedulerSettings};
use agentd_store::SqliteStore;
use agentd_tools::ToolRegistry;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{ms, rss_kib};

const CLIENTS: usize = 48;
const FILE: usize = 10 << 20;

async fn server(downloads_per_org: u32) -> anyhow::Result<(String, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!("agentd-bench-{}", agentd_core::new_id("l")));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(SqliteStore::open(&dir.join("agentd.db")).await?);
    let rt = Runtime::new(agentd_runtime::RuntimeParts {
        store,
        models: ModelRegistry::default(),
        tools: ToolRegistry::builtin(),
        agents: vec![AgentSettings::default()],
        node_id: "bench".into(),
        scheduler: SchedulerSettings::default(),
        workspaces: dir.join("ws"),
        limits: agentd_runtime::config::LimitsConfig { downloads_per_org, ..Default::default() },
        secret_key: None,
        model_titles: false,
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let app = agentd_server::router(rt, agentd_server::DEFAULT_MAX_BODY, false);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((addr, dir))
}

/// A client that asks for the file, reads the status line, then stalls.
async fn stalled(addr: &str, path: &str) -> anyhow::Result<(tokio::net::TcpStream, u16)> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    // A tiny receive window: the kernel buffers little on our side either.
    let req = format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    s.write_all(req.as_bytes()).await?;
    let mut head = [0u8; 12];
    s.read_exact(&mut head).await?;
    let status = std::str::from_utf8(&head[9..12]).unwrap_or("0").parse().unwrap_or(0);
    Ok((s, status))
}

async fn downloads(cap: u32) -> anyhow::Result<()> {
    let (addr, dir) = server(cap).await?;
    let http = reqwest::Client::new();
    let ses: serde_json::Value = http
        .post(format!("http://{addr}/v1/sessions"))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await?
        .json()
        .await?;
    let sid = ses["id"].as_str().unwrap_or_default().to_string();
    let path = format!("/v1/sessions/{sid}/files/big.bin");
    http.put(format!("http://{addr}{path}")).body(vec![7u8; FILE]).send().await?.error_for_status()?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = rss_kib().0;
    let mut held = vec![];
    let (mut ok, mut refused) = (0, 0);
    for _ in 0..CLIENTS {
        let (s, status) = stalled(&addr, &path).await?;
        match status {
            200 => ok += 1,
            _ => refused += 1,
        }
        held.push(s);
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let during = rss_kib().0;
    drop(held);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let after = rss_kib().0;
    println!(
        "{CLIENTS} stalled downloads of a 10 MiB file, downloads_per_org = {cap}: {ok} streaming, {refused} refused \
         (429); RSS {:.1} MiB before, {:.1} MiB while stalled (+{:.1} MiB, {:.0} KiB per streaming client), \
         {:.1} MiB after they closed",
        before as f64 / 1024.0,
        during as f64 / 1024.0,
        during.saturating_sub(before) as f64 / 1024.0,
        during.saturating_sub(before) as f64 / ok.max(1) as f64,
        after as f64 / 1024.0
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

fn children_peak_kib() -> u64 {
    // SAFETY: `ru` is a valid out-pointer for the call.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss as u64
}

async fn templates() -> anyhow::Result<()> {
    let me = std::path::PathBuf::from("/proc/self/exe");
    agentd_runtime::template_worker::use_worker(me);
    let doubling = |n: u32| {
        format!(
            "{{% set ns = namespace(a='x') %}}{{% for i in range({n}) %}}{{% set ns.a = ns.a ~ ns.a %}}{{% endfor %}}{{{{ ns.a|length }}}}"
        )
    };
    let t0 = Instant::now();
    let rounds = 50;
    for _ in 0..rounds {
        agentd_runtime::template_worker::render("bench", "t", "Hello {{ name }}", &serde_json::json!({"name": "Ada"}))
            .await?;
    }
    println!(
        "a small template through the worker: {:.2} ms per render ({rounds} in a row)",
        ms(t0.elapsed()) / rounds as f64
    );
    let mut largest = 0;
    for n in 10..=40u32 {
        let t0 = Instant::now();
        let r = agentd_runtime::template_worker::render("bench", "t", &doubling(n), &serde_json::json!({})).await;
        let took = t0.elapsed();
        match r {
            Ok(_) => largest = n,
            Err(e) => {
                println!(
                    "doubling a string {n} times (2^{n} bytes): refused after {:.0} ms: {e}; worker peak RSS so far {:.1} MiB",
                    ms(took),
                    children_peak_kib() as f64 / 1024.0
                );
                break;
            }
        }
    }
    println!(
        "largest doubling render allowed: 2^{largest} bytes ({:.0} MiB) in the worker; the server's own RSS {:.1} MiB",
        (1u64 << largest) as f64 / (1u64 << 20) as f64,
        rss_kib().0 as f64 / 1024.0
    );
    Ok(())
}

pub(super) async fn limits() -> anyhow::Result<ExitCode> {
    println!("agentd bench limits");
    downloads(8).await?;
    downloads(CLIENTS as u32).await?;
    templates().await?;
    Ok(ExitCode::SUCCESS)
}
