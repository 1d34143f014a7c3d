//! `agentd bench`: N runs of K tool rounds against a mock OpenAI server on
//! loopback, with the real SQLite journal, at several concurrency levels.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agentd_core::Tenant;
use agentd_providers::{OpenAiConfig, OpenAiProvider};
use agentd_runtime::{AgentSettings, CreateRun, Live, ModelRegistry, Runtime};
use agentd_store::SqliteStore;
use agentd_testkit::MockOpenAi;
use agentd_tools::ToolRegistry;
use anyhow::Context;

pub async fn bench(runs: usize, rounds: usize, levels: Vec<usize>) -> anyhow::Result<ExitCode> {
    let mock = MockOpenAi::start(vec![], rounds).await?;
    let dir = std::env::temp_dir().join(format!("agentd-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let store = SqliteStore::open(&dir.join("agentd.db")).await?;
    let mut models = ModelRegistry::default();
    let provider = OpenAiProvider::new(OpenAiConfig {
        base_url: mock.base_url.clone(),
        api_key: Some("bench".into()),
        headers: vec![],
        timeout: Duration::from_secs(30),
        stream: true,
    })?;
    models.insert_provider("mock", Arc::new(provider));
    let agent = AgentSettings {
        max_steps: (rounds + 1) as u32,
        ..AgentSettings::default()
    };
    let rt = Runtime::new(Arc::new(store), models, ToolRegistry::builtin(), agent);

    println!(
        "agentd bench: {runs} runs × {rounds} tool rounds, streaming mock on loopback, SQLite WAL journal in {}",
        dir.display()
    );
    println!(
        "{:>5} {:>10} {:>10} {:>10} {:>12} {:>14}",
        "conc", "median ms", "p99 ms", "runs/s", "mock ms/run", "overhead/round"
    );
    for c in levels {
        let c = c.max(1);
        // Warm-up so connection setup is not measured.
        one_run(&rt, "warm-up").await?;
        let busy0 = mock.busy();
        let sem = Arc::new(tokio::sync::Semaphore::new(c));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..runs {
            let rt = rt.clone();
            let permit = sem.clone().acquire_owned().await?;
            tasks.spawn(async move {
                let _permit = permit;
                one_run(&rt, &format!("bench run {i}")).await
            });
        }
        let mut walls = Vec::with_capacity(runs);
        while let Some(r) = tasks.join_next().await {
            walls.push(r??);
        }
        let total = started.elapsed();
        walls.sort();
        let median = walls[walls.len() / 2];
        let p99 = walls[((walls.len() as f64 * 0.99).ceil() as usize)
            .saturating_sub(1)
            .min(walls.len() - 1)];
        let mock_per_run = (mock.busy() - busy0) / runs as u32;
        let mean: Duration = walls.iter().sum::<Duration>() / runs as u32;
        let overhead = mean.saturating_sub(mock_per_run) / rounds.max(1) as u32;
        println!(
            "{c:>5} {:>10.2} {:>10.2} {:>10.1} {:>12.3} {:>11.3} ms",
            ms(median),
            ms(p99),
            runs as f64 / total.as_secs_f64(),
            ms(mock_per_run),
            ms(overhead)
        );
    }
    println!(
        "overhead/round = (mean wall per run − mock handler time per run) / rounds; at concurrency > 1 it includes queueing."
    );
    rt.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn one_run(rt: &Arc<Runtime>, input: &str) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let req = CreateRun {
        input: input.into(),
        model: Some("mock/mock-model".into()),
        ..Default::default()
    };
    let (run, rx) = rt
        .create_run(&Tenant::default(), req, true)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut rx = rx.context("no live channel")?;
    loop {
        match rx.recv().await {
            Ok(Live::Event(ev)) if ev.is_terminal() => {
                anyhow::ensure!(ev.type_name == "run.completed", "run {} ended {}", run.id, ev.type_name);
                return Ok(t0.elapsed());
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                let r = rt
                    .get_run(&Tenant::default(), &run.id)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))?;
                anyhow::ensure!(
                    r.status.as_str() == "completed",
                    "run {} ended {}",
                    run.id,
                    r.status.as_str()
                );
                return Ok(t0.elapsed());
            }
        }
    }
}
