//! `agentd bench`: N runs of K tool rounds against a mock OpenAI server on
//! loopback, with the real SQLite journal, at several concurrency levels.

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use agentd_core::Tenant;
use agentd_providers::{OpenAiConfig, OpenAiProvider};
use agentd_runtime::{AgentSettings, CreateRun, Live, ModelRegistry, Runtime};
use agentd_store::SqliteStore;
use agentd_testkit::MockOpenAi;
use agentd_tools::ToolRegistry;
use anyhow::Context;

pub async fn bench(runs: usize, rounds: usize, levels: Vec<usize>, latency_ms: u64) -> anyhow::Result<ExitCode> {
    let latency = Duration::from_millis(latency_ms);
    let mock = MockOpenAi::start_with_latency(vec![], rounds, latency).await?;
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
    let timed = Arc::new(Timed { inner: Box::new(provider), nanos: AtomicU64::new(0) });
    models.insert_provider("mock", timed.clone());
    let agent = AgentSettings { max_steps: (rounds + 1) as u32, ..AgentSettings::default() };
    let sched = agentd_runtime::SchedulerSettings {
        max_concurrent_runs: 1024,
        per_tenant_concurrent_runs: 1024,
        ..Default::default()
    };
    let rt = Runtime::new(Arc::new(store), models, ToolRegistry::builtin(), agent, "bench".into(), sched);

    println!(
        "agentd bench: {runs} runs × {rounds} tool rounds, streaming mock on loopback, SQLite WAL journal in {}",
        dir.display()
    );
    journal_bench(&rt).await?;
    provider_bench(&rt).await?;
    // The journal bench's run is finished now; start scheduling only after it.
    rt.start().await?;
    println!(
        "{:>5} {:>10} {:>10} {:>10} {:>12} {:>12} {:>14}",
        "conc", "median ms", "p99 ms", "runs/s", "mock ms/run", "llm ms/run", "overhead/round"
    );
    for c in levels {
        let c = c.max(1);
        // Warm-up so connection setup is not measured.
        one_run(&rt, "warm-up").await?;
        let busy0 = mock.busy();
        let llm0 = timed.nanos.load(Ordering::Relaxed);
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
        let p99 = walls[((walls.len() as f64 * 0.99).ceil() as usize).saturating_sub(1).min(walls.len() - 1)];
        let mock_per_run = (mock.busy() - busy0) / runs as u32;
        let mean: Duration = walls.iter().sum::<Duration>() / runs as u32;
        let llm_per_run = Duration::from_nanos((timed.nanos.load(Ordering::Relaxed) - llm0) / runs as u64);
        let overhead = mean.saturating_sub(llm_per_run) / rounds.max(1) as u32;
        let ideal = if latency.is_zero() {
            String::new()
        } else {
            // If agentd took no time at all, each run would last exactly its mock time.
            let ideal = c as f64 / mock_per_run.as_secs_f64();
            format!("  (ideal {ideal:.1} runs/s, {:.0}%)", 100.0 * runs as f64 / total.as_secs_f64() / ideal)
        };
        println!(
            "{c:>5} {:>10.2} {:>10.2} {:>10.1} {:>12.3} {:>12.3} {:>11.3} ms{ideal}",
            ms(median),
            ms(p99),
            runs as f64 / total.as_secs_f64(),
            ms(mock_per_run),
            ms(llm_per_run),
            ms(overhead)
        );
    }
    println!("mock = time inside the mock's handler; llm = time agentd waited in provider calls (loopback HTTP and");
    println!(
        "SSE parsing included); overhead/round = (mean wall per run - llm) / rounds: loop, tools, journal writes."
    );
    if !latency.is_zero() {
        println!("ideal runs/s = concurrency / mock time per run: what a harness costing nothing would reach.");
    }
    rt.shutdown(Duration::from_secs(1)).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn one_run(rt: &Arc<Runtime>, input: &str) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let req = CreateRun { input: input.into(), model: Some("mock/mock-model".into()), ..Default::default() };
    let created = rt.create_run(&Tenant::default(), req, true).await.map_err(|e| anyhow::anyhow!(e))?;
    let run = created.run;
    let mut rx = created.live.context("no live channel")?;
    loop {
        match rx.recv().await {
            Ok(Live::Event(ev)) if ev.is_terminal() => {
                anyhow::ensure!(ev.type_name == "run.completed", "run {} ended {}", run.id, ev.type_name);
                return Ok(t0.elapsed());
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                let r = rt.get_run(&Tenant::default(), &run.id).await.map_err(|e| anyhow::anyhow!(e))?;
                anyhow::ensure!(r.status.as_str() == "completed", "run {} ended {}", run.id, r.status.as_str());
                return Ok(t0.elapsed());
            }
        }
    }
}

/// Latency of one journal append (one transaction) and of a one-event read.
async fn journal_bench(rt: &Arc<Runtime>) -> anyhow::Result<()> {
    let t = Tenant::default();
    let ses = rt.store.create_session(&t, None, serde_json::json!({})).await?;
    let nr = agentd_store::NewRun {
        id: agentd_core::new_id("run"),
        session_id: ses.id,
        input: "journal bench".into(),
        model: "mock/mock-model".into(),
        max_steps: 1,
        reject_if_busy: false,
    };
    rt.store.create_run(&t, &nr).await?;
    let n = 2000;
    let t0 = Instant::now();
    for i in 0..n {
        rt.store.append(&t, &nr.id, &[agentd_core::EventKind::StepStarted { step: i }]).await?;
    }
    let append = t0.elapsed() / n;
    let t0 = Instant::now();
    for i in 0..n {
        let q = agentd_store::EventQuery { after: i64::from(i), limit: 1, types: None };
        rt.store.events(&t, &nr.id, &q).await?;
    }
    let read = t0.elapsed() / n;
    println!("journal: append (1 event, 1 transaction) {:.1} µs; read 1 event {:.1} µs", micros(append), micros(read));
    rt.store.append(&t, &nr.id, &[agentd_core::EventKind::RunCancelled { reason: Some("bench only".into()) }]).await?;
    Ok(())
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Latency of one bare provider call to the mock (HTTP + SSE on loopback), no journal.
async fn provider_bench(rt: &Arc<Runtime>) -> anyhow::Result<()> {
    let m = rt.models.resolve("mock/mock-model")?;
    let msgs = vec![agentd_core::Message::text(agentd_core::Role::User, "x")];
    let tools = rt.tools.specs();
    let sink = |_d: agentd_providers::Delta| {};
    let n = 1000;
    let t0 = Instant::now();
    for _ in 0..n {
        let req = agentd_providers::ChatRequest { model: &m.model, messages: &msgs, tools: &tools, max_tokens: None };
        m.provider.chat(req, &sink).await?;
    }
    println!("provider: one chat call to the mock over loopback HTTP/SSE {:.1} µs", micros(t0.elapsed() / n));
    Ok(())
}

/// Wraps a provider and adds up the time spent in its calls.
struct Timed {
    inner: Box<dyn agentd_providers::Provider>,
    nanos: AtomicU64,
}

#[async_trait::async_trait]
impl agentd_providers::Provider for Timed {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn chat(
        &self,
        req: agentd_providers::ChatRequest<'_>,
        on_delta: agentd_providers::DeltaSink<'_>,
    ) -> Result<agentd_providers::ChatResponse, agentd_providers::ProviderError> {
        let t0 = Instant::now();
        let r = self.inner.chat(req, on_delta).await;
        self.nanos.fetch_add(t0.elapsed().as_nanos() as u64, Ordering::Relaxed);
        r
    }

    async fn check(&self) -> Result<String, agentd_providers::ProviderError> {
        self.inner.check().await
    }
}
