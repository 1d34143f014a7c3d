//! `agentd bench`: the run loop against a mock model served by a child
//! process on loopback, with the real journal (temporary SQLite file, or a
//! PostgreSQL URL). Scenarios: throughput, waiting (memory), resume.

mod auth;
mod fanout;
mod limits;
mod stream;
mod tools;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, ExitCode, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use agentd_core::{EventKind, Role, Tenant};
use agentd_providers::{ChatRequest, ChatResponse, DeltaSink, OpenAiConfig, OpenAiProvider, Provider, ProviderError};
use agentd_runtime::{AgentSettings, CreateRun, Live, ModelRegistry, Runtime, SchedulerSettings};
use agentd_store::{ClaimLimits, NewRun, SqliteStore, Store};
use agentd_testkit::MockOpenAi;
use agentd_tools::ToolRegistry;
use anyhow::{Context, bail};

pub(crate) struct BenchOpts {
    pub runs: usize,
    pub rounds: usize,
    pub concurrency: Vec<usize>,
    pub mock_latency_ms: u64,
    pub database: Option<String>,
}

/// `agentd mock-llm`: serves the mock until killed.
pub(crate) async fn mock_llm(rounds: usize, latency_ms: u64, fanout: usize) -> anyhow::Result<ExitCode> {
    let mock = MockOpenAi::start_with_latency(vec![], rounds, Duration::from_millis(latency_ms)).await?;
    if fanout > 0 {
        fanout::rules(&mock, fanout);
    }
    println!("mock listening on {}", mock.base_url);
    std::future::pending::<()>().await;
    Ok(ExitCode::SUCCESS)
}

/// The mock in a child process, killed on drop.
struct MockProcess {
    child: Child,
    url: String,
}

impl MockProcess {
    fn start_with(rounds: usize, latency_ms: u64, fanout: usize) -> anyhow::Result<Self> {
        let exe = std::env::current_exe()?;
        let mut child = std::process::Command::new(exe)
            .args(["mock-llm", "--rounds", &rounds.to_string(), "--latency-ms", &latency_ms.to_string()])
            .args(["--fanout", &fanout.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the mock model")?;
        let out = child.stdout.take().context("mock stdout")?;
        let mut line = String::new();
        BufReader::new(out).read_line(&mut line)?;
        let url = line.trim().strip_prefix("mock listening on ").context("mock did not start")?.to_string();
        Ok(Self { child, url })
    }
}

impl Drop for MockProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Wraps a provider: time spent in calls per run (keyed by the run's input), calls in flight.
struct Timed {
    inner: OpenAiProvider,
    per_run: Mutex<HashMap<String, u64>>,
    calls: AtomicU64,
    in_flight: AtomicU64,
}

#[async_trait::async_trait]
impl Provider for Timed {
    fn kind(&self) -> &'static str {
        self.inner.kind()
    }

    async fn chat(&self, req: ChatRequest<'_>, on_delta: DeltaSink<'_>) -> Result<ChatResponse, ProviderError> {
        let key = req.messages.iter().find(|m| m.role == Role::User).map(|m| m.text_content()).unwrap_or_default();
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        let t0 = Instant::now();
        let r = self.inner.chat(req, on_delta).await;
        let ns = t0.elapsed().as_nanos() as u64;
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        *self.per_run.lock().unwrap_or_else(|e| e.into_inner()).entry(key).or_default() += ns;
        r
    }

    async fn check(&self) -> Result<String, ProviderError> {
        self.inner.check().await
    }
}

struct Rig {
    rt: Arc<Runtime>,
    timed: Arc<Timed>,
    store: Arc<dyn Store>,
    _mock: MockProcess,
    dir: Option<std::path::PathBuf>,
    label: String,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(d) = &self.dir {
            let _ = std::fs::remove_dir_all(d);
        }
    }
}

async fn open_store(database: Option<&str>) -> anyhow::Result<(Arc<dyn Store>, Option<std::path::PathBuf>, String)> {
    match database {
        Some(url) => Ok((Arc::new(agentd_store::PgStore::connect(url).await?), None, "PostgreSQL".into())),
        None => {
            let dir = std::env::temp_dir().join(format!("agentd-bench-{}", agentd_core::new_id("b")));
            std::fs::create_dir_all(&dir)?;
            let store = SqliteStore::open(&dir.join("agentd.db")).await?;
            Ok((Arc::new(store), Some(dir), "SQLite (WAL)".into()))
        }
    }
}

async fn rig(o: &BenchOpts, max_concurrent: u32, node: &str) -> anyhow::Result<Rig> {
    rig_with(o, max_concurrent, node, 0, |_| {}).await
}

/// A rig whose mock also plays the delegation scenarios, and whose agent has these limits.
async fn rig_with(
    o: &BenchOpts,
    max_concurrent: u32,
    node: &str,
    fanout: usize,
    tweak: impl FnOnce(&mut AgentSettings),
) -> anyhow::Result<Rig> {
    let mock = MockProcess::start_with(o.rounds, o.mock_latency_ms, fanout)?;
    let (store, dir, label) = open_store(o.database.as_deref()).await?;
    let inner = OpenAiProvider::new(OpenAiConfig {
        base_url: mock.url.clone(),
        api_key: Some("bench".into()),
        headers: vec![],
        timeout: Duration::from_secs(120),
        stream: true,
        max_tokens_field: None,
        guard: None,
    })?;
    let timed = Arc::new(Timed {
        inner,
        per_run: Mutex::new(HashMap::new()),
        calls: AtomicU64::new(0),
        in_flight: AtomicU64::new(0),
    });
    let mut models = ModelRegistry::default();
    models.insert_provider("mock", timed.clone());
    let mut agent = AgentSettings { max_steps: (o.rounds + 2) as u32, ..AgentSettings::default() };
    tweak(&mut agent);
    let sched = SchedulerSettings {
        max_concurrent_runs: max_concurrent,
        per_tenant_concurrent_runs: max_concurrent,
        poll_ms: 50,
        ..Default::default()
    };
    let ws = std::env::temp_dir().join(format!("agentd-bench-ws-{}", std::process::id()));
    let rt = Runtime::new(agentd_runtime::RuntimeParts {
        store: store.clone(),
        models,
        tools: ToolRegistry::builtin(),
        agents: vec![agent],
        node_id: node.into(),
        scheduler: sched,
        workspaces: ws,
        // The benches measure trees far past the default caps.
        limits: agentd_runtime::config::LimitsConfig {
            max_depth: 16,
            max_children: 100_000,
            max_concurrent_children: 100_000,
            max_tree_runs: 1_000_000,
            max_org_open_runs: 1_000_000,
            ..Default::default()
        },
        secret_key: None,
        // The loop is measured: no extra title call per new session.
        model_titles: false,
    });
    Ok(Rig { rt, timed, store, _mock: mock, dir, label })
}

pub(crate) async fn bench(scenario: &str, o: BenchOpts) -> anyhow::Result<ExitCode> {
    match scenario {
        "throughput" => throughput(o).await,
        "waiting" => waiting(o).await,
        "resume" => resume(o).await,
        "mcp" => tools::mcp(o).await,
        "guard" => tools::guard(o.runs.max(1000)),
        "fairness" => fairness(o).await,
        "fanout" => fanout::fanout(o).await,
        "limits" => limits::limits().await,
        "auth" => {
            let r = rig(&o, 1, "bench").await?;
            auth::auth(r.rt.clone(), u32::try_from(o.runs.max(2000)).unwrap_or(u32::MAX)).await
        }
        "stream" => {
            let conc = if o.concurrency == [1, 32] { vec![1, 100] } else { o.concurrency.clone() };
            stream::stream(&conc, o.rounds.max(20) * 20, o.mock_latency_ms.max(1)).await
        }
        other => bail!(
            "unknown scenario {other:?}: throughput, waiting, resume, mcp, guard, stream, fairness, fanout, limits or auth"
        ),
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p).ceil() as usize).saturating_sub(1).min(sorted.len() - 1)]
}

async fn throughput(o: BenchOpts) -> anyhow::Result<ExitCode> {
    let top = o.concurrency.iter().copied().max().unwrap_or(1).max(1) as u32;
    let r = rig(&o, top, "bench").await?;
    journal_bench(&*r.store).await?;
    r.rt.start().await?;
    println!(
        "agentd bench: {} runs × {} tool rounds per concurrency level; {}; mock model in a child process (+{} ms per answer)",
        o.runs, o.rounds, r.label, o.mock_latency_ms
    );
    println!(
        "{:>5} {:>10} {:>10} {:>10} {:>12} {:>16} {:>16}",
        "conc", "median ms", "p99 ms", "runs/s", "llm ms/run", "overhead/round", "p99 overhead"
    );
    let mut seq = 0usize;
    for c in o.concurrency.iter().copied().map(|c| c.max(1)) {
        one_run(&r.rt, &format!("warm-up {c}")).await?;
        let sem = Arc::new(tokio::sync::Semaphore::new(c));
        let started = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..o.runs {
            seq += 1;
            let (rt, input) = (r.rt.clone(), format!("bench run {seq}"));
            let permit = sem.clone().acquire_owned().await?;
            tasks.spawn(async move {
                let _permit = permit;
                one_run(&rt, &input).await.map(|wall| (input, wall))
            });
        }
        let mut walls = Vec::with_capacity(o.runs);
        let mut overheads = Vec::with_capacity(o.runs);
        let mut llm_total = Duration::ZERO;
        while let Some(res) = tasks.join_next().await {
            let (input, wall) = res??;
            let llm = Duration::from_nanos(
                r.timed.per_run.lock().unwrap_or_else(|e| e.into_inner()).get(&input).copied().unwrap_or(0),
            );
            llm_total += llm;
            walls.push(wall);
            overheads.push(wall.saturating_sub(llm) / o.rounds.max(1) as u32);
        }
        let total = started.elapsed();
        walls.sort();
        overheads.sort();
        let ideal = if o.mock_latency_ms > 0 {
            let per_run = Duration::from_millis(o.mock_latency_ms * (o.rounds as u64 + 1));
            format!("  (ideal {:.0} runs/s)", c as f64 / per_run.as_secs_f64())
        } else {
            String::new()
        };
        println!(
            "{c:>5} {:>10.2} {:>10.2} {:>10.1} {:>12.3} {:>13.3} ms {:>13.3} ms{ideal}",
            ms(pct(&walls, 0.5)),
            ms(pct(&walls, 0.99)),
            o.runs as f64 / total.as_secs_f64(),
            ms(llm_total / o.runs as u32),
            ms(pct(&overheads, 0.5)),
            ms(pct(&overheads, 0.99)),
        );
    }
    println!("llm = time agentd waited in provider calls per run (loopback HTTP + SSE parsing included);");
    println!("overhead/round = (run wall time - llm) / rounds: queueing, the loop, tools and journal writes.");
    r.rt.shutdown(Duration::from_secs(1)).await;
    Ok(ExitCode::SUCCESS)
}

/// One organisation queues `runs` runs (default 1,872); then another
/// organisation's single run is created: how long until it starts and ends,
/// and what one claim costs with that backlog.
async fn fairness(o: BenchOpts) -> anyhow::Result<ExitCode> {
    let n = if o.runs == 200 { 1872 } else { o.runs };
    let o = BenchOpts { mock_latency_ms: o.mock_latency_ms.max(20), rounds: 0, ..o };
    let r = rig(&o, 16, "bench").await?;
    let big = Tenant::from_parts(Some("big"), None, None).map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let small = Tenant::from_parts(Some("small"), None, None).map_err(|e| anyhow::anyhow!(e.to_string()))?;
    let t0 = Instant::now();
    for i in 0..n {
        let req =
            CreateRun { input: format!("backlog {i}"), model: Some("mock/mock-model".into()), ..Default::default() };
        r.rt.create_run(&big, req, false).await.map_err(|e| anyhow::anyhow!(e))?;
    }
    println!(
        "agentd bench fairness: {n} queued runs of one organisation ({:.1} s to queue); {}; 16 run slots; model +{} ms",
        t0.elapsed().as_secs_f64(),
        r.label,
        o.mock_latency_ms
    );
    let limits = ClaimLimits { max: 16, per_tenant: 16, lease_ms: 1, ..Default::default() };
    let t0 = Instant::now();
    for _ in 0..20 {
        r.store.claim_runs("probe", &limits).await?;
    }
    println!("claim with a backlog of {n}: {:.2} ms", ms(t0.elapsed() / 20));
    tokio::time::sleep(Duration::from_millis(5)).await; // the probe's 1 ms leases lapse
    r.rt.start().await?;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t0 = Instant::now();
    let req = CreateRun {
        input: "the other organisation".into(),
        model: Some("mock/mock-model".into()),
        ..Default::default()
    };
    let created = r.rt.create_run(&small, req, false).await.map_err(|e| anyhow::anyhow!(e))?;
    let (mut started, mut done) = (None, None);
    while done.is_none() && t0.elapsed() < Duration::from_secs(600) {
        let run = r.rt.get_run(&small, &created.run.id).await.map_err(|e| anyhow::anyhow!(e))?;
        if started.is_none() && run.status.as_str() != "queued" {
            started = Some(t0.elapsed());
        }
        if run.status.is_terminal() {
            done = Some(t0.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    let show = |d: Option<Duration>| d.map_or("never (600 s)".to_string(), |d| format!("{:.1} ms", ms(d)));
    println!("the other organisation's run: started after {}, finished after {}", show(started), show(done));
    r.rt.shutdown(Duration::from_secs(1)).await;
    Ok(ExitCode::SUCCESS)
}

/// One run from creation to its terminal event.
async fn one_run(rt: &Arc<Runtime>, input: &str) -> anyhow::Result<Duration> {
    let t0 = Instant::now();
    let req = CreateRun { input: input.into(), model: Some("mock/mock-model".into()), ..Default::default() };
    let created = rt.create_run(&Tenant::default(), req, true).await.map_err(|e| anyhow::anyhow!(e))?;
    let mut rx = created.live.context("no live channel")?;
    loop {
        match rx.recv().await {
            Ok(Live::Event(ev)) if ev.is_terminal() => {
                let completed = ev.event_type() == Some(agentd_core::EventType::RunCompleted);
                anyhow::ensure!(completed, "run {} ended {}", created.run.id, ev.type_name);
                return Ok(t0.elapsed());
            }
            Ok(_) | Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
            Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                let r = rt.get_run(&Tenant::default(), &created.run.id).await.map_err(|e| anyhow::anyhow!(e))?;
                anyhow::ensure!(r.status.as_str() == "completed", "run {} ended {}", r.id, r.status.as_str());
                return Ok(t0.elapsed());
            }
        }
    }
}

/// Latency of one journal append (one transaction) and of a one-event read.
async fn journal_bench(store: &dyn Store) -> anyhow::Result<()> {
    let t = Tenant::default();
    let ses = store.create_session(&t, None, serde_json::json!({})).await?;
    let nr = NewRun::new(ses.id, "journal bench", "mock/mock-model", 1);
    store.create_run(&t, &nr).await?;
    let n = 2000;
    let t0 = Instant::now();
    for i in 0..n {
        store.append(&t, &nr.id, &[EventKind::StepStarted { step: i }]).await?;
    }
    let append = t0.elapsed() / n;
    let t0 = Instant::now();
    for i in 0..n {
        let q = agentd_store::EventQuery { after: i64::from(i), limit: 1, types: None };
        store.events(&t, &nr.id, &q).await?;
    }
    let read = t0.elapsed() / n;
    println!(
        "journal: append (1 event, 1 transaction) {:.1} µs; read 1 event {:.1} µs",
        append.as_secs_f64() * 1e6,
        read.as_secs_f64() * 1e6
    );
    store.append(&t, &nr.id, &[EventKind::RunCancelled { reason: Some("bench only".into()) }]).await?;
    Ok(())
}

/// Resident and peak memory of this process, in KiB.
fn rss_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (get("VmRSS:"), get("VmHWM:"))
}

/// N runs all waiting on a slow model at once: memory per waiting run.
async fn waiting(o: BenchOpts) -> anyhow::Result<ExitCode> {
    let n = o.runs;
    let o = BenchOpts { mock_latency_ms: o.mock_latency_ms.max(1000), ..o };
    let r = rig(&o, n as u32, "bench").await?;
    r.rt.start().await?;
    one_run(&r.rt, "warm-up").await?;
    let (base, _) = rss_kib();
    println!("agentd bench waiting: {n} runs, model answers after {} ms; {}", o.mock_latency_ms, r.label);
    let t0 = Instant::now();
    let sem = Arc::new(tokio::sync::Semaphore::new(256));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let (rt, permit) = (r.rt.clone(), sem.clone().acquire_owned().await?);
        tasks.spawn(async move {
            let _permit = permit;
            let input = format!("waiting {i}");
            let req = CreateRun { input, model: Some("mock/mock-model".into()), ..Default::default() };
            rt.create_run(&Tenant::default(), req, false).await.map(|_| ()).map_err(|e| anyhow::anyhow!(e))
        });
    }
    while let Some(res) = tasks.join_next().await {
        res??;
    }
    let created = t0.elapsed();
    // Until every run waits on the model (or the first answers come back).
    let (mut peak_rss, mut peak_waiting) = (0, 0);
    let deadline = created + Duration::from_millis(o.mock_latency_ms);
    loop {
        let waiting = r.timed.in_flight.load(Ordering::Relaxed);
        peak_waiting = peak_waiting.max(waiting);
        peak_rss = peak_rss.max(rss_kib().0);
        if waiting >= n as u64 || t0.elapsed() > deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (_, hwm) = rss_kib();
    println!(
        "created {n} runs in {:.0} ms; {peak_waiting} waiting on the model at once after {:.0} ms",
        ms(created),
        ms(t0.elapsed())
    );
    println!(
        "RSS: {:.1} MiB before, peak {:.1} MiB (process high-water {:.1} MiB): {:.1} KiB per waiting run",
        base as f64 / 1024.0,
        peak_rss as f64 / 1024.0,
        hwm as f64 / 1024.0,
        (peak_rss.saturating_sub(base)) as f64 / peak_waiting.max(1) as f64
    );
    r.rt.shutdown(Duration::from_millis(10)).await;
    Ok(ExitCode::SUCCESS)
}

/// N runs interrupted mid-LLM-call by a dead node: time until all are running again.
async fn resume(o: BenchOpts) -> anyhow::Result<ExitCode> {
    let n = o.runs;
    let o = BenchOpts { mock_latency_ms: o.mock_latency_ms.max(10_000), ..o };
    let r = rig(&o, (n as u32).max(1), "bench-new").await?;
    let t = Tenant::default();
    println!("agentd bench resume: {n} runs left mid-call by a dead node; {}", r.label);
    for i in 0..n {
        let ses = r.store.create_session(&t, None, serde_json::json!({})).await?;
        let nr = NewRun::new(ses.id, format!("interrupted {i}"), "mock/mock-model", 5);
        r.store.create_run(&t, &nr).await?;
    }
    // A node claims them all with a lease that lapses at once, starts them, and dies.
    let claimed = r
        .store
        .claim_runs(
            "dead-node",
            &ClaimLimits { max: n as u32, per_tenant: n as u32, lease_ms: 1, ..Default::default() },
        )
        .await?;
    for (tt, run) in &claimed {
        let evs = [EventKind::RunStarted { node: "dead-node".into() }, EventKind::StepStarted { step: 1 }];
        r.store.append(tt, &run.id, &evs).await?;
    }
    tokio::time::sleep(Duration::from_millis(5)).await;
    let t0 = Instant::now();
    r.rt.start().await?;
    while r.timed.in_flight.load(Ordering::Relaxed) < n as u64 {
        if t0.elapsed() > Duration::from_secs(60) {
            bail!("only {} of {n} runs resumed within 60 s", r.timed.in_flight.load(Ordering::Relaxed));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let all = t0.elapsed();
    println!(
        "all {n} runs resumed (journal folded, run.resumed written, model asked again) {:.0} ms after start",
        ms(all)
    );
    r.rt.shutdown(Duration::from_millis(10)).await;
    Ok(ExitCode::SUCCESS)
}
