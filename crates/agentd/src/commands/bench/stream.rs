//! `agentd bench --scenario stream`: how long a token delta takes from the
//! provider adapter to an SSE client, through the real HTTP server.

use std::process::ExitCode;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use agentd_core::{ContentPart, Message, Role, Usage};
use agentd_providers::{ChatRequest, ChatResponse, Delta, DeltaSink, Provider, ProviderError};
use agentd_runtime::{AgentSettings, ModelRegistry, Runtime, SchedulerSettings};
use agentd_store::SqliteStore;
use agentd_tools::ToolRegistry;
use eventsource_stream::Eventsource;
use futures::StreamExt;

/// The clock deltas carry: nanoseconds since this instant.
fn epoch() -> Instant {
    static E: OnceLock<Instant> = OnceLock::new();
    *E.get_or_init(Instant::now)
}

/// A provider that emits `deltas` text deltas, each carrying the time it was
/// handed to the runtime. Deltas are paced by one OS thread that spreads them
/// evenly over all open streams (tokio timers fire on 1 ms ticks, which
/// would make every stream's deltas arrive in the same instant — unlike
/// tokens coming off sockets).
struct Ticker {
    deltas: usize,
    pacer: std::sync::Mutex<Vec<tokio::sync::mpsc::UnboundedSender<()>>>,
}

/// Sends one tick every `gap / streams` to the open streams in turn.
fn start_pacer(ticker: Arc<Ticker>, gap: Duration) {
    std::thread::spawn(move || {
        let mut next = Instant::now();
        let mut i = 0usize;
        loop {
            let live: Vec<_> = {
                let mut g = ticker.pacer.lock().unwrap_or_else(|e| e.into_inner());
                g.retain(|s| !s.is_closed());
                g.clone()
            };
            if live.is_empty() {
                std::thread::sleep(Duration::from_micros(200));
                next = Instant::now();
                continue;
            }
            next += gap / live.len() as u32;
            while Instant::now() < next {
                std::hint::spin_loop();
            }
            i = (i + 1) % live.len();
            let _ = live[i].send(());
        }
    });
}

#[async_trait::async_trait]
impl Provider for Ticker {
    fn kind(&self) -> &'static str {
        "ticker"
    }

    async fn chat(&self, _req: ChatRequest<'_>, on_delta: DeltaSink<'_>) -> Result<ChatResponse, ProviderError> {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        self.pacer.lock().unwrap_or_else(|e| e.into_inner()).push(tx);
        for _ in 0..self.deltas {
            if rx.recv().await.is_none() {
                break;
            }
            on_delta(Delta::Text(format!("{} ", epoch().elapsed().as_nanos())));
        }
        let message = Message {
            role: Role::Assistant,
            content: vec![ContentPart::text("done")],
            tool_calls: vec![],
            tool_call_id: None,
            thinking: None,
            compaction: None,
            thinking_signature: None,
        };
        Ok(ChatResponse { message, usage: Usage::default(), finish_reason: "stop".into() })
    }

    async fn check(&self) -> Result<String, ProviderError> {
        Ok("ticker".into())
    }
}

/// One streamed run: latencies (ns) of its deltas as the client received them.
async fn one_stream(http: &reqwest::Client, url: &str) -> anyhow::Result<Vec<u64>> {
    let resp = http
        .post(format!("{url}/v1/runs"))
        .json(&serde_json::json!({"input": "stream", "stream": true}))
        .send()
        .await?;
    let mut events = resp.bytes_stream().eventsource();
    let mut out = vec![];
    while let Some(ev) = events.next().await {
        let ev = ev?;
        let now = epoch().elapsed().as_nanos() as u64;
        if ev.event == agentd_core::event_type::DELTA_EVENT {
            let v: serde_json::Value = serde_json::from_str(&ev.data)?;
            if let Some(sent) = v["text"].as_str().and_then(|t| t.trim().parse::<u64>().ok()) {
                out.push(now.saturating_sub(sent));
            }
        } else if agentd_core::EventType::parse(&ev.event).is_some_and(agentd_core::EventType::is_terminal) {
            break;
        }
    }
    Ok(out)
}

pub(crate) async fn stream(concurrency: &[usize], deltas: usize, gap_ms: u64) -> anyhow::Result<ExitCode> {
    epoch();
    let dir = std::env::temp_dir().join(format!("agentd-bench-{}", agentd_core::new_id("s")));
    std::fs::create_dir_all(&dir)?;
    let store = Arc::new(SqliteStore::open(&dir.join("agentd.db")).await?);
    let mut models = ModelRegistry::default();
    let ticker = Arc::new(Ticker { deltas, pacer: Default::default() });
    start_pacer(ticker.clone(), Duration::from_millis(gap_ms));
    models.insert_provider("ticker", ticker);
    models.set_default_model(Some("ticker/t".into()));
    let top = concurrency.iter().copied().max().unwrap_or(1) as u32;
    let sched = SchedulerSettings { max_concurrent_runs: top, per_tenant_concurrent_runs: top, ..Default::default() };
    let agent = AgentSettings { tools: Some(vec![]), ..AgentSettings::default() };
    let rt = Runtime::new(agentd_runtime::RuntimeParts {
        store,
        models,
        tools: ToolRegistry::builtin(),
        agents: vec![agent],
        node_id: "bench".into(),
        scheduler: sched,
        workspaces: dir.join("ws"),
        limits: Default::default(),
        secret_key: None,
        // The loop is measured: no extra title call per new session.
        model_titles: false,
    });
    rt.start().await?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let app = agentd_server::router(rt.clone(), agentd_server::DEFAULT_MAX_BODY, false);
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    println!("agentd bench: delta latency, provider adapter → hub → SSE over loopback HTTP → client");
    println!(
        "{deltas} deltas per stream, {gap_ms} ms apart per stream, spread evenly across streams by a pacing thread \
         (which spins on one core); SQLite journal; client and server in one process"
    );
    println!(" streams   deltas   median µs    p99 µs    max µs");
    for &c in concurrency {
        let http = reqwest::Client::new();
        let tasks: Vec<_> = (0..c.max(1))
            .map(|_| {
                let (http, url) = (http.clone(), url.clone());
                tokio::spawn(async move { one_stream(&http, &url).await })
            })
            .collect();
        let mut all = vec![];
        for t in tasks {
            all.extend(t.await??);
        }
        all.sort_unstable();
        let at = |p: f64| all.get(((all.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied().unwrap_or(0);
        println!(
            "{:>8} {:>8} {:>11.1} {:>9.1} {:>9.1}",
            c,
            all.len(),
            at(0.5) as f64 / 1e3,
            at(0.99) as f64 / 1e3,
            all.last().copied().unwrap_or(0) as f64 / 1e3
        );
    }
    rt.shutdown(Duration::from_secs(2)).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(ExitCode::SUCCESS)
}
